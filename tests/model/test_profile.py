"""Each pixel's period profile (`model.profile`) and the head's skip path that takes it."""

from dataclasses import replace

import torch

from model import EmbeddingFieldModel
from model.batch import SourceFrames, VideoBatch
from model.profile import period_profile, profile_width
from model.synthetic import random_video

DAY0 = 19358.0  # 2023-01-01


def _one_source_video(cfg, times, valid, values) -> VideoBatch:
    """One pixel column of size 2 x 2, one batch element, the first source of cfg only."""
    spec = cfg.sources[0]
    t = len(times)
    frames = SourceFrames(values=values.view(1, t, spec.channels, 2, 2), valid=valid.view(1, t, 2, 2),
                          times=torch.tensor([times], dtype=torch.float32), present=torch.ones(1, t, dtype=torch.bool))
    return VideoBatch({spec.name: frames}, torch.tensor([[DAY0, DAY0 + 360.0]]), None, None)


def test_profile_is_the_mean_valid_value_per_sub_period_with_gaps_from_the_period_mean(tiny_cfg):
    cfg = replace(tiny_cfg, profile_skip=3)  # sub-periods of 120 days
    c = cfg.sources[0].channels
    times = [DAY0 + 10, DAY0 + 50, DAY0 + 130, DAY0 + 300]  # sub-periods 0, 0, 1, 2
    values = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1).expand(4, c, 2, 2).clone()  # frame n holds n
    valid = torch.ones(4, 2, 2, dtype=torch.bool)
    valid[3, 0, 0] = False  # pixel (0, 0): sub-period 2 never seen
    valid[:, 1, 1] = False  # pixel (1, 1): never seen at all
    values[3, :, 0, 0] = float("nan")  # what an invalid pixel holds does not matter
    prof = period_profile(_one_source_video(cfg, times, valid, values), cfg)
    assert prof.shape[-1] == profile_width(cfg) and prof.shape[:3] == (1, 2, 2)
    others = prof[0, :, :, 3 * c:]  # the other sources are absent from the batch: zeros
    assert torch.count_nonzero(others) == 0
    per_sub = prof[0, :, :, : 3 * c].view(2, 2, 3, c)
    assert torch.allclose(per_sub[0, 1, :, 0], torch.tensor([0.5, 2.0, 3.0]))  # means per sub-period
    assert torch.allclose(per_sub[0, 0, :, 0], torch.tensor([0.5, 2.0, 1.0]))  # the gap: mean of 0, 1, 2
    assert torch.equal(per_sub[1, 1], torch.zeros(3, c))  # never seen: the band's mean, 0


def test_the_head_takes_the_profile_through_its_skip_path_which_is_off_by_default(tiny_cfg, gen):
    assert tiny_cfg.profile_skip == 0 and EmbeddingFieldModel(tiny_cfg).summary.profile is None
    cfg = replace(tiny_cfg, profile_skip=4)
    model = EmbeddingFieldModel(cfg)
    video = random_video(cfg, batch=1, size=32, frames=4, generator=gen)
    model.summarise(video).sum().backward()  # training: the skip's map learns
    assert model.summary.profile.weight.grad.abs().sum() > 0
    with torch.no_grad():
        mu = model.eval()(video)
        model.summary.profile.weight.zero_()
        model.summary.profile.bias.zero_()
        without = model(video)
    assert mu.shape == (1, 32, 32, cfg.embed_dim)
    assert torch.allclose(mu.norm(dim=-1), torch.ones(1, 32, 32), atol=1e-5)
    assert (mu - without).norm(dim=-1).min() > 1e-3  # every pixel's embedding takes its profile
