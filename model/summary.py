"""Period-conditioned summary head: encoder frames -> mu (B, L, L, 64) unit vectors.

t_s and t_e become sinusoidal timecodes and one query vector; time-axial
cross-attention with that query over each L/2 cell's frames (keys carry the
frames' timecodes, masked frames are excluded) gives one summary per cell; a
learnable upsampling kernel brings it to L; a projection to 64 dims and L2
normalisation give mu. With `summary_width` > 0 the head works at that width
(more heads = more distinct frame selections per cell) and its values also
carry the frames' timecodes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from model.config import ModelConfig
from model.encoder import Encoded
from model.layers import MLP
from model.timecode import timecode


def _bilinear_kernel(channels: int) -> torch.Tensor:
    """(C, 1, 4, 4) depthwise transposed-conv weights that upsample x2 bilinearly."""
    f = torch.tensor([0.25, 0.75, 0.75, 0.25])
    return (f[:, None] * f[None, :]).expand(channels, 1, 4, 4).clone()


class SummaryHead(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        f, tc = cfg.precision_width, cfg.timecode_dim
        p = cfg.summary_width or f
        self.cfg, self.heads = cfg, cfg.summary_heads
        # query from [code(t_s), code(t_e), log duration]
        self.query = nn.Sequential(nn.Linear(2 * tc + 1, p), nn.GELU(), nn.Linear(p, p))
        self.period_embed = nn.Linear(2 * tc + 1, p)
        # small at init: the content summary, not the period alone, should shape mu at first
        nn.init.normal_(self.period_embed.weight, std=0.02)
        nn.init.zeros_(self.period_embed.bias)
        self.norm = nn.LayerNorm(f)
        self.key_time = nn.Linear(tc, p)
        # the wide head's values say when a frame was seen, not only what it held
        self.value_time = nn.Linear(tc, p) if cfg.summary_width else None
        self.key, self.value = nn.Linear(f, p), nn.Linear(f, p)
        # a learned "nothing observed" key/value: keeps cells without valid frames finite
        self.null_key = nn.Parameter(torch.randn(p) * 0.02)
        self.null_value = nn.Parameter(torch.randn(p) * 0.02)
        self.out = nn.Linear(p, p)
        self.mlp_norm = nn.LayerNorm(p)
        self.mlp = MLP(p, cfg.mlp_ratio)
        self.upsample = nn.ConvTranspose2d(p, p, 4, stride=2, padding=1, groups=p, bias=False)
        with torch.no_grad():
            self.upsample.weight.copy_(_bilinear_kernel(p))
        self.proj_norm = nn.LayerNorm(p)
        self.proj = nn.Sequential(nn.Linear(p, p), nn.GELU(), nn.Linear(p, cfg.embed_dim))

    def period_code(self, period: torch.Tensor) -> torch.Tensor:
        """(B, 2) days [t_s, t_e) -> (B, 2*tc + 1)."""
        tc = timecode(period, self.cfg.timecode_dim)  # (B, 2, tc)
        duration = (period[:, 1] - period[:, 0]).clamp(min=1.0).log()[:, None] / math.log(3650.0)
        return torch.cat([tc.flatten(1), duration.float()], dim=-1)

    def forward(self, enc: Encoded, period: torch.Tensor) -> torch.Tensor:
        """-> mu (B, L, L, embed_dim), unit norm."""
        b, t, h, w, _ = enc.features.shape
        n, d = self.heads, self.query[-1].out_features // self.heads
        code = self.period_code(period).to(enc.features.dtype)
        q = self.query(code).view(b, 1, 1, 1, n, d) / math.sqrt(d)
        x = self.norm(enc.features)  # (B, T, h, w, P)
        code_t = timecode(enc.times, self.cfg.timecode_dim).to(x.dtype)
        key_time = self.key_time(code_t)[:, :, None, None]
        k = self.key(x) + key_time if self.value_time is not None else self.key(x + key_time)
        k = k.view(b, t, h, w, n, d)
        # one query per sample: logits (B, T+1, h, w, heads), the last is the null key
        logits = torch.cat([(k * q).sum(-1),
                            (self.null_key.view(n, d).to(q.dtype) * q).sum(-1).expand(b, 1, h, w, n)], dim=1)
        ok = torch.cat([enc.key_ok, torch.ones(b, 1, h, w, dtype=torch.bool, device=x.device)], dim=1)
        attn = logits.masked_fill(~ok[..., None], float("-inf")).softmax(dim=1)[..., None]
        v = self.value(x)
        if self.value_time is not None:
            v = v + self.value_time(code_t)[:, :, None, None]
        v = v.view(b, t, h, w, n, d)
        s = (attn[:, :t] * v).sum(1) + attn[:, t] * self.null_value.view(n, d).to(v.dtype)
        s = s.flatten(-2)  # (B, h, w, P)
        s = self.out(s) + self.period_embed(code)[:, None, None]
        s = s + self.mlp(self.mlp_norm(s))
        s = self.upsample(rearrange(s, "b h w c -> b c h w"))  # (B, P, L, L)
        mu = self.proj(self.proj_norm(rearrange(s, "b c h w -> b h w c")))
        return F.normalize(mu.float(), dim=-1)
