"""GeoTIFF in and out: embedding GeoTIFFs (AEF int8 or float) and probe maps as COGs.

Maps are written window by window into a tiled temporary GeoTIFF and then
copied by GDAL's COG driver (which streams), so memory stays flat in area;
the final file appears by rename only when complete.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from aefcli.errors import DataError

CLASS_NODATA = 255
# Distinct colours (Tableau 20 order) for up to 20 classes; cycled beyond.
PALETTE = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
    (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (174, 199, 232), (255, 187, 120),
    (152, 223, 138), (255, 152, 150), (197, 176, 213), (196, 156, 148), (247, 182, 210), (199, 199, 199),
    (219, 219, 141), (158, 218, 229),
]


def class_colour(i: int) -> tuple[int, int, int]:
    return PALETTE[i % len(PALETTE)]


def open_geotiff_embeddings(path: str | Path, chunk: int = 512):
    """A GeoTIFF embedding cube as a lazy (y, x, band) float32 DataArray, north-up.

    64-band int8 files are the public AlphaEarth Satellite Embedding layout and
    are dequantised ((q/127.5)^2 * sign(q), -128 = nodata). Other dtypes are
    read as float with their nodata as NaN. Files stored bottom-up (positive
    pixel height) are flipped so that row 0 is the northern edge.
    """
    import dask.array as da
    import rasterio
    import rioxarray  # noqa: F401
    import xarray as xr
    from affine import Affine

    from aefcli.io.embedding_store import dequantise

    try:
        with rasterio.open(path) as src:
            crs, transform, nodata, dtype, count = src.crs, src.transform, src.nodata, src.dtypes[0], src.count
            names = [d or str(i) for i, d in enumerate(src.descriptions)]
    except rasterio.errors.RasterioIOError as err:
        raise DataError(f"cannot read embedding GeoTIFF {path}: {err}") from None
    if crs is None:
        raise DataError(f"{path} has no CRS; give a georeferenced embedding GeoTIFF.")
    if transform.b or transform.d:
        raise DataError(f"{path} is rotated; warp it north-up first (gdalwarp).")
    raw = xr.open_dataarray(path, engine="rasterio", chunks={"band": -1, "y": chunk, "x": chunk}, mask_and_scale=False)
    data = raw.data.transpose(1, 2, 0)  # (band, y, x) -> (y, x, band)
    if dtype == "int8" and count == 64:
        data = da.map_blocks(dequantise, data, dtype=np.float32)
    else:
        data = data.astype(np.float32)
        if nodata is not None:
            data = da.where(data == np.float32(nodata), np.float32(np.nan), data)
    ny = raw.sizes["y"]
    if transform.e > 0:  # bottom-up: row 0 is the southern edge
        data = data[::-1]
        transform = Affine(transform.a, 0.0, transform.c, 0.0, -transform.e, transform.f + transform.e * ny)
    band = np.arange(count) if dtype == "int8" and count == 64 else np.array(names, dtype=object)
    xs = transform.c + transform.a * (np.arange(raw.sizes["x"]) + 0.5)
    ys = transform.f + transform.e * (np.arange(ny) + 0.5)
    out = xr.DataArray(data, dims=("y", "x", "band"), coords={"y": ys, "x": xs, "band": band}, name="embedding")
    return out.rio.write_crs(crs).rio.write_transform(transform)


@contextmanager
def cog_writer(path: str | Path, geobox, count: int, dtype: str, nodata, tags: dict | None = None,
               band_names: Sequence[str] | None = None, colormap: dict | None = None, block: int = 256) -> Iterator:
    """Yield an open tiled GeoTIFF to write windows into; on success it becomes a COG at `path`.

    On any exception nothing is left at `path` (and no temporary file stays).
    """
    import rasterio
    from rasterio.shutil import copy as rio_copy

    path = Path(path)
    ny, nx = geobox.shape.yx
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.tif")
    part = path.with_name(f".{path.name}.{os.getpid()}.part.tif")
    profile = dict(driver="GTiff", width=nx, height=ny, count=count, dtype=dtype, crs=str(geobox.crs),
                   transform=geobox.affine, nodata=nodata, tiled=True, blockxsize=block, blockysize=block,
                   compress="deflate", BIGTIFF="IF_SAFER")
    try:
        with rasterio.open(tmp, "w", **profile) as dst:
            if tags:
                dst.update_tags(**{k: str(v) for k, v in tags.items()})
            for i, name in enumerate(band_names or [], start=1):
                dst.set_band_description(i, name)
            if colormap:
                dst.write_colormap(1, colormap)
            yield dst
        resampling = "NEAREST" if colormap else "AVERAGE"
        rio_copy(tmp, part, driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=block, OVERVIEW_RESAMPLING=resampling,
                 BIGTIFF="IF_SAFER")
        part.replace(path)
    finally:
        for f in (tmp, part):
            if f.exists():
                f.unlink()


def write_preview(map_path: str | Path, png_path: str | Path, class_names: Sequence[str], max_size: int = 1024) -> None:
    """A PNG of a class map COG (read from its overviews) with a colour legend on the right."""
    import rasterio
    from PIL import Image, ImageDraw, ImageFont

    with rasterio.open(map_path) as src:
        scale = max(1, int(np.ceil(max(src.width, src.height) / max_size)))
        h, w = max(1, src.height // scale), max(1, src.width // scale)
        cls = src.read(1, out_shape=(h, w))
    rgb = np.zeros((h, w, 3), np.uint8)
    for i in range(len(class_names)):
        rgb[cls == i] = class_colour(i)
    img = Image.fromarray(rgb)
    if max(h, w) < 256:  # tiny maps are blown up so the legend stays legible beside them
        f = 256 // max(h, w)
        img = img.resize((w * f, h * f), Image.NEAREST)
    font = ImageFont.load_default()
    row = 16
    legend_w = 24 + max(int(ImageDraw.Draw(img).textlength(n, font=font)) for n in class_names) + 8
    out = Image.new("RGB", (img.width + legend_w, max(img.height, row * len(class_names) + 8)), (255, 255, 255))
    out.paste(img, (0, 0))
    draw = ImageDraw.Draw(out)
    for i, name in enumerate(class_names):
        y0 = 4 + i * row
        draw.rectangle([img.width + 6, y0, img.width + 18, y0 + 12], fill=class_colour(i), outline=(0, 0, 0))
        draw.text((img.width + 24, y0), name, fill=(0, 0, 0), font=font)
    tmp = Path(png_path).with_name(f".{Path(png_path).name}.tmp.png")
    out.save(tmp, format="PNG")
    tmp.replace(png_path)


def remove_quietly(*paths: str | Path | None) -> None:
    """Delete outputs of a failed run (files or directories) if they exist."""
    for p in paths:
        if p is None:
            continue
        p = Path(p)
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists():
            p.unlink()
