"""Acceptance: the sample world served by a real STAC API (rustac) and a Range file server on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import shutil

import numpy as np
import pytest
import rasterio

from aefcli.sampleworld import write_sample_world

pytest.importorskip("aefcli.io.local_services")
if shutil.which("rustac") is None:
    pytest.skip("the rustac CLI is not installed", allow_module_level=True)
pystac_client = pytest.importorskip("pystac_client")

DATES = 12


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from aefcli.io.local_services import serve_catalog

    world = write_sample_world(tmp_path_factory.mktemp("api") / "world", size=64, dates=DATES, seed=1)
    with serve_catalog(world.catalog) as api:
        yield world, api


def _count(dates, start: str, end: str) -> int:
    lo = dt.datetime.fromisoformat(start).replace(tzinfo=dt.timezone.utc)
    hi = dt.datetime.fromisoformat(end).replace(tzinfo=dt.timezone.utc)
    return sum(lo <= d < hi for d in dates)


@pytest.mark.parametrize("period", [("2024-01-01", "2025-01-01"), ("2024-01-01", "2024-07-01"),
                                    ("2024-04-01", "2024-10-01"), ("2024-11-15", "2025-01-01")])
def test_search_returns_the_items_of_each_collection_and_period(served, period):
    world, api = served
    client = pystac_client.Client.open(api.api_url)
    start, end = period
    # STAC datetime ranges are closed; end one second early for a half-open period
    window = f"{start}T00:00:00Z/{(dt.date.fromisoformat(end) - dt.timedelta(days=1)).isoformat()}T23:59:59Z"
    for collection, dates in (("sentinel-2-l2a", world.s2_dates), ("sentinel-1-grd", world.s1_dates)):
        search = client.search(bbox=world.bbox_wgs84, datetime=window, collections=[collection], max_items=1000)
        items = list(search.items())
        assert len(items) == _count(dates, start, end), (collection, period)
        assert all(i.collection_id == collection for i in items)
    both = client.search(bbox=world.bbox_wgs84, datetime=window, collections=["sentinel-2-l2a", "sentinel-1-grd"])
    assert len(list(both.items())) == _count(world.s2_dates, start, end) + _count(world.s1_dates, start, end)


def test_search_elsewhere_finds_nothing(served):
    world, api = served
    client = pystac_client.Client.open(api.api_url)
    w, s, e, n = world.bbox_wgs84
    away = [w + 1.0, s + 1.0, e + 1.0, n + 1.0]
    assert len(list(client.search(bbox=away, collections=["sentinel-2-l2a"]).items())) == 0
    assert len(list(client.search(bbox=world.bbox_wgs84, datetime="2023-01-01/2023-12-31",
                                  collections=["sentinel-2-l2a"]).items())) == 0


def test_served_assets_read_over_http_ranges(served):
    world, api = served
    client = pystac_client.Client.open(api.api_url)
    item = next(client.search(bbox=world.bbox_wgs84, collections=["sentinel-2-l2a"], max_items=1).items())
    href = item.assets["swir16"].href
    assert href.startswith("http://127.0.0.1:")
    with rasterio.open(href) as remote:  # GDAL /vsicurl/ needs Range support
        data = remote.read(1)
    local = world.root / "sentinel-2-l2a" / item.id / "B11.tif"
    with rasterio.open(local) as src:
        assert np.array_equal(data, src.read(1))
    assert data.shape == (32, 32)  # 20 m band
