"""2D-ALiBi: the bias itself, and tile-size extrapolation against learned absolute positions."""

import math

import pytest
import torch

from model import EmbeddingFieldModel, SourceFrames, VideoBatch, preset
from model.alibi import alibi_bias, alibi_slopes
from model.synthetic import EXAMPLE_SOURCES, random_video


def test_bias_is_minus_slope_times_euclidean_distance():
    slopes = alibi_slopes(4)
    torch.testing.assert_close(slopes, torch.tensor([2**-2, 2**-4, 2**-6, 2**-8]))
    bias = alibi_bias(3, 5, 4)
    assert bias.shape == (4, 15, 15)
    # token (row 0, col 0) -> token (row 2, col 4): distance sqrt(4 + 16)
    torch.testing.assert_close(bias[:, 0, 14], -slopes * math.sqrt(20.0))
    torch.testing.assert_close(bias[:, 7, 7], torch.zeros(4))


def _crop(video: VideoBatch, start: int, size: int) -> VideoBatch:
    cut = slice(start, start + size)
    return VideoBatch({k: SourceFrames(f.values[..., cut, cut], f.valid[..., cut, cut], f.times, f.present)
                       for k, f in video.sources.items()}, video.period)


def _centre_disagreement(model: EmbeddingFieldModel, size: int, gen: torch.Generator) -> float:
    """Squared error between the 2L run's centre and the L run on the centre crop, on the
    inner half of the crop, relative to the spread of the L run's embeddings."""
    big = random_video(model.cfg, 2, 2 * size, {"s2": 3, "s1": 2}, gen)
    lo, q = size // 2, size // 4
    with torch.no_grad():
        centre = model(big)[:, lo:lo + size, lo:lo + size]
        small = model(_crop(big, lo, size))
    err = ((centre - small) ** 2).sum(-1)[:, q:size - q, q:size - q].mean()
    spread = ((small - small.mean((1, 2), keepdim=True)) ** 2).sum(-1).mean()
    return float(err / spread)


@pytest.mark.parametrize("seed", [0, 1])
def test_alibi_extrapolates_to_twice_the_tile_far_better_than_learned_positions(seed):
    size = 64
    torch.manual_seed(seed)
    alibi = EmbeddingFieldModel(preset("tiny", EXAMPLE_SOURCES)).eval()
    torch.manual_seed(seed)
    learned = EmbeddingFieldModel(preset("tiny", EXAMPLE_SOURCES, position="learned",
                                         position_grid=size // 16)).eval()
    # a trained position table carries signal on the scale of the features (ViT's
    # 0.02 init would hide the effect at initialisation)
    torch.nn.init.normal_(learned.encoder.pos_embed, std=1.0)
    a = _centre_disagreement(alibi, size, torch.Generator().manual_seed(seed))
    b = _centre_disagreement(learned, size, torch.Generator().manual_seed(seed))
    assert a < 0.01, a
    assert a < b / 20, (a, b)
