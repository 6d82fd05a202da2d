"""Fit a linear probe from sparse labels and map every pixel of an embedding cube.

Example: aef probe labels.geojson --embeddings emb.zarr --out map.tif
"""

from __future__ import annotations

from aefcli.errors import NotBuiltYet

NO_ARGS_IS_HELP = False


def command() -> None:
    raise NotBuiltYet("`aef probe` is not built yet in this version (planned: issue #7).")
