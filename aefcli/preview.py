"""A quick look at an embedding cube: its first three principal components as RGB.

The cube is read at a stride so that the preview is at most `max_size` pixels
on its longer side (memory stays bounded whatever the area); PCA is fitted on
the valid pixels of that thumbnail; each component is stretched between its
2nd and 98th percentile. Writes a PNG and a georeferenced GeoTIFF beside it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def pca_rgb(vectors: np.ndarray) -> np.ndarray:
    """(h, w, C) float (NaN = nodata) -> (h, w, 3) uint8 RGB of the first 3 PCs; nodata black."""
    h, w, c = vectors.shape
    flat = vectors.reshape(-1, c)
    ok = np.isfinite(flat).all(axis=1)
    rgb = np.zeros((h * w, 3), np.uint8)
    if ok.sum() >= 3:
        x = flat[ok].astype(np.float64)
        x -= x.mean(axis=0)
        # principal axes from the SVD of the centred data (no sklearn needed for 3 components)
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        pcs = x @ vt[:3].T
        if pcs.shape[1] < 3:
            pcs = np.pad(pcs, ((0, 0), (0, 3 - pcs.shape[1])))
        lo, hi = np.percentile(pcs, 2, axis=0), np.percentile(pcs, 98, axis=0)
        scaled = (pcs - lo) / np.where(hi > lo, hi - lo, 1.0)
        rgb[ok] = (np.clip(scaled, 0, 1) * 255).round().astype(np.uint8)
    return rgb.reshape(h, w, 3)


def write_pca_preview(store: str | Path, png: str | Path, max_size: int = 2048,
                      allow_incomplete: bool = False) -> tuple[Path, Path]:
    """PNG + GeoTIFF (same name, .tif) of the store's first 3 principal components. Returns both paths."""
    from PIL import Image

    from aefcli.io.embedding_store import open_embeddings
    from aefcli.io.geotiff import cog_writer

    arr = open_embeddings(store, allow_incomplete=allow_incomplete)
    ny, nx = arr.shape[:2]
    step = max(1, int(np.ceil(max(ny, nx) / max_size)))
    thumb = arr[::step, ::step].values  # strided read: at most max_size^2 x 64 values
    rgb = pca_rgb(thumb)
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    tmp = png.with_name(f".{png.name}.tmp.png")
    Image.fromarray(rgb).save(tmp, format="PNG")
    tmp.replace(png)
    tif = png.with_suffix(".tif")
    gbox = arr.odc.geobox if hasattr(arr, "odc") else None
    if gbox is None:
        from odc.geo.geobox import GeoBox

        gbox = GeoBox((ny, nx), arr.rio.transform(), arr.rio.crs)
    gbox = gbox[::step, ::step] if step > 1 else gbox
    with cog_writer(tif, gbox, count=3, dtype="uint8", nodata=None, band_names=["pc1", "pc2", "pc3"],
                    tags={"aef:preview": f"first 3 principal components of {Path(store).name}, stride {step}"}) as dst:
        dst.write(np.moveaxis(rgb, -1, 0))
    return png, tif
