"""`aef probe --embeddings OUT/collection.json`: a tile index opens as one mosaic of the tiles the labels touch."""

from __future__ import annotations

import numpy as np
import rasterio

from aefcli.index import build_index
from aefcli.io import embedding_store as es
from aefcli.tiles import Tile
from test_probe import X0, Y1, make_world, probe, write_points

TILE_M = 320  # 32 px tiles: the 64 px probe world is 2 x 2 of them
ATTRS = {"kind": "embedding", "period": "2024-01-01/2025-01-01", "model": {"model_hash": "sha256:test"}}


def _split_into_tiles(store, folder):
    """Copy the world store into one store per 320 m tile, plus an untouched far tile and an unfinished one."""
    values = es.open_embeddings(store).values
    ny = values.shape[0]
    y0 = int(Y1) - ny * 10
    tiles = [Tile(32631, int(X0) + dx, y0 + dy, TILE_M) for dy in (TILE_M, 0) for dx in (0, TILE_M)]
    for k, t in enumerate(tiles):
        r, c = (k // 2) * 32, (k % 2) * 32
        path = folder / f"{t.id}.zarr"
        es.create_store(path, t.geobox, list(range(64)), "float32", 16, ATTRS)
        es.write_block(path, values[r:r + 32, c:c + 32], 0, 0)
        es.mark_complete(path)
    far = Tile(32631, int(X0) + 4 * TILE_M, y0, TILE_M)  # no label near it: must not widen the grid
    unfinished = Tile(32631, int(X0) + 2 * TILE_M, y0, TILE_M)  # incomplete: not in the index
    for t, done in ((far, True), (unfinished, False)):
        path = folder / f"{t.id}.zarr"
        es.create_store(path, t.geobox, list(range(64)), "float32", 16, ATTRS)
        es.write_block(path, np.ones((32, 32, 64), np.float32) / 8, 0, 0)
        if done:
            es.mark_complete(path)
    return build_index(folder)


def test_probe_on_the_index_equals_probe_on_one_store(tmp_path):
    store, truth, gb = make_world(tmp_path, n=64, parcel=8, dtype="float32", chunk=16, nodata_rows=0)
    index = _split_into_tiles(store, tmp_path / "tiles")
    assert len(index.items) == 5 and len(index.skipped) == 1
    labels = write_points(tmp_path / "labels.geojson", gb, truth, n_points=200, rows_from=0)
    out = tmp_path / "map.tif"
    res = probe(labels, "--embeddings", index.collection, "--embeddings", store, "--out", out, "--draws", "2")
    on_index, on_store = res["results"]
    assert on_index["embeddings"].endswith("collection.json")
    assert res["counts"]["used"] == res["counts"]["pixels"] == 200  # every label found a vector in the mosaic
    assert on_index["scores"] == on_store["scores"]  # the same vectors at every label, on the same folds
    assert on_index["scores"]["max"]["balanced_accuracy"]["mean"] > 0.9
    with rasterio.open(out) as src:  # the map covers the touched tiles only, on the store's grid
        assert src.transform == gb.affine and (src.height, src.width) == (64, 64)
        pred = src.read(1)
    mapped = np.array(res["classes"])[pred]
    assert (mapped == np.array(["maize", "grass", "wheat"])[truth]).mean() > 0.95


def test_probe_index_folder_and_labels_outside_every_tile(tmp_path):
    from typer.testing import CliRunner

    from aefcli.cli import app

    store, truth, gb = make_world(tmp_path, n=64, parcel=8, dtype="float32", chunk=16, nodata_rows=0)
    folder = tmp_path / "tiles"
    _split_into_tiles(store, folder)
    labels = write_points(tmp_path / "labels.geojson", gb, truth, n_points=120, rows_from=0)
    res = probe(labels, "--embeddings", folder)  # the index folder itself works too
    assert res["counts"]["used"] == 120
    # labels far from every tile: one-line error, exit 1
    from affine import Affine
    from odc.geo.geobox import GeoBox

    away = GeoBox((64, 64), Affine(10, 0, X0 + 20_000, 0, -10, Y1), gb.crs)
    far_labels = write_points(tmp_path / "far.geojson", away, truth, n_points=20, rows_from=0)
    bad = CliRunner().invoke(app, ["probe", str(far_labels), "--embeddings", str(folder)])
    assert bad.exit_code == 1 and "no tile of the index" in (bad.output + str(bad.exception))
