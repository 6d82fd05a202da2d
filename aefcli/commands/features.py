"""Designed-feature baselines (median / monthly composites) in the embedding cube format.

Example: aef features --cube cube.zarr --period 2024-01-01/2025-01-01 --kind monthly --out feats.zarr
"""

from __future__ import annotations

from aefcli.errors import NotBuiltYet

NO_ARGS_IS_HELP = False


def command() -> None:
    raise NotBuiltYet("`aef features` is not built yet in this version (planned: issue #7).")
