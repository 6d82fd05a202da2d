"""One module per sub-command: parse options, call ONE stage function, print."""
