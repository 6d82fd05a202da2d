"""The vectorised tile listing and WGS84 bounds equal the straightforward (session 1) implementation exactly.

`reference_tiles_for_geometry` and `reference_bounds_wgs84` are that implementation,
kept here as the oracle (and imported by benchmarks/tiles_listing.py for the
before/after timing): per-tile DE-9IM tests against the unprepared area, and one
projection per tile.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import shapely
from typer.testing import CliRunner

from aefcli.cli import app
from aefcli.tiles import (
    SOUTH_ORIGIN_N,
    UTM_NORTH_LIMIT,
    UTM_SOUTH_LIMIT,
    Tile,
    _DENSIFY_DEG,
    _to_lonlat,
    _to_utm,
    bbox_geometry,
    tiles_for_geometry,
    utm_epsg,
    wgs84_bounds,
)


def reference_tiles_for_geometry(geom, size: int) -> list[Tile]:
    """The tile listing as first written: every candidate box tested against the unprepared area."""
    has_area = geom.area > 0
    found: dict[str, Tile] = {}
    for zone in range(1, 61):
        lon0 = -180 + 6 * (zone - 1)
        for south, (lat0, lat1) in ((False, (0.0, UTM_NORTH_LIMIT)), (True, (UTM_SOUTH_LIMIT, 0.0))):
            part = geom.intersection(shapely.box(lon0, lat0, lon0 + 6, lat1))
            if part.is_empty or (has_area and part.area == 0):
                continue
            epsg = utm_epsg(zone, south)
            tr = _to_utm(epsg)
            part_utm = shapely.transform(shapely.segmentize(part, _DENSIFY_DEG), lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
            origin_y = SOUTH_ORIGIN_N if south else 0
            minx, miny, maxx, maxy = part_utm.bounds
            cols = np.arange(math.floor(minx / size), math.floor(maxx / size) + 1)
            rows = np.arange(math.floor((miny - origin_y) / size), math.floor((maxy - origin_y) / size) + 1)
            cc, rr = (a.ravel() for a in np.meshgrid(cols, rows))
            x0s, y0s = cc * size, origin_y + rr * size
            boxes = shapely.box(x0s, y0s, x0s + size, y0s + size)
            shapely.prepare(part_utm)
            hit = shapely.intersects(boxes, part_utm)
            if has_area:
                hit[hit] = shapely.relate_pattern(boxes[hit], part_utm, "T********")
            for x0, y0 in zip(x0s[hit], y0s[hit]):
                tile = Tile(epsg, int(x0), int(y0), size)
                found[tile.id] = tile
    return sorted(found.values(), key=lambda t: (t.epsg, -t.y0, t.x0))


def reference_bounds_wgs84(t: Tile) -> tuple[float, float, float, float]:
    """One tile's (W, S, E, N) as first written: a Python list ring, one projection per tile."""
    left, bottom, right, top = t.bounds_utm
    n = 16
    xs = [left + (right - left) * i / n for i in range(n)] + [right] * n + [right - (right - left) * i / n for i in range(n)] + [left] * n
    ys = [bottom] * n + [bottom + (top - bottom) * i / n for i in range(n)] + [top] * n + [top - (top - bottom) * i / n for i in range(n)]
    lon, lat = _to_lonlat(t.epsg).transform(xs, ys)
    central = -183 + 6 * t.zone
    lons = [central + ((lo - central + 180) % 360) - 180 for lo in lon]
    w, e = min(lons), max(lons)
    w, e = (w + 360 if w < -180 else w), (e - 360 if e > 180 else e)
    return (w, min(lat), e, max(lat))


AREAS = {
    "flanders": (bbox_geometry((3.0, 51.0, 3.5, 51.3)), 20480),
    "zones 31/32": (bbox_geometry((5.8, 50.0, 6.2, 50.2)), 20480),
    "antimeridian": (bbox_geometry((179.5, -17.5, -179.5, -16.5)), 10240),
    "equator": (bbox_geometry((9.5, -0.5, 12.5, 0.5)), 20480),
    "near 84 N": (bbox_geometry((20.0, 83.0, 33.0, 84.0)), 20480),
    "thin diagonal": (shapely.Polygon([(3.0, 51.0), (3.02, 51.0), (9.5, 54.28), (9.5, 54.3), (9.48, 54.3), (3.0, 51.02)]), 5120),
    "holed, 3 zones": (shapely.Polygon(shapely.box(4, 44, 16, 48).exterior, [shapely.box(7, 45, 13, 47).exterior.coords]), 40960),
    "point": (bbox_geometry((6.0, 50.0, 6.0, 50.0)), 20480),
    "line": (shapely.LineString([(2.5, 48.0), (7.5, 49.5)]), 20480),
}


@pytest.mark.parametrize("name", list(AREAS))
def test_listing_equals_reference(name):
    geom, size = AREAS[name]
    got, ref = tiles_for_geometry(geom, size), reference_tiles_for_geometry(geom, size)
    assert got, name
    assert [t.id for t in got] == [t.id for t in ref]  # same tiles, same order


def test_continent_listing_equals_reference():
    geom = bbox_geometry((-10.0, 35.0, 30.0, 60.0))  # Europe: 7 zones, about 20 000 tiles
    got = tiles_for_geometry(geom)
    assert len(got) > 15_000
    assert [t.id for t in got] == [t.id for t in reference_tiles_for_geometry(geom, 20480)]


def test_batched_bounds_equal_per_tile_bounds_exactly():
    tiles = [t for name in ("flanders", "antimeridian", "near 84 N", "equator") for t in tiles_for_geometry(*AREAS[name])]
    assert any(t.bounds_wgs84[0] > t.bounds_wgs84[2] for t in tiles), "an antimeridian tile is among them"
    batch = wgs84_bounds(tiles)
    assert batch.shape == (len(tiles), 4)
    for t, row in zip(tiles, batch.tolist()):
        assert tuple(row) == reference_bounds_wgs84(t) == t.bounds_wgs84


def test_cli_ids_and_json_agree_with_the_library():
    runner = CliRunner()
    args = ["tiles", "--bbox", "179.5,-17.5,-179.5,-16.5", "--tile-size", "10240"]
    tiles = tiles_for_geometry(*AREAS["antimeridian"])
    ids = runner.invoke(app, [*args, "--ids"])
    assert ids.exit_code == 0, ids.output
    assert ids.stdout.split() == [t.id for t in tiles]
    rows = [json.loads(line) for line in runner.invoke(app, [*args, "--json"]).stdout.splitlines()]
    assert rows == [json.loads(json.dumps(t.to_dict())) for t in tiles]  # batched bounds == one by one
