"""The inference path (no autograd: in-place updates, frames in cache-sized groups) computes
what the autograd path computes."""

import torch

import model.encoder as encoder
from model import EmbeddingFieldModel
from model.synthetic import random_video


def _trained_looking(cfg):
    model = EmbeddingFieldModel(cfg).eval()
    with torch.no_grad():  # non-zero learned resampling residuals, as after training
        for name, p in model.named_parameters():
            if name.endswith("residual"):
                p.normal_(std=0.1)
    return model


def test_inference_path_agrees_with_autograd_path(tiny_cfg, gen, monkeypatch):
    model = _trained_looking(tiny_cfg)
    video = random_video(tiny_cfg, 2, 64, {"s2": 3, "s1": 2}, gen)
    inputs = {k: f.values.clone() for k, f in video.sources.items()}
    reference = model(video)  # autograd path: whole-batch, out of place
    assert reference.requires_grad
    # groups of 2 frames (a frame is 16 KiB at L=64): several groups, one ragged
    frame_bytes = tiny_cfg.precision_width * 32 * 32 * 4
    monkeypatch.setattr(encoder, "CHUNK_BYTES", 2 * frame_bytes)
    with torch.inference_mode():
        fast = model(video)
    cos = (reference.detach() * fast).sum(-1)
    assert cos.min() > 0.99999
    torch.testing.assert_close(fast, reference.detach(), atol=1e-5, rtol=0)
    for name, frames in video.sources.items():  # in-place work never touches the caller's tensors
        assert torch.equal(frames.values, inputs[name])


def test_group_size_does_not_change_the_output(tiny_cfg, gen, monkeypatch):
    model = _trained_looking(tiny_cfg)
    video = random_video(tiny_cfg, 1, 32, 5, gen)
    outs = []
    for size in (1, 3 * 16 * 16 * tiny_cfg.precision_width * 4, 1 << 40):  # 1 frame, 3 frames, all
        monkeypatch.setattr(encoder, "CHUNK_BYTES", size)
        with torch.no_grad():
            outs.append(model(video))
    torch.testing.assert_close(outs[0], outs[2], atol=1e-5, rtol=0)
    torch.testing.assert_close(outs[1], outs[2], atol=1e-5, rtol=0)


def test_big_batches_run_in_groups_with_the_same_result(tiny_cfg, gen):
    model = _trained_looking(tiny_cfg)
    video = random_video(tiny_cfg, 5, 32, {"s2": 3, "s1": 2}, gen)
    with torch.no_grad():
        model.inference_batch = 5
        whole = model(video)
        model.inference_batch = 2  # groups of 2, 2, 1
        seen = []
        model.encoder.register_forward_hook(lambda mod, args, out: seen.append(out.features.shape[0]))
        grouped = model(video)
    assert seen == [2, 2, 1]
    torch.testing.assert_close(grouped, whole, atol=1e-5, rtol=0)
    assert grouped.shape == (5, 32, 32, tiny_cfg.embed_dim)
