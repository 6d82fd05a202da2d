"""Run the main job end to end on the bundled sample world.

Example: aef demo ./aef-demo
"""

from __future__ import annotations

from aefcli.errors import NotBuiltYet

NO_ARGS_IS_HELP = False


def command() -> None:
    raise NotBuiltYet("`aef demo` is not built yet in this version (planned: issue #2).")
