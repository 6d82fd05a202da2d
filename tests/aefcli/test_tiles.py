"""The global tile grid: stable ids, gap-free tiling per zone, zone/antimeridian/latitude splits."""

import json

import pytest
import shapely
from typer.testing import CliRunner

from aefcli.cli import app
from aefcli.errors import InputError
from aefcli.tiles import (
    DEFAULT_TILE_SIZE_M,
    SOUTH_ORIGIN_N,
    Tile,
    tile_from_id,
    tiles_for_bbox,
    tiles_for_geojson,
)

runner = CliRunner()
FLANDERS = (3.0, 51.0, 3.5, 51.3)


def test_ids_are_stable_unique_and_round_trip():
    tiles = tiles_for_bbox(FLANDERS)
    ids = [t.id for t in tiles]
    assert len(ids) == len(set(ids)) == 9
    # Fixed origin: corners are multiples of the tile size, so a run tomorrow, or by
    # someone else, names the same tiles (these values are part of the contract).
    assert "32631_E512000_N5652480" in ids
    assert ids == [t.id for t in tiles_for_bbox(FLANDERS)]
    for t in tiles:
        assert tile_from_id(t.id) == t
    # A sub-area gives a subset with the same ids.
    assert {t.id for t in tiles_for_bbox((3.2, 51.1, 3.3, 51.2))} <= set(ids)


def test_non_default_size_is_part_of_the_id():
    small = tiles_for_bbox(FLANDERS, tile_size_m=10240)
    assert all(t.id.endswith("_S10240") for t in small)
    assert tile_from_id(small[0].id).size_m == 10240
    assert tile_from_id(small[0].id).geobox.shape == (1024, 1024)


def test_tiles_of_a_zone_tile_the_plane_without_gaps_or_overlaps():
    tiles = tiles_for_bbox((2.0, 48.0, 4.0, 49.5), tile_size_m=40960)
    assert {t.epsg for t in tiles} == {32631}
    boxes = [shapely.box(*t.bounds_utm) for t in tiles]
    union = shapely.union_all(boxes)
    # No overlaps: areas add up exactly; no gaps: the union has no holes and covers the area.
    assert union.area == pytest.approx(sum(b.area for b in boxes), rel=1e-12)
    assert union.geom_type == "Polygon" and len(union.interiors) == 0
    from pyproj import Transformer

    tr = Transformer.from_crs(4326, 32631, always_xy=True)
    area = shapely.transform(shapely.segmentize(shapely.box(2.0, 48.0, 4.0, 49.5), 0.05), lambda xy: __import__("numpy").column_stack(tr.transform(xy[:, 0], xy[:, 1])))
    assert union.covers(area)
    # Each tile's GeoBox is the 10 m pixel grid of its bounds, and neighbours share edges exactly.
    for t in tiles:
        gb = t.geobox
        assert gb.resolution.x == 10 and tuple(gb.boundingbox)[:4] == t.bounds_utm
        assert t.x0 % 40960 == 0 and t.y0 % 40960 == 0


def test_bbox_across_zones_31_32_gives_tiles_of_both():
    tiles = tiles_for_bbox((5.8, 50.0, 6.2, 50.2))
    epsgs = {t.epsg for t in tiles}
    assert epsgs == {32631, 32632}
    # Each zone's tiles cover its own part of the area.
    for t in tiles:
        w, s, e, n = t.bounds_wgs84
        assert (e > 5.8 and w < 6.0) if t.epsg == 32631 else (e > 6.0 and w < 6.2)


def test_equator_splits_into_hemispheres_without_straddling():
    tiles = tiles_for_bbox((10.0, -0.1, 10.1, 0.1))
    north = [t for t in tiles if t.epsg == 32632]
    south = [t for t in tiles if t.epsg == 32732]
    assert north and south
    assert min(t.y0 for t in north) == 0
    assert max(t.y0 + t.size_m for t in south) == SOUTH_ORIGIN_N


def test_bbox_across_the_antimeridian():
    tiles = tiles_for_bbox((179.9, -17.0, -179.9, -16.9))
    assert {t.epsg for t in tiles} == {32760, 32701}
    crossing = [t for t in tiles if t.bounds_wgs84[0] > t.bounds_wgs84[2]]
    assert crossing, "tiles at the edge of zones 60/1 reach over 180 degrees and say so with W > E"
    fp = crossing[0].footprint_wgs84
    assert fp.geom_type == "MultiPolygon" and fp.bounds[0] == -180 and fp.bounds[2] == 180
    # Every tile really covers part of the requested area.
    area = shapely.union_all([shapely.box(179.9, -17.0, 180, -16.9), shapely.box(-180, -17.0, -179.9, -16.9)])
    for t in tiles:
        assert t.footprint_wgs84.intersects(area)


@pytest.mark.parametrize("bbox", [(10.0, 83.0, 11.0, 85.0), (10.0, -81.0, 11.0, -79.0)])
def test_beyond_utm_latitudes_is_a_clear_error(bbox):
    with pytest.raises(InputError, match="UTM does not apply"):
        tiles_for_bbox(bbox)


def test_bad_ids_and_sizes_are_input_errors():
    with pytest.raises(InputError):
        tile_from_id("31UDS")
    with pytest.raises(InputError):
        tile_from_id("32631_E500000_N5620000")  # not on the 20480 m grid
    with pytest.raises(InputError):
        tiles_for_bbox(FLANDERS, tile_size_m=1005)
    with pytest.raises(InputError):
        tiles_for_bbox((3.0, 52.0, 3.5, 51.0))


def test_margin_geobox_reaches_beyond_the_edge():
    t = tiles_for_bbox(FLANDERS)[0]
    g = t.geobox_with_margin(16)
    assert g.shape == (2048 + 32, 2048 + 32)
    assert g.boundingbox.left == t.x0 - 160 and g.boundingbox.top == t.y0 + DEFAULT_TILE_SIZE_M + 160


def test_geojson_polygon_gives_only_touched_tiles(tmp_path):
    # A thin diagonal polygon across the Flanders bbox touches fewer tiles than its bbox.
    poly = shapely.Polygon([(3.0, 51.0), (3.02, 51.0), (3.5, 51.28), (3.5, 51.3), (3.48, 51.3), (3.0, 51.02)])
    path = tmp_path / "area.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": shapely.geometry.mapping(poly)}]}))
    by_geojson = {t.id for t in tiles_for_geojson(path)}
    assert by_geojson < {t.id for t in tiles_for_bbox(poly.bounds)}
    assert all(tile_from_id(i).footprint_wgs84.intersects(poly) for i in by_geojson)


def test_cli_json_lines_and_table():
    result = runner.invoke(app, ["tiles", "--bbox", "3.0,51.0,3.5,51.3", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in rows] == [t.id for t in tiles_for_bbox(FLANDERS)]
    assert rows[0]["epsg"] == 32631 and len(rows[0]["bounds_wgs84"]) == 4
    table = runner.invoke(app, ["tiles", "--bbox", "3.0,51.0,3.5,51.3"])
    assert table.exit_code == 0 and "32631_E512000_N5652480" in table.stdout


def test_cli_polar_area_is_one_line_error():
    result = runner.invoke(app, ["tiles", "--bbox", "10,83,11,85"])
    assert result.exit_code == 1
    assert "UTM does not apply" in str(result.exception)


def test_estimate_sizes_and_whole_world_area():
    from aefcli.tiles import bbox_geometry, estimate

    tiles = tiles_for_bbox(FLANDERS)
    est = estimate(bbox_geometry(FLANDERS), tiles)
    assert est["tiles"] == 9 and est["pixels"] == 9 * 2048 * 2048
    assert est["bytes_float32"] == 4 * est["bytes_int8"] == 4 * 64 * est["pixels"]
    assert 1100 < est["area_km2"] < 1250  # 0.5 x 0.3 degrees at 51 N
    world = estimate(bbox_geometry((-180, -80, 180, 84)), [])
    import math

    # Sphere zone between 80 S and 84 N: (sin 84 - sin -80) / 2 of the Earth's 510.07 million km2.
    expected = 510.07e6 * (math.sin(math.radians(84)) + math.sin(math.radians(80))) / 2
    assert world["area_km2"] == pytest.approx(expected, rel=0.01)
