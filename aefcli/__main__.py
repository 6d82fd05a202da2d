from aefcli.cli import main

main()
