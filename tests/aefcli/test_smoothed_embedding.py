"""`aef embed` of a checkpoint whose config smooths its inference field (ModelConfig.smooth_*):
still seam-free across windows and chunks, and recorded in the store."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from aefcli.checkpoint import load_checkpoint, save_checkpoint
from aefcli.embed import EmbedConfig, run
from aefcli.io.embedding_store import open_embeddings
from aefcli.tiling import Layout
from embed_world import bbox_of, make_checkpoint, make_cube
from test_embed import PERIOD, SIZE, _seam_gap


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("smoothed")
    cube = make_cube(d / "cube.zarr", size=SIZE)
    plain = make_checkpoint(d / "plain", cube)
    ck = load_checkpoint(plain)
    cfg = dict(ck.model_config, smooth_radius=3, smooth_tau=0.3, smooth_passes=2)
    smoothed = save_checkpoint(d / "smoothed", ck.build_model(), cfg, ck.norm, ck.bands, ck.train_args, ck.step)
    return d, cube, plain, smoothed


def _embed(world, ckpt, name):
    d, cube = world[:2]
    out = d / name
    shutil.rmtree(out, ignore_errors=True)
    result = run(EmbedConfig(checkpoint=ckpt, out=out, period=PERIOD, cube=cube, bbox=bbox_of(SIZE),
                             window=32, overlap=16, chunk=32))
    assert result["complete"]
    return out


def test_a_smoothed_field_has_no_seams_and_is_smoother_than_the_plain_one(world):
    smoothed = open_embeddings(_embed(world, world[3], "smoothed.zarr")).values
    plain = open_embeddings(_embed(world, world[2], "plain.zarr")).values
    np.testing.assert_allclose(np.linalg.norm(smoothed, axis=-1), 1.0, atol=1e-5)
    origin = (-563000, 50000)  # the cube's top-left in absolute 10 m pixels (as test_embed)
    gap = _seam_gap(smoothed, Layout(32, 16, 32, origin=origin))
    assert abs(gap) < 0.01, f"smoothed windows show a seam: inside - across = {gap:.4f}"

    def neighbour_cosine(e):
        return float(np.nanmean((e[:-1] * e[1:]).sum(-1)))

    assert neighbour_cosine(smoothed) > neighbour_cosine(plain)


def test_the_store_records_the_smoothing(world):
    import zarr

    attrs = zarr.open_group(_embed(world, world[3], "attrs.zarr"), mode="r").attrs["aef:embedding"]
    assert attrs["model"]["config"]["smooth_radius"] == 3
