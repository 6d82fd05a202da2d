"""Train the embedding model self-supervised on ingested cubes.

Example: aef train --cube cube.zarr --out runs/tiny --preset tiny --steps 200
"""

from __future__ import annotations

from aefcli.errors import NotBuiltYet

NO_ARGS_IS_HELP = False


def command() -> None:
    raise NotBuiltYet("`aef train` is not built yet in this version (planned: issue #5).")
