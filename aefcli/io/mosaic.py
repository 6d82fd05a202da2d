"""GDAL-readable mirrors of embedding stores: one COG per store, one VRT per UTM zone.

GDAL 3.10 (rasterio wheels) cannot read zarr-python 3 stores, so a mosaic that
any GIS opens needs GeoTIFF mirrors. A mirror keeps the store's dtype: float32
(NaN nodata) or the AEF int8 square-root quantisation (-128 nodata; tag
`AEF_QUANTISATION=aef-int8-sqrt`, dequantise with `embedding_store.dequantise`).
Bands are the store's `band` coordinate, 1-based.
"""

from __future__ import annotations

import os
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from aefcli.io import embedding_store as es

_GDAL_TYPE = {"float32": "Float32", "int8": "Int8"}


def write_cog(store: Path, dst: Path) -> Path:
    """Mirror a complete embedding store as a COG at `dst` (kept if newer than the store)."""
    import rasterio
    import rasterio.shutil
    import zarr
    from rasterio.windows import Window

    meta = store / "zarr.json"
    if dst.exists() and dst.stat().st_mtime >= meta.stat().st_mtime:
        return dst
    arr = zarr.open_array(store / es.VAR, mode="r")
    geobox = es.open_embeddings(store).odc.geobox
    ny, nx, nb = arr.shape
    dtype = str(arr.dtype)
    nodata = es.INT8_NODATA if dtype == "int8" else float("nan")
    dst.parent.mkdir(parents=True, exist_ok=True)
    plain, tmp = dst.with_name(dst.name + ".gtiff.tmp"), dst.with_name(dst.name + ".tmp")
    profile = dict(driver="GTiff", width=nx, height=ny, count=nb, dtype=dtype, crs=str(geobox.crs), transform=geobox.affine,
                   nodata=nodata, tiled=True, blockxsize=512, blockysize=512, interleave="pixel", BIGTIFF="IF_SAFER")
    step = arr.chunks[0]
    with rasterio.open(plain, "w", **profile) as out:
        for r0 in range(0, ny, step):
            block = np.asarray(arr[r0:r0 + step])  # (h, nx, nb)
            out.write(np.moveaxis(block, 2, 0), window=Window(0, r0, nx, block.shape[0]))
        out.update_tags(AEF_QUANTISATION="aef-int8-sqrt" if dtype == "int8" else "none", AEF_STORE=store.name)  # no ":" in GDAL keys
    rasterio.shutil.copy(plain, tmp, driver="COG", compress="DEFLATE", blocksize=512, BIGTIFF="IF_SAFER")
    plain.unlink()
    os.replace(tmp, dst)
    return dst


def write_vrts(out: Path, ids: list[str], geoboxes: dict) -> list[Path]:
    """One `mosaic-<EPSG>.vrt` per zone over `out/cog/<ID>.tif`; returns the VRT paths."""
    by_zone: dict[str, list[str]] = {}
    for i in ids:
        by_zone.setdefault(str(geoboxes[i].crs), []).append(i)
    paths = []
    for crs, members in sorted(by_zone.items()):
        boxes = [geoboxes[i] for i in members]
        res = boxes[0].affine.a
        left = min(g.affine.c for g in boxes)
        top = max(g.affine.f for g in boxes)
        right = max(g.affine.c + g.shape.x * res for g in boxes)
        bottom = min(g.affine.f - g.shape.y * res for g in boxes)
        width, height = round((right - left) / res), round((top - bottom) / res)
        import zarr

        first = zarr.open_array(out / f"{members[0]}.zarr" / es.VAR, mode="r")
        nb, dtype = first.shape[2], str(first.dtype)
        nodata = str(es.INT8_NODATA) if dtype == "int8" else "nan"
        lines = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">',
                 f"  <SRS>{escape(boxes[0].crs.to_wkt())}</SRS>",
                 f"  <GeoTransform>{left}, {res}, 0, {top}, 0, {-res}</GeoTransform>"]
        for b in range(1, nb + 1):
            lines.append(f'  <VRTRasterBand dataType="{_GDAL_TYPE[dtype]}" band="{b}"><NoDataValue>{nodata}</NoDataValue>')
            for i, g in zip(members, boxes):
                xoff, yoff = round((g.affine.c - left) / res), round((top - g.affine.f) / res)
                lines.append(f'    <SimpleSource><SourceFilename relativeToVRT="1">cog/{i}.tif</SourceFilename><SourceBand>{b}</SourceBand>'
                             f'<SrcRect xOff="0" yOff="0" xSize="{g.shape.x}" ySize="{g.shape.y}"/>'
                             f'<DstRect xOff="{xoff}" yOff="{yoff}" xSize="{g.shape.x}" ySize="{g.shape.y}"/></SimpleSource>')
            lines.append("  </VRTRasterBand>")
        lines.append("</VRTDataset>")
        epsg = boxes[0].crs.epsg
        path = out / f"mosaic-{epsg}.vrt"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, path)
        paths.append(path)
    for stale in out.glob("mosaic-*.vrt"):
        if stale not in paths:
            stale.unlink()
    return paths
