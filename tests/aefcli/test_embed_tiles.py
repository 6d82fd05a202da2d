"""`aef embed --tile ID` (one global tile per store, margin read beyond its edge) and `--stac` on the fly."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from aefcli.embed import EmbedConfig, run
from aefcli.io.embedding_store import open_embeddings
from embed_world import make_checkpoint, make_cube

PERIOD = "2024-01-01/2025-01-01"
# 640 m tiles (64 px): the cube covers two neighbouring tiles plus a 32 px margin round them
ORIGIN = (500480.0 - 320, 5629440.0 + 640 + 320)
LEFT, RIGHT = "32631_E500480_N5629440_S640", "32631_E501120_N5629440_S640"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("tworld")
    cube = make_cube(d / "cube.zarr", size=192, origin=ORIGIN)
    return d, cube, make_checkpoint(d / "run", cube)


def _cfg(world, out, **kw):
    d, cube, ckpt = world
    base = dict(checkpoint=ckpt, out=out, period=PERIOD, cube=cube, window=32, overlap=8, chunk=32)
    return EmbedConfig(**{**base, **kw})


def test_neighbouring_tiles_match_one_store_without_a_seam(world):
    d = world[0]
    shutil.rmtree(d / "tiles", ignore_errors=True)
    for tid in (LEFT, RIGHT):
        r = run(_cfg(world, d / "tiles", tile_id=tid))
        assert r["complete"] and r["store"].endswith(f"{tid}.zarr")
    left = open_embeddings(d / "tiles" / f"{LEFT}.zarr")
    right = open_embeddings(d / "tiles" / f"{RIGHT}.zarr")
    assert left.shape == (64, 64, 64) and float(right.x[0]) - float(left.x[-1]) == 10.0
    # one store over both tiles (the cube's pixels 32..96 x 32..160)
    from pyproj import Transformer

    tr = Transformer.from_crs(32631, 4326, always_xy=True)
    (w, e), (s, n) = tr.transform([500480 + 1, 501760 - 1], [5629440 + 1, 5630080 - 1])
    one = run(_cfg(world, d / "one.zarr", bbox=f"{w},{s},{e},{n}", overwrite=True))
    both = open_embeddings(one["store"]).values
    assert both.shape == (64, 128, 64)
    joined = np.concatenate([left.values, right.values], axis=1)
    np.testing.assert_allclose(joined, both, atol=1e-5)  # same windows reach every pixel
    edge = (joined[:, 63] * joined[:, 64]).sum(-1).mean()
    inside = (joined[:, :-1] * joined[:, 1:]).sum(-1).mean()
    assert abs(inside - edge) < 0.01
    again = run(_cfg(world, d / "tiles", tile_id=LEFT))  # a finished tile is a no-op
    assert again["tiles_done"] == 0 and again["complete"]


def test_stac_ingests_on_the_fly(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from fault_server import bbox_of, make_catalog

    catalog = make_catalog(tmp_path / "cat", ["a", "b", "c"])
    ckpt = make_checkpoint(tmp_path / "run", None)
    cfg = EmbedConfig(checkpoint=ckpt, out=tmp_path / "emb.zarr", period="2024-05-01/2024-06-01", stac=str(catalog),
                      collections=("s2",), bbox=bbox_of(32), window=16, overlap=4, chunk=16)
    result = run(cfg)
    assert result["complete"], result
    assert (tmp_path / "emb.cube.zarr").is_dir(), sorted(p.name for p in tmp_path.iterdir())
    emb = open_embeddings(result["store"])
    ok = np.isfinite(emb.values)
    assert min(emb.shape[:2]) >= 16 and (ok.all(-1) | ~ok.any(-1)).all()
    # the catalog's permanent cloud square (top-left 8 x 8 px) has no observation: nodata there only
    assert 0.7 < ok.all(-1).mean() < 1.0 and not ok[0, 0].any()
    assert emb.attrs["aef:embedding"]["source_items"]["s2"]
