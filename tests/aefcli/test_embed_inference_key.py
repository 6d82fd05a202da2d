"""A checkpoint re-saved in place with the same weights and another inference config (smooth_radius) is
never served from the process's model cache or from edge sums made for the old config, and the store's
"same arguments?" check refuses to resume a store made with the old one."""

from __future__ import annotations

import numpy as np
import pytest

from aefcli.checkpoint import load_checkpoint, save_checkpoint
from aefcli.embed import EmbedConfig, plan, run
from aefcli.embed_edges import signature
from aefcli.errors import InputError
from aefcli.io.embedding_store import open_embeddings
from aefcli.tiling import TileEdges
from embed_world import bbox_of, make_checkpoint, make_cube

SIZE, PERIOD = 64, "2024-01-01/2025-01-01"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("inference-key")
    cube = make_cube(d / "cube.zarr", size=SIZE)
    plain = make_checkpoint(d / "plain", cube)
    return d, cube, plain


def _resave(src, dst, **config):
    """dst: src's weights, statistics and bands with `config` changes (same model_hash)."""
    ck = load_checkpoint(src)
    return save_checkpoint(dst, ck.build_model(), dict(ck.model_config, **config), ck.norm, ck.bands, ck.train_args, ck.step)


def _cfg(world, ckpt, out, **kw):
    d, cube, _ = world
    return EmbedConfig(checkpoint=ckpt, out=d / out, period=PERIOD, cube=cube, bbox=bbox_of(SIZE), window=32, overlap=16,
                       chunk=32, **kw)


def test_a_config_changed_in_place_is_not_served_from_the_model_cache(world):
    d, _, plain = world
    moving = _resave(plain, d / "moving")  # a copy of the plain checkpoint
    before = open_embeddings(run(_cfg(world, moving, "before.zarr"))["store"]).values  # caches the plain model
    _resave(plain, moving, smooth_radius=3, smooth_tau=0.3, smooth_passes=2)
    assert load_checkpoint(moving).model_hash == load_checkpoint(plain).model_hash  # same weights
    after = open_embeddings(run(_cfg(world, moving, "after.zarr"))["store"]).values
    fresh = open_embeddings(run(_cfg(world, _resave(plain, d / "smoothed", smooth_radius=3, smooth_tau=0.3,
                                                    smooth_passes=2), "fresh.zarr"))["store"]).values
    assert not np.array_equal(after, before, equal_nan=True)
    np.testing.assert_array_equal(after, fresh)


def test_the_edge_sums_signature_and_the_job_see_an_inference_config_change(world):
    d, _, plain = world
    smoothed = _resave(plain, d / "smoothed-sig", smooth_radius=2)
    a, b = plan(_cfg(world, plain, "a.zarr")).job, plan(_cfg(world, smoothed, "a.zarr")).job
    assert a.model_hash == b.model_hash and a.config_hash != b.config_hash
    grid = TileEdges(SIZE, 2)
    assert signature(a, grid) != signature(b, grid)
    assert signature(a, grid) == signature(plan(_cfg(world, plain, "a.zarr")).job, grid)  # stable for the same inputs


def test_a_store_made_with_the_old_config_is_not_resumed(world):
    d, _, plain = world
    run(_cfg(world, plain, "resume.zarr", dry_run=False))
    smoothed = _resave(plain, d / "smoothed-resume", smooth_radius=3)
    with pytest.raises(InputError, match="other settings"):
        run(_cfg(world, smoothed, "resume.zarr"))
