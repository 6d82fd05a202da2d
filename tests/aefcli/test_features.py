"""`aef features`: designed-feature baselines from an ingested cube, in the embedding cube format."""

import json

import numpy as np
import pytest
from odc.geo.geobox import GeoBox
from typer.testing import CliRunner

from aefcli.cli import app
from aefcli.features import interpolate_gaps, month_edges, nan_mean_3x3
from aefcli.io.cube_writer import SourceArrays, write_cube
from aefcli.io.embedding_store import open_embeddings
from aefcli.parse import parse_period

runner = CliRunner()
CRS = "EPSG:32631"


def make_cube(tmp_path, n=20, seed=0):
    """An ingested cube (formats.md s1): S2 (2 bands, 3 dates a month in Jan-Apr 2024, March all cloudy) + S1."""
    rng = np.random.default_rng(seed)
    gb = GeoBox.from_bbox((499200, 5600440, 499200 + 10 * n, 5600440 + 10 * n), CRS, resolution=10)
    times = np.array([f"2024-{m:02d}-{d:02d}" for m in range(1, 5) for d in (5, 15, 25)], dtype="datetime64[ns]")
    t = len(times)
    s2 = rng.uniform(0.02, 0.5, (t, 2, n, n)).astype(np.float32)
    valid = rng.random((t, n, n)) > 0.3
    valid[6:9] = False  # March: no valid S2 at all -> interpolated
    valid[:, 0, 0] = False  # a pixel never observed -> NaN
    s1 = rng.normal(-12, 3, (t, 2, n, n)).astype(np.float32)
    sources = {
        "s2": SourceArrays(raw=s2, valid=valid, times=times, bands=("B04", "B08")),
        "s1": SourceArrays(raw=s1, valid=np.ones((t, n, n), bool), times=times, bands=("VV", "VH")),
    }
    path = write_cube(tmp_path / "cube.zarr", sources, gb, {"period": "2024-01-01/2024-05-01"}, chunk=8)
    return path, sources, gb


def features(*args):
    result = runner.invoke(app, ["features", *map(str, args), "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_median_is_the_per_band_median_of_valid_s2(tmp_path):
    cube, src, gb = make_cube(tmp_path)
    out = tmp_path / "median.zarr"
    res = features("--cube", cube, "--period", "2024-01-01/2024-05-01", "--kind", "median", "--out", out, "--chunk", "8")
    assert res["bands"] == 2 and res["chunks_written"] == 9
    arr = open_embeddings(out)
    assert list(arr.band.values) == ["B04_median", "B08_median"]
    assert arr.rio.crs.to_epsg() == 32631 and arr.rio.transform() == gb.affine
    assert arr.attrs["aef:embedding"]["kind"] == "features"
    got = arr.values
    s2 = src["s2"]
    want = np.nanmedian(np.where(s2.valid[:, None], s2.raw, np.nan), axis=0)  # (C, y, x)
    assert np.isnan(got[0, 0]).all()
    np.testing.assert_allclose(np.moveaxis(got, -1, 0)[:, 1:, 1:].ravel(), want[:, 1:, 1:].ravel()[:], rtol=1e-4)


def test_monthly_interpolates_gaps_and_smooth_is_a_nan_aware_3x3_mean(tmp_path):
    cube, src, gb = make_cube(tmp_path)
    m = features("--cube", cube, "--period", "2024-01-01/2024-05-01", "--kind", "monthly", "--out", tmp_path / "m.zarr",
                 "--chunk", "8")
    assert m["bands"] == 4 * 2 + 4 * 2
    arr = open_embeddings(tmp_path / "m.zarr")
    names = list(arr.band.values)
    assert names[:4] == ["B04_m01", "B08_m01", "B04_m02", "B08_m02"] and names[8] == "VV_m01"
    got = arr.values
    s2 = src["s2"]
    monthly = np.stack([np.nanmedian(np.where(s2.valid[3 * k:3 * k + 3, None], s2.raw[3 * k:3 * k + 3], np.nan), axis=0)
                        for k in range(4)])  # (4, C, y, x), March all NaN
    b04 = got[..., [names.index(f"B04_m0{k + 1}") for k in range(4)]]  # (y, x, 4)
    ok = np.isfinite(monthly[[0, 1, 3], 0]).all(axis=0)
    np.testing.assert_allclose(b04[..., 0][ok], monthly[0, 0][ok], rtol=1e-4)
    mid = (monthly[1, 0] + monthly[3, 0]) / 2  # March: the linear interpolation of Feb and April
    np.testing.assert_allclose(b04[..., 2][ok], mid[ok], rtol=1e-3)
    assert np.isnan(got[0, 0, :8]).all() and np.isfinite(got[0, 0, 8:]).all()  # S2 never valid, S1 fine

    features("--cube", cube, "--period", "2024-01-01/2024-05-01", "--kind", "monthly-smooth", "--out",
             tmp_path / "s.zarr", "--chunk", "8")
    smooth = open_embeddings(tmp_path / "s.zarr").values
    vv = got[..., 8]
    # chunk edges read a 1-pixel halo, so pixel (8, 8) (a chunk corner) averages across chunks
    np.testing.assert_allclose(smooth[8, 8, 8], np.nanmean(vv[7:10, 7:10]), rtol=1e-4)
    np.testing.assert_allclose(smooth[0, 5, 8], np.nanmean(vv[0:2, 4:7]), rtol=1e-4)


def test_helpers():
    edges = month_edges(parse_period("2024-01-15/2024-03-10"))
    assert [str(e)[:10] for e in edges] == ["2024-01-15", "2024-02-01", "2024-03-01", "2024-03-10"]
    s = np.array([np.nan, 1.0, np.nan, 3.0, np.nan], np.float32)[:, None]
    np.testing.assert_allclose(interpolate_gaps(s)[:, 0], [1, 1, 2, 3, 3])
    x = np.array([[1.0, np.nan], [3.0, 5.0]], np.float32)
    np.testing.assert_allclose(nan_mean_3x3(x), np.full((2, 2), 3.0))


def test_resume_and_refusals(tmp_path):
    from aefcli.errors import DataError, InputError
    from aefcli.io import embedding_store as es

    cube, _, _ = make_cube(tmp_path)
    out = tmp_path / "f.zarr"
    args = ["--cube", cube, "--period", "2024-01-01/2024-05-01", "--kind", "median", "--out", out, "--chunk", "8"]
    features(*args)
    before = open_embeddings(out).values
    # a half-written store: drop two chunks and un-complete it; the re-run writes only those
    import shutil

    shutil.rmtree(out / "embedding" / "c" / "2")
    doc = json.loads((out / "zarr.json").read_text())
    doc["attributes"]["aef:embedding"]["complete"] = False
    (out / "zarr.json").write_text(json.dumps(doc))
    res = features(*args)
    assert res["chunks_written"] == 3 and res["chunks_resumed"] == 6
    np.testing.assert_array_equal(open_embeddings(out).values, before)
    r = runner.invoke(app, ["features", *map(str, args[:-4]), "--kind", "monthly", "--out", str(out), "--chunk", "8"])
    assert isinstance(r.exception, InputError) and "other settings" in str(r.exception)
    r = runner.invoke(app, ["features", "--cube", str(cube), "--period", "2025-01-01/2025-02-01", "--out", str(tmp_path / "g.zarr")])
    assert isinstance(r.exception, DataError) and "no S2 frame" in str(r.exception)
    r = runner.invoke(app, ["features", "--cube", str(cube), "--period", "2024-01-01/2024-05-01", "--kind", "mean", "--out", str(tmp_path / "g.zarr")])
    assert isinstance(r.exception, InputError)
    assert not (tmp_path / "g.zarr").exists()
    assert es.store_attrs(out)["complete"] is True
