"""The global tile grid: fixed square UTM tiles at 10 m, the same for everyone.

Every tile lives in one UTM zone (WGS84 / UTM, EPSG 326zz north, 327zz south)
and is aligned to a fixed origin of that zone: tile edges fall on multiples of
the tile size from easting 0 and from the equator (northing 0 in 326zz,
northing 10 000 000 in 327zz, so no tile straddles the equator). A tile is
therefore fully named by its zone EPSG and its lower-left corner, e.g.
`32631_E501760_N5611520` (tile size 20480 m); a non-default size is appended,
`32631_E501760_N5611520_S10240`, so an id alone always rebuilds its tile.

How an area is split: the area (WGS84 lon/lat) is cut along the 6 degree UTM
zone bands and the equator; each piece is covered by the tiles of the zone and
hemisphere whose band contains it. A tile near a zone edge reaches beyond its
band, so the tiles of two neighbouring zones overlap there (as Sentinel-2's
MGRS tiles do); every point of the area is covered by the tiles of its own zone.
The Norway/Svalbard zone exceptions are not applied: zones are the regular
6 degree bands. UTM stops at 84 N and 80 S; an area beyond raises InputError.
An area across the antimeridian is given as a bbox with W > E (the GeoJSON/STAC
convention) or as a geometry already split at 180 degrees (RFC 7946).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Sequence

from aefcli.errors import InputError

RESOLUTION_M = 10
DEFAULT_TILE_SIZE_M = 20480  # 2048 pixels of 10 m
UTM_NORTH_LIMIT = 84.0
UTM_SOUTH_LIMIT = -80.0
SOUTH_ORIGIN_N = 10_000_000  # the equator in the 327zz false-northing frame
_ID = re.compile(r"^(32[67]\d\d)_E(\d+)_N(\d+)(?:_S(\d+))?$")
_DENSIFY_DEG = 0.05  # lon/lat edges are curved in UTM: densify before projecting


def utm_epsg(zone: int, south: bool) -> int:
    """EPSG code of WGS84 / UTM `zone` (1..60), north (326zz) or south (327zz)."""
    return (32700 if south else 32600) + zone


def _check_size(tile_size_m: int) -> int:
    if int(tile_size_m) != tile_size_m or tile_size_m <= 0 or tile_size_m % RESOLUTION_M:
        raise InputError(f"--tile-size must be a positive multiple of {RESOLUTION_M} m, not {tile_size_m}.")
    return int(tile_size_m)


@dataclass(frozen=True)
class Tile:
    """One grid tile: a square of `size_m` metres in a UTM zone, pixels of 10 m.

    x0, y0: lower-left corner (easting, northing) in metres in EPSG `epsg`,
    multiples of `size_m` from the zone's origin (see module docstring).
    """

    epsg: int
    x0: int
    y0: int
    size_m: int = DEFAULT_TILE_SIZE_M

    def __post_init__(self) -> None:
        zone = self.epsg % 100
        if self.epsg // 100 not in (326, 327) or not 1 <= zone <= 60:
            raise InputError(f"EPSG {self.epsg} is not a WGS84 / UTM zone (32601..32660, 32701..32760).")
        size = _check_size(self.size_m)
        origin_y = SOUTH_ORIGIN_N if self.south else 0
        if self.x0 % size or (self.y0 - origin_y) % size:
            raise InputError(f"corner ({self.x0}, {self.y0}) is not on the {size} m tile grid of EPSG:{self.epsg}.")

    @property
    def zone(self) -> int:
        return self.epsg % 100

    @property
    def south(self) -> bool:
        return self.epsg // 100 == 327

    @property
    def id(self) -> str:
        """Stable id `EPSG_E<x0>_N<y0>` (+ `_S<size>` when the size is not 20480 m)."""
        suffix = "" if self.size_m == DEFAULT_TILE_SIZE_M else f"_S{self.size_m}"
        return f"{self.epsg}_E{self.x0}_N{self.y0}{suffix}"

    @property
    def crs(self) -> str:
        return f"EPSG:{self.epsg}"

    @property
    def bounds_utm(self) -> tuple[int, int, int, int]:
        """(left, bottom, right, top) in metres in the tile's UTM CRS."""
        return (self.x0, self.y0, self.x0 + self.size_m, self.y0 + self.size_m)

    @cached_property
    def geobox(self):
        """odc.geo GeoBox of the tile: (size/10, size/10) pixels of 10 m, north up."""
        from affine import Affine
        from odc.geo.geobox import GeoBox

        n = self.size_m // RESOLUTION_M
        return GeoBox((n, n), Affine(RESOLUTION_M, 0, self.x0, 0, -RESOLUTION_M, self.y0 + self.size_m), self.crs)

    def geobox_with_margin(self, px: int):
        """The tile's GeoBox grown by `px` pixels on every side (input a tile reads beyond its edge)."""
        if px < 0:
            raise ValueError(f"margin must be >= 0 pixels, not {px}")
        from affine import Affine
        from odc.geo.geobox import GeoBox

        n = self.size_m // RESOLUTION_M + 2 * px
        left, top = self.x0 - px * RESOLUTION_M, self.y0 + self.size_m + px * RESOLUTION_M
        return GeoBox((n, n), Affine(RESOLUTION_M, 0, left, 0, -RESOLUTION_M, top), self.crs)

    @cached_property
    def _lonlat_ring(self) -> list[tuple[float, float]]:
        """Densified boundary in lon/lat, longitudes unwrapped around the zone's meridian (may pass 180)."""
        lon, lat = _lonlat_rings(self.epsg, [self.x0], [self.y0], self.size_m)
        return list(zip(lon[0].tolist(), lat[0].tolist()))

    @property
    def bounds_wgs84(self) -> tuple[float, float, float, float]:
        """(W, S, E, N) in degrees; W > E when the tile crosses the antimeridian."""
        return tuple(wgs84_bounds([self])[0].tolist())

    @property
    def footprint_wgs84(self):
        """shapely footprint in lon/lat; a MultiPolygon split at 180 degrees when it crosses it."""
        import shapely
        from shapely.affinity import translate

        poly = shapely.Polygon(self._lonlat_ring)
        parts = []
        for shift in (0, -360, 360):
            piece = poly.intersection(shapely.box(-180 - shift, -90, 180 - shift, 90))
            if piece.area > 0:
                parts.append(translate(piece, xoff=shift))
        return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)

    def to_dict(self, bounds_wgs84: Sequence[float] | None = None) -> dict[str, Any]:
        """JSON-ready description (what `aef tiles --json` prints); bounds_wgs84 if already computed."""
        return {
            "id": self.id,
            "epsg": self.epsg,
            "size_m": self.size_m,
            "shape": [self.size_m // RESOLUTION_M] * 2,
            "bounds_utm": list(self.bounds_utm),
            "bounds_wgs84": [round(float(v), 7) for v in (self.bounds_wgs84 if bounds_wgs84 is None else bounds_wgs84)],
        }


@lru_cache(maxsize=None)
def _to_lonlat(epsg: int):
    from pyproj import Transformer

    return Transformer.from_crs(epsg, 4326, always_xy=True)


@lru_cache(maxsize=None)
def _to_utm(epsg: int):
    from pyproj import Transformer

    return Transformer.from_crs(4326, epsg, always_xy=True)


_RING_STEPS = 16  # points per tile edge


def _lonlat_rings(epsg: int, x0s, y0s, size: int):
    """Densified closed boundaries of tiles of one zone in lon/lat: (lon, lat), each (n, 4 * 16 + 1) degrees.

    Counter-clockwise from the lower-left corner; longitudes unwrapped around the
    zone's central meridian, so a tile across the antimeridian has lon < -180 or > 180.
    """
    import numpy as np

    left, bottom = np.asarray(x0s, np.int64)[:, None], np.asarray(y0s, np.int64)[:, None]
    right, top = left + size, bottom + size
    n, i = _RING_STEPS, np.arange(_RING_STEPS)
    ones = np.ones(n, np.int64)
    xs = np.hstack([left + (right - left) * i / n, right * ones, right - (right - left) * i / n, left * ones])
    ys = np.hstack([bottom * ones, bottom + (top - bottom) * i / n, top * ones, top - (top - bottom) * i / n])
    lon, lat = _to_lonlat(epsg).transform(xs.ravel(), ys.ravel())
    lon, lat = np.asarray(lon).reshape(xs.shape), np.asarray(lat).reshape(xs.shape)
    central = -183 + 6 * (epsg % 100)
    lon = central + ((lon - central + 180) % 360) - 180
    return np.hstack([lon, lon[:, :1]]), np.hstack([lat, lat[:, :1]])


def wgs84_bounds(tiles: Sequence[Tile]):
    """(n, 4) float64 array of (W, S, E, N) degrees of every tile, W > E across the antimeridian.

    One batched projection per zone: the whole world's tiles in seconds, where
    `Tile.bounds_wgs84` one by one would take minutes. Same values as it, exactly.
    """
    import numpy as np

    out = np.empty((len(tiles), 4))
    groups: dict[tuple[int, int], list[int]] = {}
    for k, t in enumerate(tiles):
        groups.setdefault((t.epsg, t.size_m), []).append(k)
    for (epsg, size), idx in groups.items():
        lon, lat = _lonlat_rings(epsg, [tiles[k].x0 for k in idx], [tiles[k].y0 for k in idx], size)
        w, e = lon.min(1), lon.max(1)
        out[idx] = np.column_stack([np.where(w < -180, w + 360, w), lat.min(1), np.where(e > 180, e - 360, e), lat.max(1)])
    return out


def tile_from_id(tile_id: str) -> Tile:
    """The Tile named by an id printed by `aef tiles` (InputError if malformed)."""
    m = _ID.match(tile_id.strip())
    if not m:
        raise InputError(f"{tile_id!r} is not a tile id; expected EPSG_E<easting>_N<northing>[_S<size>] as printed by `aef tiles`, e.g. 32631_E501760_N5611520.")
    epsg, x0, y0, size = m.groups()
    return Tile(int(epsg), int(x0), int(y0), int(size) if size else DEFAULT_TILE_SIZE_M)


def _check_lonlat_bounds(bounds: Sequence[float]) -> None:
    w, s, e, n = bounds
    if w < -180 or e > 180 or s < -90 or n > 90:
        raise InputError(f"area bounds {list(bounds)} are not WGS84 lon/lat degrees; give longitudes in -180..180 and latitudes in -90..90.")
    if n > UTM_NORTH_LIMIT or s < UTM_SOUTH_LIMIT:
        lat = n if n > UTM_NORTH_LIMIT else s
        raise InputError(
            f"the area reaches latitude {lat:g}, where UTM does not apply (it covers {UTM_SOUTH_LIMIT:g}..{UTM_NORTH_LIMIT:g}); "
            "clip the area to that range (polar grids are not supported)."
        )


def bbox_geometry(bbox: Sequence[float]):
    """WGS84 bbox (W, S, E, N) -> shapely geometry, split at 180 degrees when W > E."""
    import shapely

    if len(bbox) != 4:
        raise InputError(f"a bbox has 4 numbers W,S,E,N, not {len(bbox)}.")
    w, s, e, n = (float(v) for v in bbox)
    if s > n:
        raise InputError(f"bbox south {s:g} is north of its north {n:g}; give W,S,E,N.")
    if w > e:  # across the antimeridian
        _check_lonlat_bounds((w, s, 180, n))
        _check_lonlat_bounds((-180, s, e, n))
        return shapely.MultiPolygon([shapely.box(w, s, 180, n), shapely.box(-180, s, e, n)])
    _check_lonlat_bounds((w, s, e, n))
    if w == e or s == n:  # a point or a line: still has a tile
        return shapely.Point(w, s) if (w == e and s == n) else shapely.LineString([(w, s), (e, n)])
    return shapely.box(w, s, e, n)


def _zone_part_corners(part, epsg: int, size: int, has_area: bool):
    """Lower-left corners (x0, y0 int64 arrays, metres) of the tiles of `epsg` covering `part` (lon/lat).

    Vectorised over every candidate tile of the part's UTM bounding box: tiles wholly
    inside the area are found with the prepared area (`contains_properly`, fast), and
    only those along its boundary go through the exact DE-9IM test.
    """
    import numpy as np
    import shapely

    tr = _to_utm(epsg)
    part_utm = shapely.transform(shapely.segmentize(part, _DENSIFY_DEG), lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
    origin_y = SOUTH_ORIGIN_N if epsg // 100 == 327 else 0
    minx, miny, maxx, maxy = part_utm.bounds
    cols = np.arange(math.floor(minx / size), math.floor(maxx / size) + 1, dtype=np.int64)
    rows = np.arange(math.floor((miny - origin_y) / size), math.floor((maxy - origin_y) / size) + 1, dtype=np.int64)
    cc, rr = (a.ravel() for a in np.meshgrid(cols, rows))
    x0s, y0s = cc * size, origin_y + rr * size
    boxes = shapely.box(x0s, y0s, x0s + size, y0s + size)
    shapely.prepare(part_utm)  # used only when the prepared geometry is the FIRST argument
    hit = shapely.intersects(part_utm, boxes)
    if has_area:  # drop tiles that only touch the area along an edge: interiors must meet
        edge = hit & ~shapely.contains_properly(part_utm, boxes)
        hit[edge] = shapely.relate_pattern(boxes[edge], part_utm, "T********")
    return x0s[hit], y0s[hit]


def tiles_for_geometry(geom, tile_size_m: int = DEFAULT_TILE_SIZE_M) -> list[Tile]:
    """The tiles covering a shapely geometry in WGS84 lon/lat, sorted by (EPSG, north to south, west to east).

    A tile is kept when its interior meets the area's interior (for areas of
    zero area - points, lines - when it touches the area).
    """
    import numpy as np
    import shapely

    size = _check_size(tile_size_m)
    if geom.is_empty:
        raise InputError("the area is empty; give a bbox or a GeoJSON with at least one geometry.")
    _check_lonlat_bounds(geom.bounds)
    has_area = geom.area > 0
    found: list[Tile] = []
    # one (zone, hemisphere) piece at a time, in EPSG order (326zz, then 327zz): each tile is found once
    for south, (lat0, lat1) in ((False, (0.0, UTM_NORTH_LIMIT)), (True, (UTM_SOUTH_LIMIT, 0.0))):
        for zone in range(1, 61):
            lon0 = -180 + 6 * (zone - 1)
            part = geom.intersection(shapely.box(lon0, lat0, lon0 + 6, lat1))
            if part.is_empty or (has_area and part.area == 0):
                continue
            epsg = utm_epsg(zone, south)
            x0s, y0s = _zone_part_corners(part, epsg, size, has_area)
            order = np.lexsort((x0s, -y0s))  # north to south, then west to east
            found.extend(Tile(epsg, x0, y0, size) for x0, y0 in zip(x0s[order].tolist(), y0s[order].tolist()))
    return found


def tiles_for_bbox(bbox: Sequence[float], tile_size_m: int = DEFAULT_TILE_SIZE_M) -> list[Tile]:
    """The tiles covering a WGS84 bbox (W, S, E, N) in degrees; W > E means across the antimeridian."""
    return tiles_for_geometry(bbox_geometry(bbox), tile_size_m)


def load_geojson(path_or_geom: str | Path | dict | Any):
    """A GeoJSON file, FeatureCollection, Feature or geometry (WGS84) -> one shapely geometry."""
    import shapely
    from shapely.geometry import shape

    if hasattr(path_or_geom, "geom_type"):
        return path_or_geom
    doc = path_or_geom
    if isinstance(path_or_geom, (str, Path)):
        try:
            doc = json.loads(Path(path_or_geom).read_text())
        except (OSError, ValueError) as err:
            raise InputError(f"cannot read GeoJSON {path_or_geom}: {err}.") from None
    try:
        if doc.get("type") == "FeatureCollection":
            geoms = [shape(f["geometry"]) for f in doc["features"] if f.get("geometry")]
        elif doc.get("type") == "Feature":
            geoms = [shape(doc["geometry"])]
        else:
            geoms = [shape(doc)]
    except (AttributeError, KeyError, TypeError, ValueError, shapely.errors.GEOSException) as err:
        raise InputError(f"not a GeoJSON geometry, Feature or FeatureCollection ({err}).") from None
    if not geoms:
        raise InputError("the GeoJSON has no geometry; give at least one Polygon or Point.")
    return shapely.make_valid(shapely.union_all(geoms))


def tiles_for_geojson(path_or_geom: str | Path | dict | Any, tile_size_m: int = DEFAULT_TILE_SIZE_M) -> list[Tile]:
    """The tiles covering a GeoJSON area (path, dict or shapely geometry) in WGS84 lon/lat."""
    return tiles_for_geometry(load_geojson(path_or_geom), tile_size_m)


EMBEDDING_BANDS = 64  # formats.md section 4


def estimate(geom, tiles: Sequence[Tile], bands: int = EMBEDDING_BANDS, seconds_per_window: float | None = None,
             window: int = 128, overlap: int = 32, chunk: int = 512) -> dict[str, Any]:
    """Size of a run: geodesic area (km2) of `geom` (WGS84), tiles, tiled km2, uncompressed output bytes.

    Output bytes count every pixel of every tile (y, x, band): float32 4 bytes,
    int8 1 byte per value; Zarr compression is not counted. With seconds_per_window
    (a measured model time, `aefcli.embed_estimate.calibrate`): the model windows of every tile
    (window/overlap/chunk as `aef embed`, each window once) and the compute time,
    windows x seconds.
    """
    import shapely
    from pyproj import Geod

    # Per 6 degree band: pyproj's geodesic area is wrong for polygons wider than 180 degrees.
    geod = Geod(ellps="WGS84")
    strips = (geom.intersection(shapely.box(lon0, -90, lon0 + 6, 90)) for lon0 in range(-180, 180, 6))
    area_m2 = sum(abs(geod.geometry_area_perimeter(b)[0]) for b in strips if not b.is_empty)
    pixels = sum((t.size_m // RESOLUTION_M) ** 2 for t in tiles)
    out = {
        "area_km2": round(area_m2 / 1e6, 3),
        "tiles": len(tiles),
        "tiles_km2": round(sum(t.size_m**2 for t in tiles) / 1e6, 3),
        "pixels": pixels,
        "bytes_float32": pixels * bands * 4,
        "bytes_int8": pixels * bands,
    }
    if seconds_per_window is not None:
        from aefcli.tiling import Layout

        windows = 0
        for t in tiles:  # `aef embed` computes each window of a tile once (by the chunk that owns it)
            n = t.size_m // RESOLUTION_M
            lay = Layout(window, overlap, chunk, origin=((t.y0 + t.size_m) // -RESOLUTION_M, t.x0 // RESOLUTION_M))
            windows += len(lay.windows((0, n), (0, n)))
        out.update(windows=windows, seconds_per_window=round(seconds_per_window, 6), compute_s=round(windows * seconds_per_window, 1))
    return out
