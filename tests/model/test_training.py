"""Gradients and objectives."""

import pytest
import torch

from model import EmbeddingFieldModel, SourceFrames, TrainBatch, preset, training_losses
from model.losses import uniformity_loss
from model.synthetic import EXAMPLE_SOURCES, random_train_batch


def test_every_parameter_gets_a_gradient_from_the_total_loss(tiny_model, gen):
    model = tiny_model.train()
    terms = training_losses(model, random_train_batch(model.cfg, 2, 32, 3, generator=gen))
    assert terms.text > 0 and terms.reconstruction > 0
    terms.total.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_radar_optical_option_adds_a_term(gen):
    cfg = preset("tiny", EXAMPLE_SOURCES, radar_optical_weight=0.1)
    model = EmbeddingFieldModel(cfg)
    batch = random_train_batch(cfg, 3, 32, 2, generator=gen)
    terms = training_losses(model, batch)
    assert terms.radar_optical is not None and terms.radar_optical > 0
    base = cfg.a * terms.reconstruction + cfg.b * terms.uniformity \
        + cfg.c * terms.consistency + cfg.d * terms.text
    torch.testing.assert_close(terms.total, base + 0.1 * terms.radar_optical)


def test_text_term_is_zero_without_text(tiny_model, gen):
    batch = random_train_batch(tiny_model.cfg, 2, 32, 2, generator=gen, text=False)
    assert float(training_losses(tiny_model, batch).text) == 0.0


def test_reconstruction_ignores_invalid_target_pixels(tiny_model, gen):
    batch = random_train_batch(tiny_model.cfg, 2, 32, 2, generator=gen)
    torch.manual_seed(5)
    ref = training_losses(tiny_model, batch).reconstruction
    garbage = {k: SourceFrames(torch.where(f.valid[:, :, None], f.values, 1e4), f.valid, f.times, f.present)
               for k, f in batch.targets.items()}
    torch.manual_seed(5)  # same vMF sample
    again = training_losses(tiny_model, TrainBatch(batch.teacher, batch.student, garbage)).reconstruction
    torch.testing.assert_close(again, ref)


def test_uniformity_of_a_single_sample_pairs_distinct_pixels():
    mu = torch.nn.functional.normalize(torch.randn(1, 16, 16, 64), dim=-1)
    assert abs(float(uniformity_loss(mu))) < 0.1  # not the trivial self-pairing (= 1)


WEIGHTS = {"reconstruction": "a", "uniformity": "b", "consistency": "c", "text": "d"}


@pytest.mark.parametrize("term", list(WEIGHTS))
def test_each_loss_decreases_when_optimised_alone(term, gen):
    torch.manual_seed(0)
    # the other terms' weights at 0: they are then not even computed
    cfg = preset("tiny", EXAMPLE_SOURCES, **{w: (1.0 if t == term else 0.0) for t, w in WEIGHTS.items()})
    model = EmbeddingFieldModel(cfg).train()
    batch = random_train_batch(cfg, 3, 32, 2, generator=gen)
    # held-out frames that depend on the video (not pure noise, which has nothing to learn)
    batch.targets = {k: SourceFrames(1.0 + 0.5 * batch.teacher.sources[k].values[:, :1], f.valid, f.times,
                                     f.present) for k, f in batch.targets.items()}
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    values = []
    for _ in range(6):
        loss = getattr(training_losses(model, batch), term)
        values.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert values[-1] < 0.9 * values[0], values


def test_source_weights_make_a_weighted_mean_of_the_per_source_losses(gen):
    from dataclasses import replace

    from model.losses import reconstruction_loss

    sources = tuple(replace(s, weight=0.25) if s.name == "s1" else s for s in EXAMPLE_SOURCES)
    model = EmbeddingFieldModel(preset("tiny", sources))
    batch = random_train_batch(model.cfg, generator=gen, targets=2)
    assert {"s1", "s2"} <= set(batch.targets)
    with torch.no_grad():
        z = model.sample(model(batch.teacher))
        per = {s: reconstruction_loss(model, z, {s: batch.targets[s]}) for s in batch.targets}
        both = reconstruction_loss(model, z, batch.targets)
    w = {s.name: s.weight for s in sources}
    expected = sum(w[s] * per[s] for s in per) / sum(w[s] for s in per)
    torch.testing.assert_close(both, expected)
    assert abs(both - sum(per.values()) / len(per)) > 1e-4  # differs from the plain mean


def test_view_contrast_finds_each_pixels_other_view_among_the_batch():
    from model.losses import view_contrast_loss

    torch.manual_seed(0)
    teacher = torch.nn.functional.normalize(torch.randn(2, 32, 32, 64), dim=-1)
    student = torch.nn.functional.normalize(teacher + 0.1 * torch.randn_like(teacher), dim=-1)
    same = view_contrast_loss(student, teacher, 0.1, 8, 0)
    swapped = view_contrast_loss(student.flip(0), teacher, 0.1, 8, 0)  # each pixel paired with another window's
    assert float(same) < 0.05 and float(swapped) > 3.0  # log(32 sampled pixels) = 3.47
    flat = view_contrast_loss(torch.ones_like(teacher) / 8, torch.ones_like(teacher) / 8, 0.1, 8, 0)
    assert float(flat) > 3.0  # one vector everywhere cannot tell places apart
    # a positive moved by up to 3 px: a field constant over 8 x 8 px blocks loses little, noise loses all
    blocks = teacher[:, ::8, ::8].repeat_interleave(8, 1).repeat_interleave(8, 2)
    assert float(view_contrast_loss(blocks, blocks, 0.1, 8, 3)) < float(view_contrast_loss(teacher, teacher, 0.1, 8, 3)) - 1.0


def test_contrast_weight_adds_the_view_contrast_term(gen):
    cfg = preset("tiny", EXAMPLE_SOURCES, contrast=0.5)
    model = EmbeddingFieldModel(cfg).train()
    terms = training_losses(model, random_train_batch(cfg, 2, 32, 2, generator=gen))
    assert terms.contrast is not None and terms.contrast > 0
    base = cfg.a * terms.reconstruction + cfg.b * terms.uniformity + cfg.c * terms.consistency + cfg.d * terms.text
    torch.testing.assert_close(terms.total, base + 0.5 * terms.contrast)
    assert training_losses(EmbeddingFieldModel(preset("tiny", EXAMPLE_SOURCES)), random_train_batch(
        cfg, 2, 32, 2, generator=gen)).contrast is None  # off by default
    with pytest.raises(ValueError, match="contrast_tau"):
        preset("tiny", EXAMPLE_SOURCES, contrast_tau=0.0)
