"""Options and parsers shared by several sub-commands."""

from __future__ import annotations

import typer

from aefcli import console

JSON = typer.Option(False, "--json", help="Results as one JSON object per line on stdout.")


def use_json(flag: bool) -> None:
    """Per-command --json switches the same console mode as the global one."""
    if flag:
        console.state.json = True
