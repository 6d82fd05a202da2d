"""`aef index`: STAC items for complete tile stores only, mosaic of neighbouring tiles without seams."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from aefcli.cli import app
from aefcli.errors import DataError
from aefcli.index import build_index, open_index, open_mosaic
from aefcli.io import embedding_store as es
from aefcli.tiles import tiles_for_bbox

runner = CliRunner()
SIZE = 320  # 32 x 32 px tiles keep the test fast
ATTRS = {"kind": "embedding", "period": "2024-01-01/2025-01-01", "model": {"model_hash": "sha256:abc123"}}


def _field(geobox, bands=64):
    """A smooth deterministic field of absolute UTM position: equal values where tiles meet."""
    ys, xs = np.meshgrid(geobox.coords["y"].values, geobox.coords["x"].values, indexing="ij")
    k = np.arange(bands, dtype=np.float64)
    v = np.sin(xs[..., None] / 997.0 + k) + np.cos(ys[..., None] / 1303.0 - k)
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def _pair_geobox(west):
    """The pixel grid of `west` and its east neighbour together: 32 rows x 64 columns."""
    from affine import Affine
    from odc.geo.geobox import GeoBox

    return GeoBox((32, 64), Affine(10, 0, west.x0, 0, -10, west.y0 + SIZE), west.crs)


def _tile_store(folder, tile, dtype="float32", complete=True):
    path = folder / f"{tile.id}.zarr"
    es.create_store(path, tile.geobox, list(range(64)), dtype, 16, ATTRS)
    es.write_block(path, _field(tile.geobox), 0, 0)
    if complete:
        es.mark_complete(path)
    return path


@pytest.fixture
def out(tmp_path):
    tiles = tiles_for_bbox((3.2, 51.1, 3.2001, 51.1001), tile_size_m=SIZE)
    t = tiles[0]
    from aefcli.tiles import Tile

    east = Tile(t.epsg, t.x0 + SIZE, t.y0, SIZE)
    far = Tile(t.epsg, t.x0 + 3 * SIZE, t.y0 - SIZE, SIZE)  # leaves a gap in the zone mosaic
    unfinished = Tile(t.epsg, t.x0, t.y0 - SIZE, SIZE)
    other_zone = tiles_for_bbox((6.5, 51.1, 6.5001, 51.1001), tile_size_m=SIZE)[0]
    for tile in (t, east, far, other_zone):
        _tile_store(tmp_path, tile)
    _tile_store(tmp_path, unfinished, complete=False)
    return SimpleNamespace(path=tmp_path, tiles=dict(west=t, east=east, far=far, unfinished=unfinished, other=other_zone))


def test_index_lists_only_complete_tiles_as_valid_stac(out):
    import pystac

    result = build_index(out.path)
    tiles = out.tiles
    assert set(result.items) == {tiles[k].id for k in ("west", "east", "far", "other")}
    assert len(result.skipped) == 1 and tiles["unfinished"].id in result.skipped[0]
    coll = pystac.Collection.from_file(str(out.path / "collection.json"))
    items = list(coll.get_items())
    assert {i.id for i in items} == set(result.items)
    west = next(i for i in items if i.id == tiles["west"].id)
    assert west.properties["proj:code"] == "EPSG:32631"
    assert west.properties["aef:model_hash"] == "sha256:abc123"
    assert west.properties["start_datetime"].startswith("2024-01-01")
    assert west.bbox == pytest.approx(list(tiles["west"].bounds_wgs84), abs=1e-6)
    assert (out.path / "items" / f"{west.id}.json").is_file()
    assert west.assets["embedding"].get_absolute_href().endswith(f"{west.id}.zarr")
    for item in items:  # core schema (offline; extension schemas need the network)
        pystac.validation.validate_dict({**item.to_dict(), "stac_extensions": []})


def test_open_index_and_mosaic_join_neighbours_without_seam(out):
    build_index(out.path)
    entries = open_index(out.path)
    assert {e.epsg for e in entries} == {32631, 32632}
    assert all(e.store.is_dir() for e in entries)
    with pytest.raises(Exception):
        open_mosaic(out.path)  # two zones: the caller must choose
    mosaic = open_mosaic(out.path, epsg=32631)
    w, f = out.tiles["west"], out.tiles["far"]
    assert mosaic.rio.crs.to_epsg() == 32631
    assert mosaic.shape == (64, 4 * 32, 64)
    # The shared edge: columns 31 | 32 are the two stores' last/first columns, equal to the field.
    expected = _field(_pair_geobox(w))
    got = mosaic.sel(x=slice(w.x0, w.x0 + 2 * SIZE), y=slice(w.y0 + SIZE, w.y0)).values
    np.testing.assert_array_equal(got, expected)
    # The gap between tiles reads as nodata.
    assert np.isnan(mosaic.sel(x=f.x0 - 5, y=w.y0 + 5).values).all()


def test_cog_mirrors_and_vrt_open_as_one_raster(out):
    import rasterio

    result = build_index(out.path, cog=True)
    assert sorted(p.name for p in result.vrts) == ["mosaic-32631.vrt", "mosaic-32632.vrt"]
    w = out.tiles["west"]
    expected = _field(_pair_geobox(w))
    with rasterio.open(out.path / "mosaic-32631.vrt") as src:
        assert src.count == 64 and src.crs.to_epsg() == 32631 and src.res == (10, 10)
        win = src.window(w.x0, w.y0, w.x0 + 2 * SIZE, w.y0 + SIZE)
        data = src.read(window=win)
    np.testing.assert_array_equal(np.moveaxis(data, 0, 2), expected)
    assert {e.cog.name for e in open_index(out.path)} == {f"{i}.tif" for i in result.items}


def test_int8_store_mirrors_keep_the_quantised_codes(tmp_path):
    import rasterio

    t = tiles_for_bbox((3.2, 51.1, 3.2001, 51.1001), tile_size_m=SIZE)[0]
    _tile_store(tmp_path, t, dtype="int8")
    build_index(tmp_path, cog=True)
    with rasterio.open(tmp_path / "cog" / f"{t.id}.tif") as src:
        assert src.dtypes[0] == "int8" and src.nodata == -128
        assert src.tags()["AEF_QUANTISATION"] == "aef-int8-sqrt"
        codes = np.moveaxis(src.read(), 0, 2)
    np.testing.assert_array_equal(codes, es.quantise(_field(t.geobox)))


def test_empty_or_all_incomplete_is_a_data_error(tmp_path):
    t = tiles_for_bbox((3.2, 51.1, 3.2001, 51.1001), tile_size_m=SIZE)[0]
    _tile_store(tmp_path, t, complete=False)
    with pytest.raises(DataError, match="no complete embedding store"):
        build_index(tmp_path)


def test_cli_reports_items_and_skipped(out):
    result = runner.invoke(app, ["index", str(out.path), "--json"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout.strip().splitlines()[-1])
    assert row["items"] == 4 and len(row["skipped"]) == 1
