"""Wall-to-wall prediction of a fitted probe, chunk by chunk, into COGs (memory flat in area)."""

from __future__ import annotations

import json

import numpy as np

from aefcli import __version__, console
from aefcli.io.geotiff import CLASS_NODATA, class_colour, cog_writer


def _windows(arr):
    """(row0, row1, col0, col1) per dask chunk of the (y, x) grid."""
    r_edges = np.cumsum((0,) + arr.chunks[0])
    c_edges = np.cumsum((0,) + arr.chunks[1])
    for r0, r1 in zip(r_edges[:-1], r_edges[1:]):
        for c0, c1 in zip(c_edges[:-1], c_edges[1:]):
            yield int(r0), int(r1), int(c0), int(c1)


def write_map(cfg, arr, model, classes: list[str] | None, result: dict) -> None:
    """Predict every pixel of `arr` (lazy (y, x, band)) with `model`; write cfg.out (+ proba).

    Classes: uint8 indices with a colour table, names in the `aef_classes` tag,
    255 = nodata. Regression: float32 values, NaN = nodata. With cfg.proba a
    float32 COG beside the map holds the max class probability (band 1) and one
    probability per class.
    """
    from contextlib import ExitStack

    from odc.geo.geobox import GeoBox
    from rasterio.windows import Window

    if classes is not None and len(classes) > 255:
        from aefcli.errors import InputError

        raise InputError(f"{len(classes)} classes do not fit a uint8 map (max 255); merge classes or raise --min-per-class.")
    grid = GeoBox((arr.sizes["y"], arr.sizes["x"]), arr.rio.transform(), arr.rio.crs)
    tags = {"aef_version": __version__, "aef_probe": json.dumps(result["config"]), "aef_source": str(cfg.embeddings[0])}
    if classes is not None:
        tags["aef_classes"] = json.dumps(classes)
        tags.update({f"CLASS_{i}": name for i, name in enumerate(classes)})
        cmap = {i: class_colour(i) + (255,) for i in range(len(classes))}
        cmap[CLASS_NODATA] = (0, 0, 0, 0)
        main = dict(count=1, dtype="uint8", nodata=CLASS_NODATA, colormap=cmap, band_names=["class"])
    else:
        main = dict(count=1, dtype="float32", nodata=float("nan"), band_names=[cfg.field])
    windows = list(_windows(arr))
    with ExitStack() as stack:
        dst = stack.enter_context(cog_writer(cfg.out, grid, tags=tags, **main))
        pdst = None
        if cfg.proba_path is not None and classes is not None:
            names = ["max_probability"] + [f"p_{c}" for c in classes]
            pdst = stack.enter_context(cog_writer(cfg.proba_path, grid, count=len(names), dtype="float32",
                                                  nodata=float("nan"), tags=tags, band_names=names))
        for r0, r1, c0, c1 in console.progress(windows, total=len(windows), desc="map", unit="chunk"):
            block = np.asarray(arr.data[r0:r1, c0:c1].compute(), dtype=np.float32)  # (h, w, C)
            h, w, nb = block.shape
            flat = block.reshape(-1, nb)
            ok = np.isfinite(flat).all(axis=1)
            win = Window(c0, r0, w, h)
            if classes is not None:
                out = np.full(h * w, CLASS_NODATA, np.uint8)
            else:
                out = np.full(h * w, np.nan, np.float32)
            if ok.any():
                out[ok] = model.predict(flat[ok])
            dst.write(out.reshape(1, h, w), window=win)
            if pdst is not None:
                prob = np.full((h * w, len(classes) + 1), np.nan, np.float32)
                if ok.any():
                    p = model.predict_proba(flat[ok])
                    full = np.zeros((p.shape[0], len(classes)), np.float32)
                    full[:, model.classes_.astype(int)] = p
                    prob[ok, 0] = full.max(axis=1)
                    prob[ok, 1:] = full
                pdst.write(prob.T.reshape(-1, h, w), window=win)
