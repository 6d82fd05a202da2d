"""Cloud-optimised GeoTIFF writing (GDAL's COG driver: tiled, internal overviews)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

BLOCK = 128  # small tiles: a 256 px world still gets an overview level


def write_cog(
    path: Path,
    data: np.ndarray,
    transform: tuple[float, float, float, float, float, float],
    crs: str,
    nodata: float | None,
    overview_resampling: str = "average",
    colormap: Mapping[int, tuple[int, int, int]] | None = None,
    tags: Mapping[str, str] | None = None,
    descriptions: tuple[str, ...] | None = None,
) -> Path:
    """Write `data` (h, w) or (bands, h, w) as a COG at `path` in one pass.

    transform: affine (a, b, c, d, e, f) of the grid in `crs` units (metres);
    overview_resampling: "average" for measurements, "nearest" for classes.
    Float data get the floating-point predictor, integers the horizontal one.
    """
    import rasterio
    from affine import Affine

    arr = data[None] if data.ndim == 2 else data
    predictor = "FLOATING_POINT" if np.issubdtype(arr.dtype, np.floating) else "STANDARD"
    profile = dict(
        driver="COG",
        width=arr.shape[2],
        height=arr.shape[1],
        count=arr.shape[0],
        dtype=arr.dtype.name,
        crs=crs,
        transform=Affine(*transform),
        nodata=nodata,
        BLOCKSIZE=BLOCK,
        COMPRESS="DEFLATE",
        LEVEL=1,  # ~2x faster than the default 6 and as small on noisy imagery
        PREDICTOR=predictor,
        OVERVIEW_RESAMPLING=overview_resampling.upper(),
        NUM_THREADS="1",  # deterministic bytes, and the helpers share 2 cores
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
        if colormap is not None:
            dst.write_colormap(1, dict(colormap))
        if tags:
            dst.update_tags(**tags)
        if descriptions:
            for i, d in enumerate(descriptions, start=1):
                dst.set_band_description(i, d)
    return path
