"""`aef ingest` of the sample world served through real local services (rustac STAC API + Range server).

The cube grid is asked in the world's own CRS, so its 10 m pixels align with the
world's 10 m COG pixels and nest in its 20 m pixels: 10 m bands must come back
exactly, SCL (nearest) exactly, 20 m bands within bilinear-interpolation tolerance,
and S1 linear power as 10*log10 dB. A server failing ~20 % of requests behind the
same rustac API must give an identical cube.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.warp import Resampling, reproject

from aefcli.bands import SCL_VALID
from aefcli.ingest import IngestConfig, run
from aefcli.io.cube import open_cube
from aefcli.sampleworld import write_sample_world
from aefcli.sampleworld.classes import S2_BANDS

if shutil.which("rustac") is None:
    pytest.skip("the rustac CLI is not installed", allow_module_level=True)

sys.path.insert(0, str(Path(__file__).parent))
from fault_server import FaultyHandler  # noqa: E402

SIZE, DATES, SEED = 64, 3, 2


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return write_sample_world(tmp_path_factory.mktemp("sw") / "world", size=SIZE, dates=DATES, seed=SEED)


def _ingest(world, stac: str, out: Path):
    w, s, e, n = world.bbox_wgs84
    cfg = IngestConfig(stac=stac, collections=("s2", "s1"), bbox=f"{w},{s},{e},{n}", period="2024-01-01/2025-01-01",
                       out=out, crs=world.config.crs, max_cloud=None, command="aef ingest (test)")
    return run(cfg), open_cube(out)


@pytest.fixture(scope="module")
def served_cube(world, tmp_path_factory):
    from aefcli.io.local_services import serve_catalog

    out = tmp_path_factory.mktemp("cube") / "c.zarr"
    with serve_catalog(world.catalog) as api:
        summary, cube = _ingest(world, api.api_url, out)
    return summary, cube


def _on_cube_grid(path: Path, cube, resampling: Resampling, dtype="float32") -> np.ndarray:
    """A source COG warped by GDAL onto the cube grid (nodata -> NaN / 0)."""
    ny, nx = cube.attrs["shape"]
    with rasterio.open(path) as src:
        fill = 0 if np.dtype(dtype).kind in "ui" else np.nan
        out = np.full((ny, nx), fill, dtype=dtype)
        reproject(rasterio.band(src, 1), out, dst_transform=cube.geobox.affine, dst_crs=cube.attrs["crs"],
                  dst_nodata=fill, resampling=resampling)
    return out


def _world_window(world, cube) -> tuple[slice, slice]:
    """Cube rows/cols covered by the world's 10 m grid (the cube may be larger)."""
    a, _, c, _, e, f = cube.attrs["transform"]
    _, _, x0, _, _, y1 = world.config.transform
    r0, c0 = (f - y1) / -e, (x0 - c) / a
    assert r0 == int(r0) and c0 == int(c0), "cube and world grids must align"
    return slice(max(int(r0), 0), int(r0) + SIZE), slice(max(int(c0), 0), int(c0) + SIZE)


def test_dates_bands_and_grid(world, served_cube):
    summary, cube = served_cube
    expect = {"s2": world.s2_dates, "s1": world.s1_dates}
    for s, dates in expect.items():
        want = np.array([np.datetime64(d.replace(tzinfo=None), "ns") for d in dates])
        np.testing.assert_array_equal(cube.times[s], want)
    assert cube.bands["s2"] == tuple(name for _, name, *_ in S2_BANDS)
    assert cube.bands["s1"] == ("VV", "VH")
    assert cube.attrs["crs"] == world.config.crs and summary["crs"] == world.config.crs
    a, b, c, d, e, f = cube.attrs["transform"]
    assert (a, b, d, e) == (10.0, 0.0, 0.0, -10.0) and c % 10 == 0 and f % 10 == 0
    rows, cols = _world_window(world, cube)
    assert rows.stop - rows.start == SIZE and cols.stop - cols.start == SIZE  # the whole world is inside
    hrefs = cube.attrs["provenance"]["s2"][0]["items"][0]["hrefs"]
    assert all(h.startswith("http://127.0.0.1:") for h in hrefs.values())  # read over HTTP, not from disk


def test_s2_values_and_scl_match_the_source_cogs(world, served_cube):
    _, cube = served_cube
    rows, cols = _world_window(world, cube)
    items = sorted((world.root / "sentinel-2-l2a").glob("S2*"), key=lambda p: p.name.split("_")[2])
    assert len(items) == DATES
    invalid_seen = valid_seen = 0
    for t, folder in enumerate(items):
        raw, valid = cube.read_raw("s2", t)
        # SCL, nearest onto nested 10 m pixels: exactly the 20 m source pixel (numpy, no GDAL)
        with rasterio.open(folder / "SCL.tif") as src:
            scl = np.repeat(np.repeat(src.read(1), 2, 0), 2, 1)
        usable = np.isin(scl, SCL_VALID) & np.isfinite(raw[:, rows, cols]).all(0)
        np.testing.assert_array_equal(valid[rows, cols], usable)
        outside = np.ones(valid.shape, bool)
        outside[rows, cols] = False
        assert not valid[outside].any()  # no data beyond the world's footprint
        invalid_seen, valid_seen = invalid_seen + (~usable).sum(), valid_seen + usable.sum()
        for c, (_, name, res, _, _) in enumerate(S2_BANDS):
            with rasterio.open(folder / f"{name}.tif") as src:
                dn = src.read(1).astype(np.float64)
            # 2024 items: processing baseline >= 04.00, raster:bands scale 1e-4 offset -0.1
            refl = np.where(dn > 0, dn * 1e-4 - 0.1, np.nan)
            got = raw[c, rows, cols].astype(np.float64)
            if res == 10:  # same pixels: bilinear at pixel centres is the source value
                np.testing.assert_allclose(got, refl, rtol=0, atol=1e-6, err_msg=name)
                continue
            # 20 m -> 10 m bilinear: inside the 3x3 neighbourhood of 20 m parents, and close to GDAL's own warp
            ii, jj = np.meshgrid(np.arange(SIZE) // 2, np.arange(SIZE) // 2, indexing="ij")
            half = SIZE // 2
            neigh = np.stack([refl[np.clip(ii + di, 0, half - 1), np.clip(jj + dj, 0, half - 1)]
                              for di in (-1, 0, 1) for dj in (-1, 0, 1)])
            ok = np.isfinite(got)
            assert ok[np.isfinite(neigh).all(0)].all(), name  # data wherever the source has data around
            assert not ok[np.isnan(refl[ii, jj])].any(), name  # no data invented over source nodata
            with np.errstate(all="ignore"):
                inside = (got >= np.nanmin(neigh, 0) - 1e-6) & (got <= np.nanmax(neigh, 0) + 1e-6)
            assert inside[ok].all(), name
            gdal = _on_cube_grid(folder / f"{name}.tif", cube, Resampling.bilinear)[rows, cols]
            gdal = np.where(gdal > 0, gdal * 1e-4 - 0.1, np.nan)
            both = ok & np.isfinite(gdal)
            assert both.sum() > 0.5 * np.isfinite(refl[ii, jj]).sum(), name
            np.testing.assert_allclose(got[both], gdal[both], rtol=0, atol=5e-3, err_msg=name)
            assert np.abs(got[both] - gdal[both]).mean() < 5e-4, name
    assert invalid_seen > 100 and valid_seen > 100  # the mask check saw both kinds of pixels


def test_s1_linear_power_becomes_db(world, served_cube):
    _, cube = served_cube
    rows, cols = _world_window(world, cube)
    items = sorted((world.root / "sentinel-1-grd").glob("S1*"), key=lambda p: p.name)
    for t, folder in enumerate(items):
        raw, valid = cube.read_raw("s1", t)
        for c, key in enumerate(("vv", "vh")):
            with rasterio.open(folder / f"{key}.tif") as src:
                linear = src.read(1).astype(np.float64)
            assert np.nanmax(linear) < 5  # the source really is linear power, not dB
            want = 10 * np.log10(np.where(linear > 0, linear, np.nan))
            np.testing.assert_allclose(raw[c, rows, cols], want, rtol=0, atol=1e-4, err_msg=key)
        assert -35 < np.nanmean(raw[0, rows, cols]) < 5
        assert valid[rows, cols].all()
    assert cube.norm["s1"].transform == "identity" and -30 < cube.norm["s1"].mean[0] < 0


def test_flaky_asset_server_behind_rustac_gives_identical_cube(world, served_cube, tmp_path):
    from aefcli.io.local_services import serve_catalog

    _, clean = served_cube
    flaky = type("Flaky", (FaultyHandler,), {"rate": 0.2})
    before = FaultyHandler._count
    with serve_catalog(world.catalog, handler_class=flaky) as api:
        _, cube = _ingest(world, api.api_url, tmp_path / "flaky.zarr")
    assert FaultyHandler._count - before > 20  # the asset reads went through the faulty handler
    for s in ("s2", "s1"):
        np.testing.assert_array_equal(cube.times[s], clean.times[s])
        for t in range(len(clean.times[s])):
            for a, b in zip(cube.read_raw(s, t), clean.read_raw(s, t)):
                np.testing.assert_array_equal(a, b)
        assert cube.norm[s] == clean.norm[s]
