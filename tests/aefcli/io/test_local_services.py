"""The local STAC API and Range file server behave like the public services."""

from __future__ import annotations

import datetime as dt
import urllib.request

import numpy as np
import pystac
import pytest
import rasterio
from rasterio.transform import from_origin


def _write_cog(path, value: int) -> None:
    data = np.full((1, 64, 64), value, dtype="uint16")
    profile = dict(driver="COG", width=64, height=64, count=1, dtype="uint16", crs="EPSG:32631",
                   transform=from_origin(500000, 5630000, 10, 10), nodata=0)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def _catalog(tmp_path):
    catalog = pystac.Catalog("test", "two collections")
    extent = pystac.Extent(pystac.SpatialExtent([[2.9, 50.8, 3.1, 50.9]]),
                           pystac.TemporalExtent([[dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), None]]))
    for name, months in (("sentinel-2-l2a", range(1, 7)), ("sentinel-1-grd", range(1, 4))):
        coll = pystac.Collection(name, name, extent)
        for month in months:
            item_id = f"{name}-{month}"
            item = pystac.Item(item_id, {"type": "Point", "coordinates": [3.0, 50.85]}, [2.9, 50.8, 3.1, 50.9],
                               dt.datetime(2024, month, 15, tzinfo=dt.timezone.utc), {})
            cog = tmp_path / "stac" / "assets" / f"{item_id}.tif"
            cog.parent.mkdir(parents=True, exist_ok=True)
            _write_cog(cog, month)
            item.add_asset("data", pystac.Asset(str(cog), media_type=pystac.MediaType.COG))
            coll.add_item(item)
        catalog.add_child(coll)
    catalog.normalize_and_save(str(tmp_path / "stac"), pystac.CatalogType.SELF_CONTAINED)
    return tmp_path / "stac" / "catalog.json"


def test_stac_api_search_returns_items_by_collection_and_period(tmp_path, stac_api):
    import pystac_client

    served = stac_api(_catalog(tmp_path))
    client = pystac_client.Client.open(served.api_url)
    s2 = list(client.search(collections=["sentinel-2-l2a"], bbox=[2.95, 50.82, 3.05, 50.88],
                            datetime="2024-02-01/2024-05-01").items())
    assert sorted(i.id for i in s2) == ["sentinel-2-l2a-2", "sentinel-2-l2a-3", "sentinel-2-l2a-4"]
    s1 = list(client.search(collections=["sentinel-1-grd"], bbox=[2.95, 50.82, 3.05, 50.88]).items())
    assert len(s1) == 3
    outside = list(client.search(collections=["sentinel-2-l2a"], bbox=[10, 10, 11, 11]).items())
    assert outside == []


def test_assets_are_read_by_gdal_through_http_range(tmp_path, stac_api):
    import pystac_client

    served = stac_api(_catalog(tmp_path))
    item = next(pystac_client.Client.open(served.api_url).search(collections=["sentinel-2-l2a"],
                                                                   datetime="2024-03-01/2024-04-01").items())
    href = item.assets["data"].href
    assert href.startswith(served.files_url)
    with rasterio.open(href) as src:  # GDAL /vsicurl/ refuses servers without Range support
        assert src.read(1)[10, 10] == 3
        assert src.crs.to_epsg() == 32631
    request = urllib.request.Request(href, headers={"Range": "bytes=0-9"})
    with urllib.request.urlopen(request) as response:
        assert response.status == 206
        assert len(response.read()) == 10
