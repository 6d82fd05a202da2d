"""Search a STAC API or catalog and load the imagery onto a UTM grid (Zarr cube).

Example: aef ingest --stac https://earth-search.aws.element84.com/v1 --collections s2,s1 --bbox 3.0,51.0,3.1,51.05 --period 2024-01-01/2025-01-01 --out cube.zarr
"""

from __future__ import annotations

from aefcli.errors import NotBuiltYet

NO_ARGS_IS_HELP = False


def command() -> None:
    raise NotBuiltYet("`aef ingest` is not built yet in this version (planned: issue #3).")
