"""STAC Items, Collections and a self-contained static Catalog in the style of Earth Search v1.

S2 items carry one COG per band (asset keys `blue` ... `swir22`, `scl`), with
`eo:bands` and `raster:bands` (scale 1e-4, offset -0.1 from processing baseline
04.00 on, nodata 0). S1 items carry `vv` and `vh` as float32 LINEAR power
(sigma0), nodata NaN, `raster:bands[0].unit == "linear power"` (a "dB" unit
would mean decibels): readers convert with 10 * log10.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import Any

from aefcli.sampleworld.classes import S2_BANDS
from aefcli.sampleworld.config import WorldConfig

COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
EXT = {
    "eo": "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "proj": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "sat": "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
    "sar": "https://stac-extensions.github.io/sar/v1.0.0/schema.json",
}
S2_COLLECTION, S1_COLLECTION = "sentinel-2-l2a", "sentinel-1-grd"
S1_UNIT = "linear power"
_LAT_BANDS = "CDEFGHJKLMNPQRSTUVWX"


@lru_cache(maxsize=8)
def footprint(cfg: WorldConfig) -> tuple[list[float], dict[str, Any]]:
    """WGS84 bbox [W, S, E, N] and GeoJSON Polygon of the world (edges densified)."""
    from odc.geo.geom import box

    gbox = cfg.geobox()
    poly = box(*gbox.extent.boundingbox, gbox.crs).to_crs("EPSG:4326", resolution=gbox.resolution.x * 16)
    w, s, e, n = poly.boundingbox
    geom = poly.json
    geom["coordinates"] = [[[round(x, 7), round(y, 7)] for x, y in ring] for ring in geom["coordinates"]]
    return [round(w, 7), round(s, 7), round(e, 7), round(n, 7)], geom


def _proj(cfg: WorldConfig, res: int) -> dict[str, Any]:
    g = cfg.geobox(res)
    t = g.transform
    return {
        "proj:shape": [int(g.shape.y), int(g.shape.x)],
        "proj:transform": [t.a, t.b, t.c, t.d, t.e, t.f],
    }


def _grid_props(cfg: WorldConfig) -> dict[str, Any]:
    left, bottom, right, top = cfg.geobox().extent.boundingbox
    return {
        "proj:epsg": cfg.epsg,  # projection v1 readers
        "proj:code": f"EPSG:{cfg.epsg}",
        "proj:bbox": [left, bottom, right, top],
        **_proj(cfg, 10),
    }


def _base_item(item_id: str, cfg: WorldConfig, when: dt.datetime, props: dict[str, Any], exts: list[str]) -> Any:
    import pystac

    bbox, geom = footprint(cfg)
    return pystac.Item(
        id=item_id,
        geometry=geom,
        bbox=bbox,
        datetime=when,
        properties={**props, **_grid_props(cfg)},
        stac_extensions=[EXT[e] for e in exts],
    )


def s2_item_id(cfg: WorldConfig, when: dt.datetime) -> str:
    """Earth Search v1 style id, e.g. S2A_31USW_20240105_0_L2A (grid square "SW": sample world)."""
    lat = footprint(cfg)[0][1]
    tile = f"{cfg.utm_zone:02d}{_LAT_BANDS[min(max(int((lat + 80) // 8), 0), 19)]}SW"
    sat = "A" if (when.timetuple().tm_yday // 5) % 2 == 0 else "B"
    return f"S2{sat}_{tile}_{when:%Y%m%d}_0_L2A"


def s1_item_id(when: dt.datetime) -> str:
    return f"S1A_IW_GRDH_1SDV_{when:%Y%m%dT%H%M%S}_SW"


def s2_item(cfg: WorldConfig, when: dt.datetime, stats: dict[str, float], baseline: str, offset: bool,
            files: dict[str, str]) -> Any:
    """An Earth-Search-like S2 L2A item. files: asset key -> href (the band COGs and `scl`)."""
    import pystac

    item_id = s2_item_id(cfg, when)
    sat, tile = item_id[2], item_id.split("_")[1]
    props = {
        "platform": f"sentinel-2{sat.lower()}",
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "s2:product_type": "S2MSI2A",
        "s2:processing_baseline": baseline,
        "s2:mgrs_tile": tile,
        "earthsearch:boa_offset_applied": offset,
        "sat:orbit_state": "descending",
        "sat:relative_orbit": 51,
        **stats,
    }
    item = _base_item(item_id, cfg, when, props, ["eo", "raster", "proj", "sat"])
    for key, name, res, centre, fwhm in S2_BANDS:
        band = {"nodata": 0, "data_type": "uint16", "bits_per_sample": 15, "spatial_resolution": res,
                "scale": 0.0001, "offset": -0.1 if offset else 0.0}
        extra = {
            "eo:bands": [{"name": name, "common_name": _common(key), "description": f"{key} ({name})",
                          "center_wavelength": centre, "full_width_half_max": fwhm}],
            "gsd": res,
            **_proj(cfg, res),
            "raster:bands": [band],
        }
        item.add_asset(key, pystac.Asset(files[key], title=f"{key} ({name}) - {res}m", media_type=COG_TYPE,
                                         roles=["data", "reflectance"], extra_fields=extra))
    scl = {"gsd": 20, **_proj(cfg, 20),
           "raster:bands": [{"nodata": 0, "data_type": "uint8", "spatial_resolution": 20}]}
    item.add_asset("scl", pystac.Asset(files["scl"], title="Scene classification map (SCL)", media_type=COG_TYPE,
                                       roles=["data", "reflectance"], extra_fields=scl))
    return item


def _common(key: str) -> str:
    """eo common names: the Earth Search asset keys are common names except the red edges."""
    return {"rededge1": "rededge", "rededge2": "rededge", "rededge3": "rededge", "nir08": "nir08"}.get(key, key)


def s1_item(cfg: WorldConfig, when: dt.datetime, files: dict[str, str]) -> Any:
    """A Sentinel-1 IW GRD item with `vv` and `vh` linear-power COGs. files: asset key -> href."""
    import pystac

    item_id = s1_item_id(when)
    props = {
        "platform": "sentinel-1a",
        "constellation": "sentinel-1",
        "instruments": ["c-sar"],
        "sar:instrument_mode": "IW",
        "sar:frequency_band": "C",
        "sar:center_frequency": 5.405,
        "sar:polarizations": ["VV", "VH"],
        "sar:product_type": "GRD",
        "sar:looks_equivalent_number": 4.4,
        "sar:pixel_spacing_range": 10,
        "sar:pixel_spacing_azimuth": 10,
        "sat:orbit_state": "ascending",
        "sat:relative_orbit": 88,
    }
    item = _base_item(item_id, cfg, when, props, ["sar", "raster", "proj", "sat"])
    for key in ("vv", "vh"):
        extra = {
            "sar:polarizations": [key.upper()],
            "gsd": 10,
            **_proj(cfg, 10),
            "raster:bands": [{"nodata": "nan", "data_type": "float32", "unit": S1_UNIT, "spatial_resolution": 10}],
        }
        title = f"{key.upper()}: sigma0 backscatter, {S1_UNIT} (not dB)"
        item.add_asset(key, pystac.Asset(files[key], title=title, media_type=COG_TYPE, roles=["data"],
                                         extra_fields=extra))
    return item


def write_catalog(root: Path, cfg: WorldConfig, s2_items: list[Any], s1_items: list[Any]) -> Path:
    """Save a self-contained catalog at `root`/catalog.json; item JSON lands in
    `root/<collection>/<item id>/<item id>.json` beside its COGs. Returns catalog.json's path."""
    import pystac

    catalog = pystac.Catalog(
        id="aef-sample-world",
        description=f"Synthetic multi-source world written by `aef sample-world` ({cfg.to_dict()}).",
        title="aef sample world",
    )
    for cid, title, items in (
        (S2_COLLECTION, "Sentinel-2 L2A-like (synthetic)", s2_items),
        (S1_COLLECTION, "Sentinel-1 IW GRD-like, linear sigma0 (synthetic)", s1_items),
    ):
        extent = pystac.Extent(
            pystac.SpatialExtent([footprint(cfg)[0]]),
            pystac.TemporalExtent([[items[0].datetime, items[-1].datetime]]),
        )
        coll = pystac.Collection(id=cid, title=title, description=f"{title}: {len(items)} scenes over one year.",
                                 extent=extent, license="CC0-1.0",
                                 summaries=pystac.Summaries({"constellation": [items[0].properties["constellation"]]}))
        coll.add_items(items)
        catalog.add_child(coll)
    # a file href: pystac takes a directory with a dot in its name (".x.partial") for a file
    catalog.normalize_hrefs(str(root / "catalog.json"))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"
