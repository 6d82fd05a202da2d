"""The sample world is physically plausible, read back from its COGs like any user would."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
import rasterio

from aefcli.sampleworld import write_sample_world
from aefcli.sampleworld.classes import BY_NAME, CROPS
from aefcli.sampleworld.phenology import ndvi_curve

CLEAR_SCL = (4, 5, 6)
CLOUD_SCL = (8, 9, 10)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return write_sample_world(tmp_path_factory.mktemp("plausible") / "world", size=64, dates=36, seed=0)


@pytest.fixture(scope="module")
def truth(world):
    with rasterio.open(world.truth) as src:
        return src.read(1)


def _read(path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


@pytest.fixture(scope="module")
def s2(world):
    """Per S2 item: (day of year, props, reflectance dict (B02/B04/B08), SCL on the 10 m grid)."""
    out = []
    for path in sorted((world.root / "sentinel-2-l2a").glob("*/*.json")):
        item = json.loads(path.read_text())
        when = dt.datetime.fromisoformat(item["properties"]["datetime"].replace("Z", "+00:00"))
        refl = {}
        for key, band in (("blue", "B02"), ("red", "B04"), ("nir", "B08")):
            rb = item["assets"][key]["raster:bands"][0]
            dn = _read(path.parent / item["assets"][key]["href"]).astype(np.float64)
            refl[band] = np.where(dn == 0, np.nan, dn * rb["scale"] + rb["offset"])
        scl = _read(path.parent / item["assets"]["scl"]["href"])
        out.append((when.timetuple().tm_yday, item["properties"], refl, np.kron(scl, np.ones((2, 2), np.uint8))))
    return sorted(out, key=lambda t: t[0])


def _ndvi(refl):
    return (refl["B08"] - refl["B04"]) / (refl["B08"] + refl["B04"])


def _class_series(s2, truth, class_id, min_px=20):
    """(doy, median NDVI of the class's clear pixels) for dates with >= min_px such pixels."""
    series = []
    for doy, _, refl, scl in s2:
        m = (truth == class_id) & np.isin(scl, CLEAR_SCL)
        if m.sum() >= min_px:
            series.append((doy, float(np.median(_ndvi(refl)[m]))))
    return np.array(series)


def test_phenology_table_gives_each_crop_its_own_calendar():
    days = np.arange(1, 366)
    peaks = {c.name: int(days[np.argmax(ndvi_curve(c.phenology, days))]) for c in CROPS}
    assert len(CROPS) >= 4
    # the five crops peak in at least four distinct fortnights
    assert len({p // 15 for p in peaks.values()}) >= 4, peaks
    for c in CROPS:
        curve = ndvi_curve(c.phenology, days)
        assert curve.max() > 0.75
        assert curve[c.phenology.harvest + 5] < 0.3  # bare after harvest
        if c.phenology.kind == "spring":
            assert curve[: c.phenology.sowing].max() < 0.25  # bare before sowing


@pytest.mark.parametrize("crop", [c.name for c in CROPS])
def test_crop_ndvi_follows_its_own_phenology(s2, truth, crop):
    cls = BY_NAME[crop]
    series = _class_series(s2, truth, cls.id)
    assert len(series) >= 15
    doys, observed = series[:, 0], series[:, 1]
    expected = ndvi_curve(cls.phenology, doys)
    assert np.corrcoef(observed, expected)[0, 1] > 0.9
    # the observed peak date is in the table's peak season, not another crop's
    assert expected[np.argmax(observed)] > expected.max() - 0.1
    if cls.phenology.kind == "spring":
        before = observed[doys < cls.phenology.sowing - 5]
        assert before.size and before.max() < 0.3
    assert observed.max() > 0.65


def test_crops_peak_at_different_dates(s2, truth):
    peaks = {}
    for cls in CROPS:
        series = _class_series(s2, truth, cls.id)
        peaks[cls.name] = series[np.argmax(series[:, 1]), 0]
    assert peaks["winter wheat"] < peaks["maize"] - 40
    assert peaks["rapeseed"] < peaks["sugar beet"] - 40
    assert len({int(p) // 15 for p in peaks.values()}) >= 3, peaks


def test_water_is_dark_with_negative_ndvi(s2, truth):
    water = truth == BY_NAME["water"].id
    for _, _, refl, scl in s2:
        m = water & (scl == 6)
        if m.sum() >= 10:
            assert np.median(_ndvi(refl)[m]) < 0
            assert np.median(refl["B08"][m]) < 0.05  # water absorbs NIR


def test_clouds_are_bright_and_flagged_in_scl(s2):
    cloudy_dates = clear_dates = 0
    for _, props, refl, scl in s2:
        bright = refl["B02"] > 0.3  # no clear land surface here is that bright in blue
        if bright.sum() > 50:
            assert np.isin(scl[bright], CLOUD_SCL).mean() > 0.95
            cloudy_dates += 1
        high = scl == 9
        if high.sum() > 50:
            clear = np.isin(scl, (4, 5))
            assert np.nanmean(refl["B02"][high]) > 0.25  # clear land: ~0.03..0.1
            if clear.sum() > 50:
                assert np.nanmean(refl["B02"][high]) > 3 * np.nanmean(refl["B02"][clear])
        valid = scl != 0
        flagged = 100 * np.isin(scl[valid], CLOUD_SCL).mean()
        assert props["eo:cloud_cover"] == pytest.approx(flagged, abs=0.01)
        clear_dates += props["eo:cloud_cover"] < 5
    assert cloudy_dates >= 5 and clear_dates >= 5


def test_cloud_shadows_are_dark_and_flagged(s2):
    seen = 0
    for _, _, refl, scl in s2:
        shadow, land = scl == 3, np.isin(scl, (4, 5))
        if shadow.sum() > 30 and land.sum() > 30:
            assert np.nanmean(refl["B08"][shadow]) < 0.6 * np.nanmean(refl["B08"][land])
            seen += 1
    assert seen >= 3


def test_s1_vh_below_vv_and_water_darkest(world, truth):
    vv_all, vh_all, vv_water, vv_land = [], [], [], []
    items = sorted((world.root / "sentinel-1-grd").glob("*/*.json"))
    assert len(items) == 36
    for path in items:
        vv = 10 * np.log10(_read(path.parent / "vv.tif"))
        vh = 10 * np.log10(_read(path.parent / "vh.tif"))
        vv_all.append(vv.mean())
        vh_all.append(vh.mean())
        vv_water.append(np.median(vv[truth == BY_NAME["water"].id]))
        vv_land.append(np.median(vv[truth != BY_NAME["water"].id]))
        assert vh.mean() < vv.mean() - 3
    assert -15 < np.mean(vv_all) < -5 and -25 < np.mean(vh_all) < -12
    assert np.mean(vv_water) < np.mean(vv_land) - 6


def test_s1_has_multiplicative_speckle(world, truth):
    path = sorted((world.root / "sentinel-1-grd").glob("*/*.json"))[0]
    vv = _read(path.parent / "vv.tif")
    forest = truth == BY_NAME["forest"].id
    cv = vv[forest].std() / vv[forest].mean()
    assert 0.3 < cv < 0.8  # ~1/sqrt(ENL 4.4) = 0.48 plus texture


def test_vegetated_parcels_brighter_in_vh_in_summer(world, truth):
    """VH rises with biomass: maize fields in August vs April."""
    maize = truth == BY_NAME["maize"].id
    by_month = {}
    for path in sorted((world.root / "sentinel-1-grd").glob("*/*.json")):
        month = int(json.loads(path.read_text())["properties"]["datetime"][5:7])
        by_month.setdefault(month, []).append(np.median(10 * np.log10(_read(path.parent / "vh.tif")[maize])))
    assert np.mean(by_month[8]) > np.mean(by_month[4]) + 3


def test_acquisitions_spread_over_the_year(world):
    s2_days = np.array([d.timetuple().tm_yday for d in world.s2_dates])
    s1_days = np.array([d.timetuple().tm_yday for d in world.s1_dates])
    assert len(s2_days) == len(s1_days) == 36
    assert np.all(np.diff(s2_days) > 0) and np.all(np.diff(s1_days) > 0)
    for quarter in range(4):
        lo, hi = 1 + 91.5 * quarter, 1 + 91.5 * (quarter + 1)
        assert 7 <= ((s2_days >= lo) & (s2_days < hi)).sum() <= 11
        assert 7 <= ((s1_days >= lo) & (s1_days < hi)).sum() <= 11
    assert np.all(np.diff(s2_days) % 5 == 0)  # on the 5-day S2 revisit grid ...
    assert len(set(np.diff(s2_days))) >= 3  # ... with irregular gaps
    assert np.ptp(np.diff(s1_days)) <= 1  # regular S1 orbit cycle
    assert len(set(s2_days) & set(s1_days)) < 10  # own schedules (a same-day pass is possible)
