"""Write a STAC collection and a VRT mosaic of finished tile stores.

Example: aef index out/
"""

from __future__ import annotations

from aefcli.errors import NotBuiltYet

NO_ARGS_IS_HELP = False


def command() -> None:
    raise NotBuiltYet("`aef index` is not built yet in this version (planned: issue #8).")
