"""Convert a WorldCereal NetCDF patch into per-date COGs and a static STAC catalog.

Usage: python examples/worldcereal_to_stac.py PATCH_DIR OUT_DIR [--max-dates N]

PATCH_DIR holds `S2_L2A_10m_*.nc`, `S2_L2A_20m_*.nc` (bands + SCL) and
`S1_GRD-*_20m_*.nc` files of one location (any patch of that format). OUT_DIR
receives `catalog.json`, collections `sentinel-2-l2a` (Earth Search asset keys,
uint16 DN, raster:bands scale 1e-4) and `sentinel-1-grd` (vv/vh, int32 dB x 1e4,
raster:bands unit dB), and one COG per item and band, ready for
`aef ingest --stac OUT_DIR/catalog.json` or a served STAC API.
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import numpy as np

S2_KEYS = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir", "B05": "rededge1", "B06": "rededge2",
           "B07": "rededge3", "B8A": "nir08", "B11": "swir16", "B12": "swir22", "SCL": "scl"}
S1_KEYS = {"VV": "vv", "VH": "vh"}


def _open(pattern: str):
    import xarray as xr

    files = sorted(glob.glob(pattern))
    if not files:
        raise SystemExit(f"no file matches {pattern}")
    return xr.open_dataset(files[0], mask_and_scale=False)


def _transform(ds):
    from affine import Affine

    x, y = ds.x.values, ds.y.values
    res = float(abs(x[1] - x[0]))
    return Affine(res, 0, float(x[0]) - res / 2, 0, -res, float(y[0]) + res / 2), res


def _write_cog(path: Path, data: np.ndarray, transform, epsg: int, nodata) -> None:
    import rasterio

    path.parent.mkdir(parents=True, exist_ok=True)
    profile = dict(driver="COG", width=data.shape[1], height=data.shape[0], count=1, dtype=data.dtype.name,
                   crs=f"EPSG:{epsg}", transform=transform, nodata=nodata, compress="deflate", blocksize=256)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def _item(item_id: str, when, ds, epsg: int, collection: str, properties: dict):
    import pystac
    from pyproj import Transformer
    from shapely.geometry import box, mapping

    transform, res = _transform(ds)
    ny, nx = ds.sizes["y"], ds.sizes["x"]
    w, n = transform.c, transform.f
    e, s = w + nx * res, n - ny * res
    to_ll = Transformer.from_crs(epsg, 4326, always_xy=True)
    xs, ys = to_ll.transform([w, e, e, w], [s, s, n, n])
    geom = box(min(xs), min(ys), max(xs), max(ys))
    return pystac.Item(item_id, mapping(geom), list(geom.bounds), when.astype("datetime64[us]").item(),
                       {"proj:code": f"EPSG:{epsg}", **properties}, collection=collection)


def _add_asset(item, key: str, href: Path, ds, epsg: int, raster: dict) -> None:
    import pystac

    transform, _ = _transform(ds)
    asset = pystac.Asset(str(href), media_type=pystac.MediaType.COG, roles=["data"])
    asset.extra_fields.update({"proj:code": f"EPSG:{epsg}", "proj:shape": [ds.sizes["y"], ds.sizes["x"]],
                               "proj:transform": list(transform)[:6], "raster:bands": [raster]})
    item.add_asset(key, asset)


def convert(patch: Path, out: Path, max_dates: int | None = None) -> Path:
    """Write the COGs and catalog; returns OUT_DIR/catalog.json."""
    import pystac

    s2_10, s2_20 = _open(str(patch / "S2_L2A_10m_*.nc")), _open(str(patch / "S2_L2A_20m_*.nc"))
    s1 = _open(str(patch / "S1_GRD-*_20m_*.nc"))
    epsg = int(s2_10.attrs["epsg"])
    loc = str(s2_10.attrs.get("location_id", patch.name))
    catalog = pystac.Catalog("worldcereal-" + loc, f"WorldCereal patch {loc} as per-date COGs")
    extent = pystac.Extent(pystac.SpatialExtent([[-180, -90, 180, 90]]), pystac.TemporalExtent([[None, None]]))
    colls = {c: pystac.Collection(c, f"{c} from WorldCereal patch {loc}", extent)
             for c in ("sentinel-2-l2a", "sentinel-1-grd")}
    for c in colls.values():
        catalog.add_child(c)
    for i, when in enumerate(s2_10.timestamp.values[:max_dates]):
        item_id = f"S2_{loc}_{np.datetime_as_string(when, unit='s').replace(':', '')}"
        item = _item(item_id, when, s2_10, epsg, "sentinel-2-l2a", {"eo:cloud_cover": _cloud(s2_20.SCL.values[i])})
        for ds in (s2_10, s2_20):
            for band in [b for b in S2_KEYS if b in ds.data_vars]:
                href = out / "cogs" / item_id / f"{S2_KEYS[band]}.tif"
                _write_cog(href, ds[band].values[i], _transform(ds)[0], epsg, 0)
                raster = {"nodata": 0} if band == "SCL" else {"nodata": 0, "scale": 1e-4, "offset": 0.0}
                _add_asset(item, S2_KEYS[band], href, ds, epsg, raster)
        colls["sentinel-2-l2a"].add_item(item)
    for i, when in enumerate(s1.timestamp.values[:max_dates]):
        item_id = f"S1_{loc}_{np.datetime_as_string(when, unit='s').replace(':', '')}"
        item = _item(item_id, when, s1, epsg, "sentinel-1-grd", {"sar:polarizations": ["VV", "VH"]})
        for band, key in S1_KEYS.items():
            href = out / "cogs" / item_id / f"{key}.tif"
            _write_cog(href, s1[band].values[i], _transform(s1)[0], epsg, 0)
            _add_asset(item, key, href, s1, epsg, {"nodata": 0, "scale": 1e-4, "offset": 0.0, "unit": "dB"})
        colls["sentinel-1-grd"].add_item(item)
    for c in colls.values():
        c.update_extent_from_items()
    catalog.normalize_hrefs(str(out))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return out / "catalog.json"


def _cloud(scl: np.ndarray) -> float:
    """Percent of the patch flagged cloud/shadow/cirrus (SCL 3, 8, 9, 10)."""
    return float(np.isin(scl, (3, 8, 9, 10)).mean() * 100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("patch_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--max-dates", type=int, default=None, help="convert only the first N dates per sensor")
    args = parser.parse_args()
    print(convert(args.patch_dir, args.out_dir, args.max_dates))


if __name__ == "__main__":
    main()
