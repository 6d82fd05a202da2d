"""REAL data: WorldCereal NetCDF -> COGs + STAC (examples/worldcereal_to_stac.py) -> aef ingest -> same values."""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np
import pytest
from scripts import load_script

from aefcli.bands import SCL_VALID
from aefcli.ingest import IngestConfig, run
from aefcli.io.cube import open_cube

pytestmark = pytest.mark.shared_data
N_DATES = 3
X0, Y1 = 501360, 5629680  # patch top-left corner (EPSG:32631)


def _converter():
    return load_script("examples/worldcereal_to_stac.py")


@pytest.fixture(scope="module")
def patch(shared_data) -> Path:
    return shared_data / "worldcereal-flanders-2018"


@pytest.fixture(scope="module")
def catalog(patch, tmp_path_factory) -> Path:
    return _converter().convert(patch, tmp_path_factory.mktemp("wc"), max_dates=N_DATES)


def _nc(patch: Path, prefix: str):
    import xarray as xr

    return xr.open_dataset(glob.glob(str(patch / f"{prefix}*.nc"))[0], mask_and_scale=False)


def _ingest(stac: str, out: Path):
    # a WGS84 bbox inside the patch; the fixed CRS keeps the grid aligned with the patch pixels
    cfg = IngestConfig(stac=stac, collections=("s2", "s1"), bbox="3.0185,50.8115,3.0265,50.8155",
                       period="2017-08-01/2018-12-01", out=out, crs="EPSG:32631", max_cloud=None)
    run(cfg)
    return open_cube(out)


def _patch_window(cube):
    a, _, c, _, e, f = cube.attrs["transform"]
    r0, c0 = int((f - Y1) / -e), int((X0 - c) / a)
    return r0, c0


def test_converter_catalog(catalog):
    import pystac

    cat = pystac.read_file(str(catalog))
    items = list(cat.get_items(recursive=True))
    assert sorted({it.collection_id for it in items}) == ["sentinel-1-grd", "sentinel-2-l2a"]
    assert len(items) == 2 * N_DATES
    s2 = next(it for it in items if it.collection_id == "sentinel-2-l2a")
    assert {"blue", "red", "nir", "nir08", "swir22", "scl"} <= set(s2.assets)


def test_ingested_cube_matches_netcdf(catalog, patch, tmp_path):
    cube = _ingest(str(catalog), tmp_path / "c.zarr")
    assert cube.attrs["crs"] == "EPSG:32631"
    s2_10, s2_20, s1 = _nc(patch, "S2_L2A_10m"), _nc(patch, "S2_L2A_20m"), _nc(patch, "S1_GRD")
    np.testing.assert_array_equal(cube.times["s2"], s2_10.timestamp.values[:N_DATES])
    np.testing.assert_array_equal(cube.times["s1"], s1.timestamp.values[:N_DATES])
    r0, c0 = _patch_window(cube)  # cube pixel of the patch's top-left pixel (may be negative)
    ny, nx = cube.attrs["shape"]
    cr = slice(max(r0, 0), min(ny, r0 + 64))
    cc = slice(max(c0, 0), min(nx, c0 + 64))
    pr, pc = slice(cr.start - r0, cr.stop - r0), slice(cc.start - c0, cc.stop - c0)  # same pixels in the patch
    assert cr.stop - cr.start > 8 and cc.stop - cc.start > 8
    bands = cube.bands["s2"]
    for t in range(N_DATES):
        raw, valid = cube.read_raw("s2", t)
        for name in ("B02", "B03", "B04", "B08"):  # 10 m: same grid, exact (2018: no BOA offset)
            dn = s2_10[name].values[t][pr, pc].astype(np.float32)
            got = raw[bands.index(name)][cr, cc]
            np.testing.assert_allclose(got[dn > 0], dn[dn > 0] * 1e-4, rtol=1e-6, atol=1e-7)
            assert np.isnan(got[dn == 0]).all()
        scl = np.repeat(np.repeat(s2_20.SCL.values[t], 2, 0), 2, 1)[pr, pc]  # nearest: exact 2x2 blocks
        np.testing.assert_array_equal(valid[cr, cc], np.isin(scl, SCL_VALID) & np.isfinite(raw[:, cr, cc]).all(0))
        # 20 m -> 10 m bilinear: each value lies within its 3x3 neighbourhood of 20 m pixels (dB)
        sraw, _ = cube.read_raw("s1", t)
        vv = s1.VV.values[t].astype(np.float64) * 1e-4
        got = sraw[0][cr, cc]
        ii, jj = np.meshgrid(np.arange(pr.start, pr.stop) // 2, np.arange(pc.start, pc.stop) // 2, indexing="ij")
        neigh = np.stack([vv[np.clip(ii + di, 0, 31), np.clip(jj + dj, 0, 31)] for di in (-1, 0, 1) for dj in (-1, 0, 1)])
        assert ((got >= neigh.min(0) - 1e-4) & (got <= neigh.max(0) + 1e-4)).mean() > 0.99
        assert np.corrcoef(got.ravel(), vv[ii, jj].ravel())[0, 1] > 0.9
    assert cube.norm["s1"].transform == "identity" and -25 < cube.norm["s1"].mean[0] < 0


def test_served_api_gives_the_same_cube(catalog, tmp_path, stac_api):
    static = _ingest(str(catalog), tmp_path / "static.zarr")
    served = stac_api(catalog)
    api = _ingest(served.api_url, tmp_path / "api.zarr")
    for s in ("s2", "s1"):
        np.testing.assert_array_equal(static.times[s], api.times[s])
        for t in range(N_DATES):
            a, b = static.read_raw(s, t), api.read_raw(s, t)
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])
    hrefs = api.attrs["provenance"]["s2"][0]["items"][0]["hrefs"]
    assert all(h.startswith("http://127.0.0.1:") for h in hrefs.values())
