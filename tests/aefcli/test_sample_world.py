"""`aef sample-world` outputs: real COGs, offline-valid STAC in Earth Search style, labels, determinism."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from aefcli.errors import InputError
from aefcli.sampleworld import write_sample_world
from aefcli.sampleworld.cog import write_cog
from aefcli.sampleworld.validate import validate_catalog

S2_KEYS = {"blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir", "nir08", "swir16", "swir22", "scl"}
S2_NAMES = {"blue": "B02", "green": "B03", "red": "B04", "rededge1": "B05", "rededge2": "B06", "rededge3": "B07",
            "nir": "B08", "nir08": "B8A", "swir16": "B11", "swir22": "B12"}
TWENTY_M = {"rededge1", "rededge2", "rededge3", "nir08", "swir16", "swir22", "scl"}
SIZE, DATES = 64, 6


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return write_sample_world(tmp_path_factory.mktemp("sw") / "world", size=SIZE, dates=DATES, seed=3)


def _items(world, collection: str) -> list[dict]:
    paths = sorted((world.root / collection).glob("*/*.json"))
    return [json.loads(p.read_text()) for p in paths]


def _tree_hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_every_raster_is_a_valid_cog(world):
    tifs = sorted(world.root.rglob("*.tif"))
    assert len(tifs) == 1 + DATES * 11 + DATES * 2
    for tif in tifs:
        valid, errors, _ = cog_validate(str(tif), quiet=True)
        assert valid and not errors, (tif, errors)


def test_cog_writer_tiles_and_builds_overviews(tmp_path):
    data = np.arange(256 * 256, dtype=np.uint16).reshape(256, 256)
    path = write_cog(tmp_path / "x.tif", data, (10.0, 0.0, 0.0, 0.0, -10.0, 0.0), "EPSG:32631", 0)
    assert cog_validate(str(path), quiet=True)[0]
    with rasterio.open(path) as src:
        assert src.block_shapes[0] == (128, 128)
        assert src.overviews(1) == [2]
        assert np.array_equal(src.read(1), data)


def test_stac_validates_against_core_schemas_offline(world):
    result = validate_catalog(world.root)
    assert result.objects == 1 + 2 + 2 * DATES  # catalog, 2 collections, items
    # only extension schemas (network) are skipped; their fields are asserted below
    assert all(url.startswith("https://stac-extensions.github.io/") for url in result.skipped_extensions)


def test_invalid_stac_is_caught(world, tmp_path):
    import shutil

    from pystac.errors import STACValidationError

    copy = tmp_path / "w"
    shutil.copytree(world.root, copy)
    item = next((copy / "sentinel-2-l2a").glob("*/*.json"))
    doc = json.loads(item.read_text())
    del doc["properties"]["datetime"]
    item.write_text(json.dumps(doc))
    with pytest.raises(STACValidationError):
        validate_catalog(copy)


def test_s2_items_look_like_earth_search(world):
    items = _items(world, "sentinel-2-l2a")
    assert len(items) == DATES
    for item in items:
        props = item["properties"]
        assert set(item["assets"]) == S2_KEYS
        assert props["constellation"] == "sentinel-2" and props["platform"] in ("sentinel-2a", "sentinel-2b")
        assert props["proj:epsg"] == 32631 and props["proj:code"] == "EPSG:32631"
        assert props["proj:shape"] == [SIZE, SIZE] and len(props["proj:transform"]) == 6
        assert 0 <= props["eo:cloud_cover"] <= 100
        assert props["s2:processing_baseline"] >= "04.00"  # 2024: BOA offset in the DNs
        assert props["datetime"].startswith("2024-")
        w, s, e, n = item["bbox"]
        assert 2.9 < w < e < 3.1 and 50.7 < s < n < 50.9
        for key, asset in item["assets"].items():
            res = 20 if key in TWENTY_M else 10
            assert asset["proj:shape"] == [SIZE * 10 // res] * 2
            assert asset["proj:transform"][0] == res
            band = asset["raster:bands"][0]
            assert band["nodata"] == 0
            if key != "scl":
                assert asset["eo:bands"][0]["name"] == S2_NAMES[key]
                assert (band["scale"], band["offset"], band["data_type"]) == (0.0001, -0.1, "uint16")
            with rasterio.open(world.root / "sentinel-2-l2a" / item["id"] / asset["href"]) as src:
                assert src.shape == tuple(asset["proj:shape"])
                assert tuple(src.transform)[:6] == tuple(asset["proj:transform"])
                assert src.crs.to_epsg() == 32631 and src.nodata == 0


def test_s1_items_carry_linear_power(world):
    items = _items(world, "sentinel-1-grd")
    assert len(items) == DATES
    for item in items:
        assert set(item["assets"]) == {"vv", "vh"}
        assert item["properties"]["constellation"] == "sentinel-1"
        assert item["properties"]["sar:polarizations"] == ["VV", "VH"]
        for key, asset in item["assets"].items():
            band = asset["raster:bands"][0]
            assert (band["data_type"], band["nodata"], band["unit"]) == ("float32", "nan", "linear power")
            with rasterio.open(world.root / "sentinel-1-grd" / item["id"] / asset["href"]) as src:
                data = src.read(1)
            assert data.dtype == np.float32 and data.shape == (SIZE, SIZE)
            assert 1e-5 < float(np.median(data)) < 1.0  # linear sigma0, not dB


def test_pre_2022_scenes_have_no_boa_offset(tmp_path):
    w = write_sample_world(tmp_path / "w2021", size=64, dates=2, seed=1, year=2021)
    for item in _items(w, "sentinel-2-l2a"):
        assert item["properties"]["s2:processing_baseline"] < "04.00"
        assert item["assets"]["red"]["raster:bands"][0]["offset"] == 0.0
        with rasterio.open(w.root / "sentinel-2-l2a" / item["id"] / item["assets"]["swir22"]["href"]) as src:
            dn = src.read(1)
        assert np.median(dn[dn > 0]) < 3000  # bare soil SWIR ~0.25, no +1000


def test_labels_are_balanced_and_sit_on_their_class(world):
    from pyproj import Transformer

    features = json.loads(world.labels.read_text())["features"]
    names = [f["properties"]["class"] for f in features]
    counts = {n: names.count(n) for n in set(names)}
    assert set(counts) == set(world.class_names.values())
    big = [n for n in counts if n not in ("road", "built-up", "water")]
    assert all(counts[n] == 30 for n in big), counts
    to_utm = Transformer.from_crs(4326, 32631, always_xy=True)
    xy = [to_utm.transform(*f["geometry"]["coordinates"]) for f in features]
    with rasterio.open(world.truth) as src:
        ids = [int(v[0]) for v in src.sample(xy)]
    by_name = {v: k for k, v in world.class_names.items()}
    assert ids == [by_name[n] for n in names]


def test_truth_map_has_colours_and_names(world):
    with rasterio.open(world.truth) as src:
        tags = src.tags()
        assert src.colormap(1)[1][:3] == (255, 211, 0)
        classes = src.read(1)
    assert tags["CLASS_1"] == "maize"
    assert json.loads(tags["AEF_CLASSES"]) == {str(k): v for k, v in world.class_names.items()}
    assert set(np.unique(classes)) == set(world.class_names)


def test_text_describes_parcels_at_their_place(world):
    features = json.loads(world.text.read_text())["features"]
    assert len(features) >= 5
    texts = [f["properties"]["text"] for f in features]
    assert all(len(t.split()) >= 3 for t in texts)
    assert any("river" in t for t in texts)
    for f in features:  # the text starts with its own class ("maize field ...", "meadow ...")
        cls, text = f["properties"]["class"], f["properties"]["text"]
        if cls in ("maize", "winter wheat", "sugar beet", "potato", "rapeseed"):
            assert re.match(rf"(small |large )?{cls} field ", text), text


def test_same_seed_same_bytes_other_seed_other_world(world, tmp_path):
    again = write_sample_world(tmp_path / "again", size=SIZE, dates=DATES, seed=3)
    assert _tree_hashes(again.root) == _tree_hashes(world.root)
    other = write_sample_world(tmp_path / "other", size=SIZE, dates=DATES, seed=4)
    assert _tree_hashes(other.root)["truth.tif"] != _tree_hashes(world.root)["truth.tif"]


def test_rewrites_a_previous_world_but_not_other_folders(tmp_path):
    target = tmp_path / "w"
    write_sample_world(target, size=64, dates=1, seed=0)
    second = write_sample_world(target, size=64, dates=2, seed=0)
    assert len(list((second.root / "sentinel-2-l2a").iterdir())) == 3  # 2 items + collection.json
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left behind
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("precious")
    with pytest.raises(InputError, match="not empty"):
        write_sample_world(keep, size=64, dates=1)
    assert (keep / "notes.txt").read_text() == "precious"
