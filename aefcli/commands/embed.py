"""Run the model over a bbox and period into a Zarr embedding cube.

Example: aef embed --checkpoint runs/tiny/last.ckpt --cube cube.zarr --bbox 3.0,51.0,3.1,51.05 --period 2024-01-01/2025-01-01 --out emb.zarr
"""

from __future__ import annotations

from aefcli.errors import NotBuiltYet

NO_ARGS_IS_HELP = False


def command() -> None:
    raise NotBuiltYet("`aef embed` is not built yet in this version (planned: issue #6).")
