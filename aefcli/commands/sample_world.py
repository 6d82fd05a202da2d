"""Write a synthetic multi-source world (COGs + STAC catalog + labels) for offline runs.

Example: aef sample-world ./world --size 256 --dates 24 --seed 0
"""

from __future__ import annotations

from aefcli.errors import NotBuiltYet

NO_ARGS_IS_HELP = False


def command() -> None:
    raise NotBuiltYet("`aef sample-world` is not built yet in this version (planned: issue #2).")
