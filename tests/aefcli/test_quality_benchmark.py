"""benchmarks/quality.py plumbing on REAL data, shrunk: a WorldCereal patch cut to a few 2018 dates.

The cut patch keeps the format (NetCDF files, label raster, dates in the attributes),
so it also shows that nothing in the benchmark is tied to the original patch's dates.
"""

from __future__ import annotations

import glob
import json
from pathlib import Path

import numpy as np
import pytest
from scripts import load_script

pytestmark = pytest.mark.shared_data
PATCH = "worldcereal-flanders-2018"


def _bench():
    return load_script("benchmarks/quality.py")


@pytest.fixture(scope="module")
def patch(shared_data) -> Path:
    d = shared_data / PATCH
    if not d.is_dir():
        pytest.skip(f"{PATCH} is absent")
    return d


def _cut_patch(src: Path, dst: Path, n_dates: int = 4, year: int = 2018) -> Path:
    """Same files, only n_dates S2/S1 dates of `year` (clearest S2 ones); labels copied as they are."""
    import xarray as xr

    dst.mkdir()
    scl = xr.open_dataset(glob.glob(str(src / "S2_L2A_20m_*.nc"))[0], mask_and_scale=False)["SCL"]
    clear = np.isin(scl.values, (4, 5)).mean(axis=(1, 2))
    in_year = scl.timestamp.values.astype("datetime64[Y]").astype(int) + 1970 == year
    s2_pick = np.sort(np.argsort(np.where(in_year, clear, -1))[-n_dates:])
    for f in map(Path, glob.glob(str(src / "*.nc"))):
        ds = xr.open_dataset(f, mask_and_scale=False)
        if f.name.startswith("S2_"):
            ds = ds.isel(t=s2_pick) if "t" in ds.dims else ds.isel(timestamp=s2_pick)
        elif f.name.startswith("S1_"):
            dim = "t" if "t" in ds.dims else "timestamp"
            years = ds.timestamp.values.astype("datetime64[Y]").astype(int) + 1970
            ds = ds.isel({dim: np.flatnonzero(years == year)[:n_dates]})
        elif not f.name.startswith("OUTPUT_"):
            continue
        for var in ds.variables.values():  # an array `bounds` attribute trips xarray's CF encoder
            var.attrs.pop("bounds", None)
        ds.load().to_netcdf(dst / f.name)
    return dst


def test_labels_year_and_area_come_from_the_label_file(patch, tmp_path):
    q = _bench()
    assert q.label_year(patch) == 2018  # end_date 2018-11-30; the file starts in 2017
    info = q.write_labels(patch, tmp_path / "l.geojson", min_class=30)
    # the README's class counts: 1200 maize 1249, 9120 grass 835, 7900 legumes 96, 2130 cabbage 31, 5100 potatoes 25
    assert info["counts"] == {1200: 1249, 2130: 31, 7900: 96, 9120: 835}
    assert info["dropped"] == {5100: 25}
    doc = json.loads((tmp_path / "l.geojson").read_text())
    assert len(doc["features"]) == sum(info["counts"].values())
    x, y = doc["features"][0]["geometry"]["coordinates"]
    assert 501360 < x < 502000 and 5629040 < y < 5629680 and (x - 501365) % 10 == 0
    bbox, crs, period = q.patch_area(patch)
    w, s, e, n = map(float, bbox.split(","))
    assert crs == "EPSG:32631" and period == "2017-08-01/2018-12-01" and w < e and s < n


def test_error_cut_is_against_the_best_baseline():
    q = _bench()
    ba = lambda m: {"mean": m, "std": 0.01}  # noqa: E731
    scores = {"aef": {"1": ba(0.5), "max": ba(0.85)}, "aef-random": {"1": ba(0.3), "max": ba(0.4)},
              "median": {"1": ba(0.45), "max": ba(0.6)}, "monthly": {"1": ba(0.4), "max": ba(0.7)},
              "monthly-smooth": {"1": ba(0.3), "max": ba(0.8)}}
    cuts = q.error_cuts(scores)
    assert cuts["1"]["best_baseline"] == "median" and cuts["1"]["cut"] == pytest.approx(1 - 0.5 / 0.55)
    assert cuts["max"]["best_baseline"] == "monthly-smooth" and cuts["max"]["cut"] == pytest.approx(0.25)
    table = q.format_table({"balanced_accuracy": scores, "error_cut": cuts})
    assert "+25.0%" in table and "monthly-smooth" in table


def test_whole_chain_on_a_cut_patch(patch, tmp_path):
    q = _bench()
    small = _cut_patch(patch, tmp_path / "patch")
    res = q.run_benchmark(small, tmp_path / "work", recipe="smoke", repeats=1, draws=1, cv=2)
    assert res["label_year"] == 2018 and res["period"] == "2018-01-01/2019-01-01"
    assert set(res["balanced_accuracy"]) == {"aef", "aef-random", "median", "monthly", "monthly-smooth", "ceiling"}
    k = len(res["classes"])
    # the labels as features: at least as good as any method, and never a baseline of the cut
    assert all(res["balanced_accuracy"]["ceiling"][s]["mean"] >= sc[s]["mean"] - 1e-9
               for sc in res["balanced_accuracy"].values() for s in sc)
    assert "ceiling" not in {c["best_baseline"] for c in res["error_cut"].values()}
    for name, sc in res["balanced_accuracy"].items():
        assert set(sc) == {"1", "10", "max"}
        assert 0 <= sc["max"]["mean"] <= 1
    # designed features on real imagery separate maize from grass: well above chance
    assert res["balanced_accuracy"]["monthly"]["max"]["mean"] > 1 / k + 0.1
    assert set(res["error_cut"]) == {"1", "10", "max"}
    assert Path(res["checkpoint"]).exists()
