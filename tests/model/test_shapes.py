"""Contract tests over presets, tile sizes and source combinations (timm-style)."""

import pytest
import torch

from model import EmbeddingFieldModel, SourceFrames, VideoBatch, preset
from model.synthetic import EXAMPLE_SOURCES as SOURCES
from model.synthetic import random_frames, random_video


def _check_mu(mu, b, size, dim=64):
    assert mu.shape == (b, size, size, dim)
    assert torch.isfinite(mu).all()
    torch.testing.assert_close(mu.norm(dim=-1), torch.ones(b, size, size), atol=1e-5, rtol=0)


@pytest.mark.parametrize("size", [32, 64, 128])
@pytest.mark.parametrize("frames", [
    {"s2": 3},
    {"s2": 2, "s1": 4},
    {"s2": 1, "s1": 3, "landsat": 2},
])
def test_tiny_shapes_over_sizes_and_sources(tiny_model, gen, size, frames):
    with torch.no_grad():
        mu = tiny_model(random_video(tiny_model.cfg, 2, size, frames, gen))
    _check_mu(mu, 2, size)


@pytest.mark.parametrize("size", [32, 64])
def test_small_shapes(gen, size):
    model = EmbeddingFieldModel(preset("small", SOURCES)).eval()
    with torch.no_grad():
        mu = model(random_video(model.cfg, 2, size, {"s2": 2, "landsat": 1}, gen))
    _check_mu(mu, 2, size)


def test_base_single_forward(gen):
    model = EmbeddingFieldModel(preset("base", SOURCES[:2])).eval()
    with torch.no_grad():
        mu = model(random_video(model.cfg, 1, 32, {"s2": 2}, gen))
    _check_mu(mu, 1, 32)


def test_ragged_frames_with_padding(tiny_model, gen):
    video = random_video(tiny_model.cfg, 3, 32, {"s2": 4, "s1": 2}, gen)
    video.sources["s2"].present[0, 2:] = False  # sample 0 has 2 S2 frames, sample 1 has 4
    video.sources["s1"].present[2] = False  # sample 2 has no S1 frame at all
    with torch.no_grad():
        _check_mu(tiny_model(video), 3, 32)


def test_no_nan_with_fully_masked_frames_and_missing_source(tiny_model, gen):
    video = random_video(tiny_model.cfg, 2, 32, {"s2": 3}, gen)
    video.sources["s2"].valid[:, 1] = False  # one fully masked frame
    video.sources["s2"].valid[1] = False  # sample 1: everything masked
    video.sources["s2"].values[1] = float("nan")  # and garbage under the mask
    with torch.no_grad():
        _check_mu(tiny_model(video), 2, 32)
    empty = VideoBatch({"s1": random_frames(2, 2, 0, 32, gen)}, video.period)  # zero frames
    with torch.no_grad():
        _check_mu(tiny_model(empty), 2, 32)


def test_bad_inputs_fail_clearly(tiny_model, gen):
    video = random_video(tiny_model.cfg, 1, 40, {"s2": 1}, gen)
    with pytest.raises(ValueError, match="multiple of 16"):
        tiny_model(video)
    wrong = VideoBatch({"s2": random_frames(4, 1, 1, 32, gen)}, video.period)
    with pytest.raises(ValueError, match="channels"):
        tiny_model(wrong)
    with pytest.raises(ValueError, match="unknown source"):
        tiny_model(VideoBatch({"alos": random_frames(2, 1, 1, 32, gen)}, video.period))
    with pytest.raises(ValueError, match="valid must be"):
        SourceFrames(torch.zeros(1, 2, 3, 8, 8), torch.zeros(1, 2, 8, 4, dtype=torch.bool),
                     torch.zeros(1, 2), torch.ones(1, 2, dtype=torch.bool))
