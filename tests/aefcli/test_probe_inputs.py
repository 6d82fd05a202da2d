"""`aef probe` bad inputs (one-line errors, exit 1, no partial map) and AEF int8 GeoTIFF sources."""

import json
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from affine import Affine
from typer.testing import CliRunner

from aefcli.cli import app
from aefcli.errors import AefError
from aefcli.io.embedding_store import dequantise, quantise
from aefcli.io.geotiff import open_geotiff_embeddings
from test_probe import CRS, make_world, probe, write_points

runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("world")
    cube, truth, gb = make_world(d, n=48, chunk=16)
    return d, cube, truth, gb


def _collection(features, crs=None):
    doc = {"type": "FeatureCollection", "features": features}
    if crs:
        doc["crs"] = {"type": "name", "properties": {"name": crs}}
    return json.dumps(doc)


def _pt(x, y, **props):
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [x, y]}, "properties": props}


def _bad_inputs(d, gb, truth):
    inside = [_pt(499200 + 5 + 10 * i, 5600640 - 50 - 10 * i, class_="a") for i in range(3)]
    for f in inside:
        f["properties"] = {"class": "a"}
    return {
        "malformed": ("{ not json", [], "not valid GeoJSON"),
        "no_features": (_collection([]), [], "no features"),
        "missing_field": (write_points(d / "pts.geojson", gb, truth).read_text(), ["--field", "crop"], "no feature"),
        "one_class": (_collection(inside, CRS), [], "only one class"),
        "fewer_than_folds": (_collection([_pt(499205, 5600595, **{"class": "a"}), _pt(499405, 5600395, **{"class": "b"})], CRS),
                             [], "for --cv 5 folds"),
        "all_outside": (_collection([_pt(10.0, 10.0, **{"class": "a"}), _pt(11.0, 10.0, **{"class": "b"})]), [], "outside the cube"),
        "non_numeric_target": (write_points(d / "pts2.geojson", gb, truth).read_text(), ["--model", "ridge"], "numeric target"),
    }


CASES = ["malformed", "no_features", "missing_field", "one_class", "fewer_than_folds", "all_outside", "non_numeric_target"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_error_and_leaves_no_map(world, tmp_path, case):
    d, cube, truth, gb = world
    text, extra, message = _bad_inputs(tmp_path, gb, truth)[case]
    labels = tmp_path / "labels.geojson"
    labels.write_text(text)
    out = tmp_path / "map.tif"
    preview = [] if "ridge" in extra else ["--preview", str(tmp_path / "p.png")]
    result = runner.invoke(app, ["probe", str(labels), "--embeddings", str(cube), "--out", str(out), *preview,
                                 "--block", "160", *extra])
    assert isinstance(result.exception, AefError), result.exception
    assert message in str(result.exception) and "\n" not in str(result.exception)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({"labels.geojson", "pts.geojson", "pts2.geojson"})


def test_cli_maps_bad_input_to_exit_1_without_traceback(world, tmp_path):
    d, cube, truth, gb = world
    labels = tmp_path / "labels.geojson"
    labels.write_text(_collection([]))
    proc = subprocess.run([sys.executable, "-m", "aefcli", "probe", str(labels), "--embeddings", str(cube),
                           "--out", str(tmp_path / "map.tif")], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("aef: error:")
    assert "Traceback" not in proc.stderr and not (tmp_path / "map.tif").exists()


def test_a_map_that_fails_midway_is_removed(world, tmp_path, monkeypatch):
    import rasterio.windows

    d, cube, truth, gb = world
    labels = write_points(tmp_path / "labels.geojson", gb, truth)
    calls = {"n": 0}
    real = rasterio.windows.Window

    def failing_window(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real(*a, **k)

    monkeypatch.setattr("rasterio.windows.Window", failing_window)
    result = runner.invoke(app, ["probe", str(labels), "--embeddings", str(cube), "--out", str(tmp_path / "map.tif"),
                                 "--proba", "--block", "160"])
    assert isinstance(result.exception, OSError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.geojson"]


def _aef_tiff(path, values, gb, bottom_up):
    """Write a 64-band int8 AEF-layout GeoTIFF; bottom_up stores row 0 = south with a positive pixel height."""
    q = np.moveaxis(quantise(values), -1, 0)  # (64, h, w)
    t = gb.affine
    if bottom_up:
        q = q[:, ::-1]
        t = Affine(t.a, 0, t.c, 0, -t.e, t.f + t.e * values.shape[0])
    with rasterio.open(path, "w", driver="GTiff", width=q.shape[2], height=q.shape[1], count=64, dtype="int8",
                       crs=CRS, transform=t, nodata=-128) as dst:
        dst.write(q)


@pytest.mark.parametrize("bottom_up", [False, True])
def test_aef_int8_geotiff_is_read_north_up_and_dequantised(tmp_path, bottom_up):
    from odc.geo.geobox import GeoBox

    gb = GeoBox.from_bbox((499200, 5600400, 499400, 5600640), CRS, resolution=10)  # 24 x 20 px
    rng = np.random.default_rng(0)
    v = rng.normal(size=(24, 20, 64)).astype(np.float32)
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    v[0, 0] = np.nan  # north-west corner is nodata
    path = tmp_path / "aef.tif"
    _aef_tiff(path, v, gb, bottom_up)
    arr = open_geotiff_embeddings(path)
    assert arr.dims == ("y", "x", "band") and arr.shape == (24, 20, 64) and arr.dtype == np.float32
    assert arr.rio.transform() == gb.affine and arr.rio.crs.to_epsg() == 32631
    got = arr.values
    np.testing.assert_array_equal(got[1:], dequantise(quantise(v[1:])))
    assert np.isnan(got[0, 0]).all() and np.isfinite(got[0, 1]).all()
    assert arr.y.values[0] > arr.y.values[-1]


def test_probe_on_aef_geotiffs_matches_the_zarr_cube(tmp_path):
    from aefcli.io.embedding_store import open_embeddings

    cube, truth, gb = make_world(tmp_path, n=48, chunk=16)
    v = open_embeddings(cube).values
    scores = []
    labels = write_points(tmp_path / "labels.geojson", gb, truth, n_points=200)
    for src in [cube] + [tmp_path / f"aef_{b}.tif" for b in (False, True)]:
        if src != cube:
            _aef_tiff(src, v, gb, src.name == "aef_True.tif")
        scores.append(probe(labels, "--embeddings", src)["results"][0]["scores"])
    assert scores[0] == scores[1] == scores[2]
