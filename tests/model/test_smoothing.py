"""Edge-aware smoothing of the inference field (model.smoothing, ModelConfig.smooth_*)."""

import pytest
import torch
import torch.nn.functional as F

from model import EmbeddingFieldModel, ModelConfig, preset
from model.smoothing import edge_aware_smooth
from model.synthetic import EXAMPLE_SOURCES as SOURCES
from model.synthetic import random_video


def two_parcels(noise: float, gen: torch.Generator):
    """(1, 24, 24, 16) unit vectors: columns < 12 near one direction, >= 12 near an orthogonal one."""
    a, b = torch.eye(16)[0], torch.eye(16)[1]
    clean = torch.where(torch.arange(24)[None, :, None] < 12, a, b).expand(24, 24, 16)
    field = F.normalize(clean + noise * torch.randn(24, 24, 16, generator=gen), dim=-1)
    return field[None], a, b


def test_noise_is_averaged_out_within_a_parcel_but_not_across_its_border(gen):
    field, a, b = two_parcels(0.15, gen)
    out = edge_aware_smooth(field, radius=3, tau=0.3, passes=3)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(1, 24, 24))
    # inside: closer to the parcel's direction than before
    assert (out[0, :, 2:10] @ a).mean() > (field[0, :, 2:10] @ a).mean() + 0.01
    # at the border the pixels keep their own parcel (a box filter would mix them half and half)
    box = F.normalize(F.avg_pool2d(field.permute(0, 3, 1, 2), 7, 1, 3, count_include_pad=False), dim=1).permute(0, 2, 3, 1)
    assert (out[0, :, 11] @ a).mean() > 0.95 and (out[0, :, 12] @ b).mean() > 0.95
    assert (box[0, :, 11] @ a).mean() < 0.9


def test_sparse_offsets_smooth_nearly_as_the_full_neighbourhood(gen):
    field, a, _ = two_parcels(0.15, gen)
    full = edge_aware_smooth(field, radius=4, tau=0.3, passes=2)
    sparse = edge_aware_smooth(field, radius=4, tau=0.3, passes=2, step=2)
    agree = (full * sparse).sum(-1)
    assert agree.mean() > 0.98 and agree.min() > 0.95
    assert (sparse[0, :, 2:10] @ a).mean() > (field[0, :, 2:10] @ a).mean() + 0.01


def test_radius_zero_is_the_identity(gen):
    field, _, _ = two_parcels(0.3, gen)
    assert edge_aware_smooth(field, radius=0, tau=0.3, passes=3) is field


def test_the_model_smooths_only_its_inference_field():
    cfg = preset("tiny", SOURCES, smooth_radius=2)
    model = EmbeddingFieldModel(cfg).eval()
    plain = EmbeddingFieldModel(preset("tiny", SOURCES)).eval()
    plain.load_state_dict(model.state_dict())
    video = random_video(cfg, batch=3, size=16)  # 3 > inference_batch: the grouped path too
    with torch.no_grad():
        smoothed, raw = model(video), plain(video)
    torch.testing.assert_close(smoothed, edge_aware_smooth(raw, 2, cfg.smooth_tau, cfg.smooth_passes, cfg.smooth_step))
    assert not torch.allclose(smoothed, raw, atol=1e-3)
    torch.testing.assert_close(model(video), plain(video))  # with autograd: training's field, unsmoothed


def test_smooth_train_trains_the_smoothed_field_and_gradients_reach_the_encoder():
    cfg = preset("tiny", SOURCES, smooth_radius=2, smooth_train=True)
    model = EmbeddingFieldModel(cfg)
    video = random_video(cfg, batch=2, size=16)
    mu = model(video)  # with autograd
    with torch.no_grad():
        torch.testing.assert_close(mu, model(video))  # the field inference returns
    mu.sum().backward()
    grads = [p.grad for p in model.encoder.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_old_configs_load_with_smoothing_off_and_bad_values_are_refused():
    old = preset("tiny", SOURCES).to_dict()
    for key in ("smooth_radius", "smooth_tau", "smooth_passes", "smooth_step", "smooth_train"):
        del old[key]
    assert ModelConfig.from_dict(old).smooth_radius == 0 and not ModelConfig.from_dict(old).smooth_train
    for bad in (dict(smooth_radius=-1), dict(smooth_tau=0.0), dict(smooth_passes=0), dict(smooth_step=0)):
        with pytest.raises(ValueError, match="smooth"):
            preset("tiny", SOURCES, **bad)
