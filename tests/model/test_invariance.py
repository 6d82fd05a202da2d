"""What the embedding may and may not depend on."""

from dataclasses import replace

import pytest
import torch

from model import EmbeddingFieldModel, SourceFrames, VideoBatch
from model.synthetic import random_frames, random_video

ATOL = 2e-5


@pytest.fixture(params=["narrow", "wide", "queries"])
def tiny_model(request, tiny_cfg):
    """The tiny model with the default summary head, a wide one (time-coded values), and one query per sub-period."""
    cfg = {"narrow": tiny_cfg, "wide": replace(tiny_cfg, summary_width=64, summary_heads=8),
           "queries": replace(tiny_cfg, summary_queries=6)}[request.param]
    return EmbeddingFieldModel(cfg).eval()


def _pad(frames: SourceFrames, extra: SourceFrames) -> SourceFrames:
    cat = lambda a, b: torch.cat([a, b], dim=1)  # noqa: E731
    return SourceFrames(cat(frames.values, extra.values), cat(frames.valid, extra.valid),
                        cat(frames.times, extra.times), cat(frames.present, extra.present))


def test_padded_and_masked_frames_do_not_change_mu(tiny_model, gen):
    video = random_video(tiny_model.cfg, 2, 32, {"s2": 3, "s1": 2}, gen)
    s2, s1 = video.sources["s2"], video.sources["s1"]
    pad = random_frames(10, 2, 2, 32, gen)  # real-looking content ...
    pad.present[:, 0] = False  # ... but padding
    pad.valid[:, 1] = False  # ... or fully masked (cloud)
    padded = VideoBatch({"s2": _pad(s2, pad), "s1": s1}, video.period)
    # a source whose frames are all padding is the same as the source being absent
    absent_l8 = random_frames(7, 2, 2, 32, gen)
    absent_l8.present[:] = False
    with_empty_source = VideoBatch({**padded.sources, "landsat": absent_l8}, video.period)
    with torch.no_grad():
        ref = tiny_model(video)
        torch.testing.assert_close(tiny_model(padded), ref, atol=ATOL, rtol=0)
        torch.testing.assert_close(tiny_model(with_empty_source), ref, atol=ATOL, rtol=0)
        # and the check can fail: the same extra frame, present and valid, changes mu
        pad.present[:] = True
        pad.valid[:] = True
        changed = tiny_model(VideoBatch({"s2": _pad(s2, pad), "s1": s1}, video.period))
    assert (changed - ref).abs().max() > 100 * ATOL


def test_values_under_the_mask_are_ignored(tiny_model, gen):
    video = random_video(tiny_model.cfg, 1, 32, {"s2": 3}, gen)
    s2 = video.sources["s2"]
    noisy = SourceFrames(torch.where(s2.valid[:, :, None], s2.values, 1e3), s2.valid, s2.times, s2.present)
    with torch.no_grad():
        torch.testing.assert_close(tiny_model(VideoBatch({"s2": noisy}, video.period)),
                                   tiny_model(video), atol=ATOL, rtol=0)


def test_changing_the_period_changes_mu(tiny_model, gen):
    video = random_video(tiny_model.cfg, 2, 32, {"s2": 3, "s1": 2}, gen)
    shifted = VideoBatch(video.sources, video.period + torch.tensor([120.0, 0.0]))
    with torch.no_grad():
        a, b = tiny_model(video), tiny_model(shifted)
    # measured against how much mu varies across the tile, not in absolute terms
    spread = ((a - a.mean((1, 2), keepdim=True)) ** 2).sum(-1).mean()
    assert ((a - b) ** 2).sum(-1).mean() > 0.1 * spread


def test_permuting_frames_with_their_times_does_not_change_mu(tiny_model, gen):
    video = random_video(tiny_model.cfg, 2, 32, {"s2": 4, "s1": 3}, gen)
    perm = torch.tensor([2, 0, 3, 1])
    s2 = video.sources["s2"]
    shuffled = SourceFrames(s2.values[:, perm], s2.valid[:, perm], s2.times[:, perm], s2.present[:, perm])
    # sources in the other order too
    permuted = VideoBatch({"s1": video.sources["s1"], "s2": shuffled}, video.period)
    # shuffling values but NOT times must matter (timecodes carry information)
    wrong = SourceFrames(s2.values[:, perm], s2.valid[:, perm], s2.times, s2.present)
    with torch.no_grad():
        ref = tiny_model(video)
        torch.testing.assert_close(tiny_model(permuted), ref, atol=ATOL, rtol=0)
        broken = tiny_model(VideoBatch({"s2": wrong, "s1": video.sources["s1"]}, video.period))
    assert (broken - ref).abs().max() > 100 * ATOL
