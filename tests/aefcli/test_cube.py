"""The cube writer/reader contract (docs/formats.md section 1) and the normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from aefcli.errors import DataError, InputError
from aefcli.io.cube import SKIPPED, WRITTEN, open_cube
from aefcli.io.cube_writer import SourceArrays, SourceLayout, create_cube, write_cube
from aefcli.normalise import LOG_OFFSET, NormStats, RunningStats, destandardise, forward, inverse, standardise


def _geobox(ny=40, nx=30):
    from odc.geo.geobox import GeoBox

    return GeoBox.from_bbox((500000, 5600000, 500000 + nx * 10, 5600000 + ny * 10), "EPSG:32631", resolution=10)


def _s2(nt=4, ny=40, nx=30, seed=0):
    rng = np.random.default_rng(seed)
    raw = rng.uniform(0.01, 0.5, size=(nt, 3, ny, nx)).astype(np.float32)
    valid = rng.random((nt, ny, nx)) > 0.2
    times = np.array(["2024-01-05", "2024-02-05", "2024-03-05", "2024-04-05"][:nt], dtype="datetime64[ns]")
    return SourceArrays(raw, valid, times, ("B02", "B03", "B04"), tuple(f"item-{i}" for i in range(nt)))


def test_transform_roundtrip_and_log_definition():
    r = np.array([0.0, 0.02, 0.3, 1.2], dtype=np.float32)
    np.testing.assert_allclose(forward(r, "log"), np.log(r + LOG_OFFSET), rtol=1e-6)
    np.testing.assert_allclose(inverse(forward(r, "log"), "log"), r, atol=1e-6)
    assert forward(np.float32(-0.05), "log") == pytest.approx(np.log(LOG_OFFSET))  # negatives clip to 0
    stats = NormStats("log", ("a", "b"), (-2.0, -1.0), (0.5, 2.0))
    x = np.abs(np.random.default_rng(1).normal(0.2, 0.1, size=(3, 2, 4, 4))).astype(np.float32)
    np.testing.assert_allclose(destandardise(standardise(x, stats), stats), x, atol=1e-5)
    assert NormStats.from_dict(stats.to_dict()) == stats


def test_normstats_validation():
    with pytest.raises(InputError):
        NormStats("log", ("a",), (0.0,), (0.0,))
    with pytest.raises(InputError):
        NormStats("sqrt", ("a",), (0.0,), (1.0,))
    with pytest.raises(InputError):
        NormStats.from_dict({"bands": ["a"]})
    with pytest.raises(DataError):
        NormStats("log", ("a",), (0.0,), (1.0,)).select(("b",))


def test_running_stats_over_valid_pixels_only():
    raw = np.stack([np.full((2, 3, 3), 0.1), np.full((2, 3, 3), 5.0)]).astype(np.float32)  # (T=2, C=2, 3, 3)
    valid = np.stack([np.ones((3, 3), bool), np.zeros((3, 3), bool)])
    acc = RunningStats(("a", "b"), "identity")
    acc.add(raw, valid)
    stats = acc.result()
    assert stats.mean == pytest.approx((0.1, 0.1))  # the invalid frame of 5.0 is ignored


def test_write_then_read_window_matches_and_overhang_is_invalid(tmp_path):
    src = _s2()
    path = write_cube(tmp_path / "c.zarr", {"s2": src}, _geobox(), attrs={"period": "2024-01-01/2025-01-01"}, chunk=16)
    cube = open_cube(path)
    assert cube.sources == ("s2",)
    assert cube.bands["s2"] == ("B02", "B03", "B04")
    np.testing.assert_array_equal(cube.times["s2"], src.times)
    assert cube.geobox == _geobox()
    stats = cube.norm["s2"]
    assert stats.transform == "log"
    t = forward(src.raw, "log")
    for c in range(3):  # statistics over valid pixels only
        np.testing.assert_allclose(stats.mean[c], t[:, c][src.valid].mean(), rtol=1e-5)
        np.testing.assert_allclose(stats.std[c], t[:, c][src.valid].std(), rtol=1e-4)

    win = cube.read_window("s2", rows=slice(-5, 15), cols=slice(20, 40))
    assert win.values.shape == (4, 3, 20, 20) and win.valid.shape == (4, 20, 20)
    assert not win.valid[:, :5].any() and not win.valid[:, :, 10:].any()  # overhang rows < 0 and cols >= 30
    expect = standardise(src.raw[:, :, 0:15, 20:30], stats)
    inside_valid = src.valid[:, 0:15, 20:30]
    np.testing.assert_array_equal(win.valid[:, 5:, :10], inside_valid)
    got = win.values[:, :, 5:, :10]
    np.testing.assert_allclose(got[np.broadcast_to(inside_valid[:, None], got.shape)],
                               expect[np.broadcast_to(inside_valid[:, None], got.shape)], rtol=1e-5)
    assert (win.values[~np.broadcast_to(win.valid[:, None], win.values.shape)] == 0).all()


def test_read_window_period_and_foreign_norm(tmp_path):
    path = write_cube(tmp_path / "c.zarr", {"s2": _s2()}, _geobox(), chunk=16)
    cube = open_cube(path)
    win = cube.read_window("s2", slice(0, 4), slice(0, 4), period=("2024-02-01", "2024-04-05"))
    np.testing.assert_array_equal(win.times, np.array(["2024-02-05", "2024-03-05"], dtype="datetime64[ns]"))
    other = NormStats("log", ("B04", "B03", "B02"), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    win = cube.read_window("s2", slice(0, 4), slice(0, 4), norm=other)
    raw, valid = cube.read_raw("s2", 0)
    np.testing.assert_allclose(win.values[0][:, valid[:4, :4]], forward(raw[:, :4, :4], "log")[:, valid[:4, :4]], rtol=1e-6)


def test_crs_survives_for_rioxarray(tmp_path):
    import xarray as xr

    path = write_cube(tmp_path / "c.zarr", {"s2": _s2()}, _geobox(), chunk=16)
    ds = xr.open_zarr(path, group="s2", decode_coords="all", consolidated=False)
    assert ds.rio.crs.to_epsg() == 32631
    assert ds.raw.dims == ("time", "band", "y", "x") and ds.raw.dtype == np.float32
    assert ds.valid.dtype == bool
    assert list(ds.item_id.values) == [f"item-{i}" for i in range(4)]
    assert tuple(ds.rio.transform())[:6] == tuple(_geobox().affine)[:6]


def test_incomplete_and_missing_cube_refused(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        open_cube(tmp_path / "nope.zarr")
    src = _s2()
    writer = create_cube(tmp_path / "c.zarr", {"s2": src.layout()}, _geobox(), chunk=16)
    with pytest.raises(DataError, match="incomplete"):
        open_cube(tmp_path / "c.zarr")
    with pytest.raises(DataError, match="pending"):
        writer.finish()
    with pytest.raises(InputError, match="already exists"):
        create_cube(tmp_path / "c.zarr", {"s2": src.layout()}, _geobox())


def test_skipped_frames_are_dropped_by_the_reader(tmp_path):
    src = _s2()
    writer = create_cube(tmp_path / "c.zarr", {"s2": src.layout()}, _geobox(), chunk=16)
    for t in range(4):
        if t == 1:
            writer.skip_frame("s2", t)
            continue
        writer.write_frame("s2", t, src.raw[t], src.valid[t])
        writer.mark("s2", t, WRITTEN)
    assert list(writer.frame_state("s2")) == [WRITTEN, SKIPPED, WRITTEN, WRITTEN]
    writer.set_norm("s2", NormStats("log", src.bands, (0, 0, 0), (1, 1, 1)))
    writer.finish()
    cube = open_cube(tmp_path / "c.zarr")
    assert cube.item_ids["s2"] == ("item-0", "item-2", "item-3")
    assert cube.read_window("s2", slice(0, 2), slice(0, 2)).values.shape[0] == 3


def test_layout_validation():
    with pytest.raises(InputError):
        SourceLayout(np.array(["2024-01-01"], dtype="datetime64[ns]"), ("B02",), ())


def test_ram_cache_gives_the_same_windows_and_respects_its_budget(tmp_path):
    path = tmp_path / "c.zarr"
    write_cube(path, {"s2": _s2()}, _geobox())
    from_store = open_cube(path)
    in_ram = open_cube(path, cache_bytes=2**30)
    too_small = open_cube(path, cache_bytes=1000)
    for rows, cols in ((slice(0, 16), slice(4, 20)), (slice(-5, 11), slice(20, 36))):
        a = from_store.read_window("s2", rows, cols)
        for cube in (in_ram, too_small):
            b = cube.read_window("s2", rows, cols)
            np.testing.assert_array_equal(a.values, b.values)
            np.testing.assert_array_equal(a.valid, b.valid)
    assert "s2" in in_ram._cached and not too_small._cached
