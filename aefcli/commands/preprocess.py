"""Compute or apply the log transform and standardisation statistics of a cube.

Example: aef preprocess cube.zarr --stats runs/tiny/checkpoint.safetensors
"""

from __future__ import annotations

from aefcli.errors import NotBuiltYet

NO_ARGS_IS_HELP = False


def command() -> None:
    raise NotBuiltYet("`aef preprocess` is not built yet in this version (planned: issue #3).")
