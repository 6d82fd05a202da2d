"""The summary head's folded attention (no per-frame keys or values) computes what the
plain formula computes: keys and values projected for every frame, then attended."""

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from model import EmbeddingFieldModel
from model.summary import SummaryHead
from model.synthetic import random_video
from model.timecode import timecode


def plain_summary(head: SummaryHead, enc, period: torch.Tensor) -> torch.Tensor:
    """The head as first written (session 2): per-frame keys and values, then attention."""
    b, t, h, w, _ = enc.features.shape
    n, d, kq = head.heads, head.query[-1].out_features // head.heads, head.queries
    code = head.period_code(period)
    qcode = code[:, None] if kq == 1 else head.sub_period_codes(period)
    q = head.query(qcode).view(b, 1, 1, 1, kq, n, d) / math.sqrt(d)
    x = head.norm(enc.features)
    code_t = timecode(enc.times, head.cfg.timecode_dim)
    key_time = head.key_time(code_t)[:, :, None, None]
    k = head.key(x) + key_time if head.value_time is not None else head.key(x + key_time)
    k = k.view(b, t, h, w, 1, n, d)
    logits = torch.cat([(k * q).sum(-1), (head.null_key.view(n, d) * q).sum(-1).expand(b, 1, h, w, kq, n)], dim=1)
    ok = torch.cat([enc.key_ok, torch.ones(b, 1, h, w, dtype=torch.bool)], dim=1)
    attn = logits.masked_fill(~ok[..., None, None], float("-inf")).softmax(dim=1)[..., None]
    v = head.value(x)
    if head.value_time is not None:
        v = v + head.value_time(code_t)[:, :, None, None]
    v = v.view(b, t, h, w, 1, n, d)
    s = ((attn[:, :t] * v).sum(1) + attn[:, t] * head.null_value.view(n, d)).flatten(-3)
    s = head.out(s) + head.period_embed(code)[:, None, None]
    s = s + head.mlp(head.mlp_norm(s))
    s = head.upsample(rearrange(s, "b h w c -> b c h w"))
    return F.normalize(head.proj(head.proj_norm(rearrange(s, "b c h w -> b h w c"))), dim=-1)


@pytest.mark.parametrize("wide, queries", [(False, 1), (True, 1), (False, 12), (True, 4)])
def test_folded_head_agrees_with_plain_attention(tiny_cfg, gen, wide, queries):
    cfg = replace(tiny_cfg, summary_width=64, summary_heads=8) if wide else tiny_cfg
    cfg = replace(cfg, summary_queries=queries)
    model = EmbeddingFieldModel(cfg).eval()
    with torch.no_grad():  # every parameter away from its initial value, as after training
        for p in model.summary.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.3)
    video = random_video(cfg, 2, 32, {"s2": 4, "s1": 3}, gen)
    video.sources["s2"].present[0, 1] = False  # a missing frame
    video.sources["s1"].valid[1, :, :8] = False  # cells where some frames saw nothing
    with torch.no_grad():
        enc = model.encoder(video)
        enc.features.mul_(3.0).add_(0.5)  # features far from LayerNorm's fixed point
        enc.key_ok[0, :, :2] = False  # cells with no valid frame at all: only the null key
        plain = plain_summary(model.summary, enc, video.period)
        folded = model.summary(enc, video.period)
    assert (plain * folded).sum(-1).min() > 0.99999
    torch.testing.assert_close(folded, plain, atol=2e-5, rtol=0)
    # with grad: the same, and every head parameter is reached
    folded = model.summary(model.encoder(video), video.period)
    folded.square().mean().backward()
    missing = [name for name, p in model.summary.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not missing


def test_sub_period_queries_tile_the_valid_period(tiny_cfg):
    head = SummaryHead(replace(tiny_cfg, summary_queries=4))
    period = torch.tensor([[100.0, 500.0], [0.0, 40.0]])
    got = head.sub_period_codes(period)
    edges = [[100, 200, 300, 400, 500], [0, 10, 20, 30, 40]]
    want = torch.stack([head.period_code(torch.tensor([[float(e[i]), float(e[i + 1])] for i in range(4)])) for e in edges])
    torch.testing.assert_close(got, want)

