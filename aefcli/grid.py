"""The target grid: an odc-geo GeoBox in the UTM zone of a bbox, snapped to the resolution."""

from __future__ import annotations

import math

from aefcli.errors import InputError
from aefcli.parse import BBox


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS84 UTM zone holding (lon, lat): 326zz north, 327zz south."""
    zone = min(int(math.floor((lon + 180) / 6)) + 1, 60)
    return (32600 if lat >= 0 else 32700) + zone


def target_geobox(bbox: BBox, crs: str = "auto", resolution: float = 10.0):
    """GeoBox covering `bbox` at `resolution` metres, pixel edges on multiples of the resolution.

    crs "auto": the UTM zone of the bbox centre; a bbox spanning two zones is refused
    (InputError asking for --crs) rather than silently distorted. Otherwise any projected
    CRS in metres ("EPSG:32631").
    """
    from odc.geo import geom
    from odc.geo.geobox import GeoBox
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    if not (resolution > 0 and math.isfinite(resolution)):
        raise InputError(f"resolution {resolution} must be a positive number of metres")
    if crs in ("auto", "", None):
        zones = {utm_epsg(bbox.west, bbox.centre[1]), utm_epsg(bbox.east - 1e-9, bbox.centre[1])}
        if len(zones) > 1:
            raise InputError(f"bbox {bbox.as_list()} spans UTM zones {sorted(zones)}; pass --crs EPSG:xxxxx to choose one grid")
        crs = f"EPSG:{utm_epsg(*bbox.centre)}"
    try:
        target = CRS.from_user_input(crs)
    except CRSError:
        raise InputError(f"unknown CRS {crs!r}; use e.g. EPSG:32631 or auto") from None
    if not target.is_projected or target.axis_info[0].unit_name not in ("metre", "meter"):
        raise InputError(f"CRS {crs!r} is not projected in metres; use a UTM CRS (e.g. EPSG:32631) or auto")
    poly = geom.box(*bbox.as_list(), "EPSG:4326").to_crs(target.to_string())
    return GeoBox.from_bbox(poly.boundingbox, target.to_string(), resolution=resolution)
