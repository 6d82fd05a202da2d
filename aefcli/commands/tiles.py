"""List the global tiles covering an area (one JSON object per line).

Example: aef tiles --bbox 3.0,51.0,3.5,51.3
"""

from __future__ import annotations

from aefcli.errors import NotBuiltYet

NO_ARGS_IS_HELP = False


def command() -> None:
    raise NotBuiltYet("`aef tiles` is not built yet in this version (planned: issue #8).")
