"""`aef probe` end to end on REAL labels and imagery from ../shared/data (skipped when absent).

The "embedding cubes" here are designed per-pixel features built straight from the
real time series (monthly cloud-masked S2 medians; an NDVI series), written with the
embedding store, and the labels are real parcel / land-cover rasters sampled as
GeoJSON points, so the whole label -> sample -> blocked CV -> map path runs on real data.
"""

import json

import numpy as np
import pytest
from affine import Affine
from odc.geo.geobox import GeoBox
from pyproj import Transformer

from aefcli.features import interpolate_gaps
from aefcli.io import embedding_store as es
from aefcli.io.labels import pixel_centres
from test_probe import probe

pytestmark = pytest.mark.shared_data


def _store(path, gb, feats, names):
    es.create_store(path, gb, names, "float32", 64, {"kind": "features", "source": "shared/data test"})
    es.write_block(path, feats.astype(np.float32), 0, 0)
    es.mark_complete(path)
    return path


def _points(path, gb, label, n, seed, crs=None):
    rng = np.random.default_rng(seed)
    rows, cols = np.nonzero(label > 0)
    pick = rng.choice(rows.size, min(n, rows.size), replace=False)
    x, y = pixel_centres(gb.affine, rows[pick], cols[pick])
    if crs is None:
        x, y = Transformer.from_crs(gb.crs, "EPSG:4326", always_xy=True).transform(x, y)
    feats = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [float(a), float(b)]},
              "properties": {"class": int(label[r, c])}} for a, b, r, c in zip(x, y, rows[pick], cols[pick])]
    doc = {"type": "FeatureCollection", "features": feats}
    if crs:
        doc["crs"] = {"type": "name", "properties": {"name": crs}}
    path.write_text(json.dumps(doc))
    return path


def test_worldcereal_crop_types_probe_end_to_end(shared_data, tmp_path):
    import xarray as xr

    d = shared_data / "worldcereal-flanders-2018"
    s10 = next(d.glob("S2_L2A_10m_*.nc"), None)
    if s10 is None:
        pytest.skip("worldcereal-flanders-2018 is absent")
    ds = xr.open_dataset(s10, mask_and_scale=False)
    scl = xr.open_dataset(next(d.glob("S2_L2A_20m_*.nc")), mask_and_scale=False)["SCL"].values
    ct = xr.open_dataset(next(d.glob("OUTPUT_POLY-110_10m_*.nc")), mask_and_scale=False)["CT"].values.astype(int)
    bands = ["B02", "B03", "B04", "B08"]
    raw = np.stack([ds[b].values for b in bands], axis=1).astype(np.float32) * 1e-4  # (T, 4, 64, 64)
    clear = np.isin(scl, (4, 5)).repeat(2, axis=1).repeat(2, axis=2) & (raw > 0).all(axis=1)
    months = ds["timestamp"].values.astype("datetime64[M]")
    feats = []
    for m in np.arange(np.datetime64("2018-01"), np.datetime64("2019-01")):
        sel = months == m
        with np.errstate(all="ignore"), __import__("warnings").catch_warnings():
            __import__("warnings").simplefilter("ignore")
            feats.append(np.nanmedian(np.where(clear[sel, None], raw[sel], np.nan), axis=0))
    monthly = interpolate_gaps(np.stack(feats))  # (12, 4, 64, 64)
    cube_feats = np.moveaxis(monthly.reshape(-1, 64, 64), 0, -1)
    gb = GeoBox((64, 64), Affine(10, 0, 501360, 0, -10, 5629680), "EPSG:32631")
    names = [f"{b}_m{k + 1:02d}" for k in range(12) for b in bands]
    cube = _store(tmp_path / "monthly.zarr", gb, cube_feats, names)
    labels = _points(tmp_path / "ct.geojson", gb, ct, 800, seed=0)
    out = tmp_path / "ct.tif"
    res = probe(labels, "--embeddings", cube, "--out", out, "--shots", "1,10,max", "--draws", "3", "--block", "160",
                "--cv", "4", "--min-per-class", "20", "--preview", tmp_path / "ct.png")
    assert set(res["classes"]) >= {"1200", "9120"}  # maize and permanent grass
    k = len(res["classes"])
    s = res["results"][0]["scores"]
    assert s["max"]["balanced_accuracy"]["mean"] > 1 / k + 0.25, s["max"]
    assert s["1"]["balanced_accuracy"]["mean"] > 1 / k
    assert out.exists() and (tmp_path / "ct.png").exists()


def test_slovenia_land_cover_probe_in_utm33_points(shared_data, tmp_path):
    d = shared_data / "eolearn-slovenia" / "TestEOPatch"
    if not d.is_dir():
        pytest.skip("eolearn-slovenia is absent")
    ndvi = np.load(d / "data" / "NDVI.npy")[..., 0]  # (68, 101, 100)
    ok = np.load(d / "mask" / "IS_VALID.npy")[..., 0].astype(bool) & np.isfinite(ndvi)
    lulc = np.load(d / "mask_timeless" / "LULC.npy")[..., 0].astype(int)
    series = interpolate_gaps(np.where(ok, ndvi, np.nan).astype(np.float32))  # (68, 101, 100)
    x0, y0, x1, y1 = 465181.05, 5079244.89, 466180.53, 5080254.63
    gb = GeoBox((101, 100), Affine((x1 - x0) / 100, 0, x0, 0, -(y1 - y0) / 101, y1), "EPSG:32633")
    cube = _store(tmp_path / "ndvi.zarr", gb, np.moveaxis(series, 0, -1), [f"NDVI_{i:02d}" for i in range(68)])
    labels = _points(tmp_path / "lulc.geojson", gb, lulc, 1000, seed=1, crs="EPSG:32633")
    res = probe(labels, "--embeddings", cube, "--out", tmp_path / "lulc.tif", "--shots", "10,max", "--draws", "2",
                "--block", "200", "--cv", "4", "--min-per-class", "20", "--model", "logistic", "--balanced")
    assert "2" in res["classes"] and "3" in res["classes"]  # forest, grassland
    k = len(res["classes"])
    assert res["counts"]["outside"] == 0
    assert res["results"][0]["scores"]["max"]["balanced_accuracy"]["mean"] > 1 / k + 0.15
