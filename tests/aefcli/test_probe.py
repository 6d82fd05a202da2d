"""`aef probe` end to end on synthetic embedding cubes whose vectors carry a class signal."""

import json

import numpy as np
import pytest
import rasterio
from odc.geo.geobox import GeoBox
from typer.testing import CliRunner

from aefcli.cli import app
from aefcli.io import embedding_store as es
from aefcli.io.labels import pixel_centres

runner = CliRunner()
CRS = "EPSG:32631"
X0, Y1 = 499200.0, 5600640.0  # multiples of 240 m and 160 m: CV blocks align with parcels


def make_world(tmp_path, n=96, parcel=12, n_classes=3, class_signal=1.0, parcel_signal=0.3, noise=0.3,
               dtype="int8", chunk=32, seed=0, name="emb.zarr", nodata_rows=4):
    """A cube of parcels (parcel x parcel px squares, random class each) -> (store path, truth (n, n), geobox).

    Vector = class centroid * class_signal + parcel signature * parcel_signal + pixel noise, unit-normalised.
    The top `nodata_rows` rows are nodata.
    """
    rng = np.random.default_rng(seed)
    gb = GeoBox.from_bbox((X0, Y1 - 10 * n, X0 + 10 * n, Y1), CRS, resolution=10)
    m = n // parcel
    parcel_class = rng.integers(0, n_classes, (m, m))
    parcel_class.flat[:n_classes] = np.arange(n_classes)  # every class present
    truth = np.kron(parcel_class, np.ones((parcel, parcel), int))
    pid = np.kron(np.arange(m * m).reshape(m, m), np.ones((parcel, parcel), int))
    centroids = rng.normal(size=(n_classes, 64))
    signatures = rng.normal(size=(m * m, 64))
    v = class_signal * centroids[truth] + parcel_signal * signatures[pid] + noise * rng.normal(size=(n, n, 64))
    v = (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)
    v[:nodata_rows] = np.nan
    path = tmp_path / name
    es.create_store(path, gb, list(range(64)), dtype, chunk, {"kind": "embedding", "model": "synthetic"})
    for r in range(0, n, chunk):
        for c in range(0, n, chunk):
            es.write_block(path, v[r:r + chunk, c:c + chunk], r, c)
    es.mark_complete(path)
    return path, truth, gb


def write_points(path, gb, truth, n_points=300, seed=1, crs=None, field="class", names=("maize", "grass", "wheat"),
                 rows_from=4, values=None):
    """GeoJSON points at random pixel centres (below the nodata rows), in WGS84 or `crs`."""
    from pyproj import Transformer

    rng = np.random.default_rng(seed)
    rows = rng.integers(rows_from, truth.shape[0], n_points)
    cols = rng.integers(0, truth.shape[1], n_points)
    x, y = pixel_centres(gb.affine, rows, cols)
    if crs is None:
        x, y = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True).transform(x, y)
    feats = []
    for i in range(n_points):
        value = names[truth[rows[i], cols[i]]] if values is None else values(rows[i], cols[i])
        feats.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [float(x[i]), float(y[i])]},
                      "properties": {field: value}})
    doc = {"type": "FeatureCollection", "features": feats}
    if crs is not None:
        doc["crs"] = {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{crs.split(':')[1]}"}}
    path.write_text(json.dumps(doc))
    return path


def probe(*args):
    if "--block" not in args:
        args = (*args, "--block", "160")  # the synthetic world is 960 m wide
    result = runner.invoke(app, ["probe", *map(str, args), "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_probe_recovers_truth_and_writes_a_cog_map(tmp_path):
    from rio_cogeo.cogeo import cog_validate

    cube, truth, gb = make_world(tmp_path)
    labels = write_points(tmp_path / "labels.geojson", gb, truth)
    out = tmp_path / "map.tif"
    res = probe(labels, "--embeddings", cube, "--out", out, "--shots", "1,10,max", "--draws", "3", "--block", "160",
                "--proba", "--preview", tmp_path / "map.png")
    assert res["classes"] == ["grass", "maize", "wheat"]
    s = res["results"][0]["scores"]
    assert set(s) == {"1", "10", "max"}
    assert s["max"]["balanced_accuracy"]["mean"] > 0.9  # chance is 1/3
    assert s["10"]["balanced_accuracy"]["mean"] > 0.7 and s["1"]["n"] == 5 * 3
    assert s["1"]["balanced_accuracy"]["std"] >= 0
    assert len(s["max"]["confusion"]) == 3 and len(s["max"]["per_class_recall"]) == 3
    assert sum(map(sum, s["max"]["confusion"])) == res["counts"]["used"]

    valid, warnings = cog_validate(str(out))[:2]
    assert valid, warnings
    with rasterio.open(out) as src:
        assert src.crs.to_epsg() == 32631 and src.transform == gb.affine
        assert src.nodata == 255 and src.dtypes[0] == "uint8"
        assert json.loads(src.tags()["aef_classes"]) == ["grass", "maize", "wheat"]
        cmap = src.colormap(1)
        assert cmap[0][:3] != cmap[1][:3]
        pred = src.read(1)
    assert (pred[:4] == 255).all()  # nodata rows stay nodata
    names = np.array(["maize", "grass", "wheat"])[truth[4:]]
    mapped = np.array(res["classes"])[pred[4:]]
    assert (mapped == names).mean() > 0.95
    with rasterio.open(tmp_path / "map.proba.tif") as src:
        assert src.count == 4 and src.descriptions[0] == "max_probability"
        p = src.read()
    assert np.isnan(p[:, :4]).all()
    np.testing.assert_allclose(p[1:, 4:].sum(axis=0), 1, atol=1e-4)
    assert (p[0, 4:] >= 1 / 3 - 1e-6).all()
    from PIL import Image

    with Image.open(tmp_path / "map.png") as img:
        assert img.width > img.height  # map plus legend


def test_blocked_cv_is_lower_than_leaky_random_cv(tmp_path):
    # weak class signal, strong per-parcel signature: a 1-NN finds the same parcel when it may
    cube, truth, gb = make_world(tmp_path, class_signal=0.2, parcel_signal=1.0, noise=0.2, dtype="float32")
    labels = write_points(tmp_path / "labels.geojson", gb, truth, n_points=600)
    common = ["--embeddings", cube, "--model", "knn", "--k", "1", "--cv", "4"]
    leaky = probe(labels, *common, "--block", "0")["results"][0]["scores"]["max"]["balanced_accuracy"]["mean"]
    blocked = probe(labels, *common, "--block", "240")["results"][0]["scores"]["max"]["balanced_accuracy"]["mean"]
    assert leaky > 0.95
    assert blocked < leaky - 0.15


def test_points_in_wgs84_and_utm_give_identical_results(tmp_path):
    cube, truth, gb = make_world(tmp_path)
    a = write_points(tmp_path / "wgs84.geojson", gb, truth)
    b = write_points(tmp_path / "utm.geojson", gb, truth, crs=CRS)
    ra = probe(a, "--embeddings", cube, "--shots", "1,max", "--draws", "2")
    rb = probe(b, "--embeddings", cube, "--shots", "1,max", "--draws", "2")
    assert ra["results"] == rb["results"] and ra["counts"] == rb["counts"]


def test_several_cubes_are_scored_on_the_same_folds(tmp_path):
    good, truth, gb = make_world(tmp_path)
    noise, _, _ = make_world(tmp_path, class_signal=0.0, parcel_signal=0.0, seed=5, name="noise.zarr")
    labels = write_points(tmp_path / "labels.geojson", gb, truth)
    res = probe(labels, "--embeddings", good, "--embeddings", noise, "--shots", "10,max", "--draws", "2")
    assert [r["embeddings"] for r in res["results"]] == [str(good), str(noise)]
    g, n = (r["scores"]["max"]["balanced_accuracy"]["mean"] for r in res["results"])
    assert g > 0.9 and n < 0.55
    assert sum(map(sum, res["results"][1]["scores"]["max"]["confusion"])) == res["counts"]["used"]


def test_ridge_regression_scores_and_float_map(tmp_path):
    cube, truth, gb = make_world(tmp_path, dtype="float32")
    target = {0: 10.0, 1: 20.0, 2: 35.0}
    labels = write_points(tmp_path / "labels.geojson", gb, truth, field="yield", values=lambda r, c: target[truth[r, c]])
    out = tmp_path / "yield.tif"
    res = probe(labels, "--embeddings", cube, "--field", "yield", "--model", "ridge", "--out", out)
    s = res["results"][0]["scores"]["max"]
    assert res["task"] == "regression" and s["r2"]["mean"] > 0.8 and s["rmse"]["mean"] < 5
    with rasterio.open(out) as src:
        m = src.read(1)
        assert src.dtypes[0] == "float32"
    assert np.isnan(m[:4]).all()
    assert np.abs(m[4:] - np.vectorize(target.get)(truth[4:])).mean() < 3


def test_polygon_labels_contribute_their_pixels_and_are_capped(tmp_path):
    cube, truth, gb = make_world(tmp_path)
    feats = []
    for pr in range(1, 8):  # whole parcels as polygons (below the nodata rows)
        for pc in range(8):
            x0, y0 = X0 + pc * 120, Y1 - pr * 120
            x1, y1 = x0 + 120, y0 - 120
            ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
            feats.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
                          "properties": {"crop": int(truth[pr * 12, pc * 12])}})
    doc = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": CRS}}, "features": feats}
    path = tmp_path / "parcels.geojson"
    path.write_text(json.dumps(doc))
    full = probe(path, "--embeddings", cube, "--field", "crop", "--block", "240")
    assert full["counts"]["pixels"] == 56 * 144 and full["classes"] == ["0", "1", "2"]
    capped = probe(path, "--embeddings", cube, "--field", "crop", "--block", "240", "--max-per-polygon", "10")
    assert capped["counts"]["pixels"] == 56 * 10
    assert capped["results"][0]["scores"]["max"]["balanced_accuracy"]["mean"] > 0.9


def test_labels_outside_and_on_nodata_are_counted(tmp_path):
    cube, truth, gb = make_world(tmp_path)
    labels = write_points(tmp_path / "labels.geojson", gb, truth, rows_from=0, n_points=400)
    doc = json.loads(labels.read_text())
    doc["features"].append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [10.0, 10.0]},
                            "properties": {"class": "maize"}})
    labels.write_text(json.dumps(doc))
    res = probe(labels, "--embeddings", cube)
    c = res["counts"]
    assert c["outside"] == 1 and c["features"] == 401 and c["nodata"] > 0
    assert c["used"] == c["pixels"] - c["nodata"]
