"""REAL reprojection: SSL4EO-S12 Sentinel-1 scenes stored in EPSG:4326 -> a UTM 10 m cube.

A static STAC catalog is built here around the shared GeoTIFFs (referenced, never
copied); the cube must land in the bbox's UTM zone (43N, Punjab) and hold what a
GDAL bilinear warp of the source onto the same grid gives. (The S2 scenes of this
set carry no SCL band, so only S1 is ingested.)
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.warp import Resampling, reproject

from aefcli.ingest import IngestConfig, run
from aefcli.io.cube import open_cube

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def scenes(shared_data) -> list[Path]:
    found = sorted((shared_data / "rico-hdl" / "SSL4EO-S12" / "s1").glob("*/S1*"))
    if len(found) < 2:
        pytest.skip("the SSL4EO-S12 S1 scenes are absent")
    return found


def _catalog(scenes: list[Path], root: Path) -> Path:
    """One sentinel-1-grd item per scene folder (VV.tif, VH.tif in dB), assets by absolute path."""
    import pystac

    extent = pystac.Extent(pystac.SpatialExtent([[-180, -90, 180, 90]]), pystac.TemporalExtent([[None, None]]))
    catalog = pystac.Catalog("ssl4eo", "SSL4EO-S12 S1 scenes (EPSG:4326)")
    coll = pystac.Collection("sentinel-1-grd", "S1 GRD, dB", extent)
    catalog.add_child(coll)
    for folder in scenes:
        with rasterio.open(folder / "VV.tif") as src:
            w, s, e, n = src.bounds
            epsg = src.crs.to_epsg()
            shape, transform = [src.height, src.width], list(src.transform)[:6]
        when = dt.datetime.strptime(folder.name.split("_")[4], "%Y%m%dT%H%M%S").replace(tzinfo=dt.timezone.utc)
        geom = {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
        item = pystac.Item(folder.name, geom, [w, s, e, n], when, {"proj:code": f"EPSG:{epsg}"})
        for key in ("VV", "VH"):
            asset = pystac.Asset(str(folder / f"{key}.tif"), media_type=pystac.MediaType.GEOTIFF, roles=["data"])
            asset.extra_fields.update({"proj:code": f"EPSG:{epsg}", "proj:shape": shape, "proj:transform": transform,
                                       "raster:bands": [{"data_type": "float32", "unit": "dB"}]})
            item.add_asset(key.lower(), asset)
        coll.add_item(item)
    catalog.normalize_hrefs(str(root))
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"


def test_epsg4326_scenes_reproject_to_utm(scenes, tmp_path):
    with rasterio.open(scenes[0] / "VV.tif") as src:
        w, s, e, n = src.bounds
    dx, dy = (e - w) * 0.15, (n - s) * 0.15  # inside the scene: every cube pixel has source data around it
    bbox = f"{w + dx},{s + dy},{e - dx},{n - dy}"
    out = tmp_path / "c.zarr"
    run(IngestConfig(stac=str(_catalog(scenes, tmp_path / "stac")), collections=("s1",), bbox=bbox,
                     period="2020-01-01/2021-01-01", out=out, max_cloud=None, command="aef ingest (test)"))
    cube = open_cube(out)
    assert cube.attrs["crs"] == "EPSG:32643"  # lon 73.3 E, lat 30.5 N: UTM zone 43 north
    a, b, c, d, e_, f = cube.attrs["transform"]
    assert (a, b, d, e_) == (10.0, 0.0, 0.0, -10.0) and c % 10 == 0 and f % 10 == 0
    ny, nx = cube.attrs["shape"]
    assert 150 < ny < 220 and 150 < nx < 220  # ~70 % of a ~2.6 km scene at 10 m
    np.testing.assert_array_equal(cube.times["s1"].astype("datetime64[D]"),
                                  np.array(["2020-06-07", "2020-09-03"], dtype="datetime64[D]"))
    for t, folder in enumerate(scenes):
        raw, valid = cube.read_raw("s1", t)
        assert valid.mean() > 0.99
        for i, key in enumerate(("VV", "VH")):
            want = np.full((ny, nx), np.nan, np.float32)
            with rasterio.open(folder / f"{key}.tif") as src:
                reproject(rasterio.band(src, 1), want, dst_transform=cube.geobox.affine, dst_crs="EPSG:32643",
                          src_nodata=np.nan, dst_nodata=np.nan, resampling=Resampling.bilinear)
                source = src.read(1)
            got = raw[i]
            both = np.isfinite(got) & np.isfinite(want)
            assert both.mean() > 0.99
            diff = np.abs(got[both] - want[both])
            assert np.median(diff) < 0.05 and np.percentile(diff, 99) < 0.5, (key, np.median(diff), np.percentile(diff, 99))
            # bilinear mixes source values: dB stays dB (no second log), inside the scene's range
            assert np.nanmin(source) - 1e-4 <= np.nanmin(got) and np.nanmax(got) <= np.nanmax(source) + 1e-4
            assert -30 < np.nanmean(got) < 0
