"""The `aef` command: a Typer app that registers one module per sub-command.

Command modules import only Typer and light helpers at start-up, so
`aef --help` answers instantly; heavy libraries load inside the commands.
"""

from __future__ import annotations

import importlib
import sys
from typing import Optional

import typer

from aefcli import __version__, console
from aefcli.errors import AefError

# (command name, module under aefcli.commands); order is the order of --help.
COMMANDS = [
    ("sample-world", "sample_world"),
    ("ingest", "ingest"),
    ("preprocess", "preprocess"),
    ("train", "train"),
    ("embed", "embed"),
    ("features", "features"),
    ("probe", "probe"),
    ("tiles", "tiles"),
    ("index", "index"),
    ("demo", "demo"),
]

app = typer.Typer(
    name="aef",
    help="Embedding fields from satellite image time series: STAC -> UTM cube -> model -> Zarr embeddings -> probe maps.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"aef {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log output on stderr (-vv for debug)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors on stderr; no progress bars."),
    json_mode: bool = typer.Option(False, "--json", help="Results as one JSON object per line on stdout."),
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """aef: per-pixel 64-d embedding fields from Sentinel-2, Sentinel-1 and Landsat time series.

    Example: aef demo ./aef-demo
    """
    console.configure(json_mode=json_mode, verbose=verbose, quiet=quiet)


for _name, _module in COMMANDS:
    _mod = importlib.import_module(f"aefcli.commands.{_module}")
    app.command(_name, help=_mod.__doc__, no_args_is_help=getattr(_mod, "NO_ARGS_IS_HELP", False))(_mod.command)


def main() -> None:
    """Console-script entry point: maps AefError to a one-line message and exit 1."""
    try:
        app()
    except AefError as err:
        print(f"aef: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        print("aef: interrupted; re-run the same command to resume.", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
