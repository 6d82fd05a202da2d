"""Period-conditioned summary head: encoder frames -> mu (B, L, L, 64) unit vectors.

t_s and t_e become sinusoidal timecodes and one query vector; time-axial
cross-attention with that query over each L/2 cell's frames (keys carry the
frames' timecodes, masked frames are excluded) gives one summary per cell; a
learnable upsampling kernel brings it to L; a projection to 64 dims and L2
normalisation give mu.
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
        p, tc = cfg.precision_width, cfg.timecode_dim
        self.cfg, self.heads = cfg, cfg.summary_heads
        # query from [code(t_s), code(t_e), log duration]
        self.query = nn.Sequential(nn.Linear(2 * tc + 1, p), nn.GELU(), nn.Linear(p, p))
        self.period_embed = nn.Linear(2 * tc + 1, p)
        self.norm = nn.LayerNorm(p)
        self.key_time = nn.Linear(tc, p)
        self.key, self.value = nn.Linear(p, p), nn.Linear(p, p)
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
        b, t, p, h, w = enc.features.shape
        code = self.period_code(period).to(enc.features.dtype)
        q = rearrange(self.query(code), "b (n d) -> b n d", n=self.heads)  # (B, heads, d)
        x = self.norm(rearrange(enc.features, "b t c h w -> b h w t c"))
        k = self.key(x + self.key_time(timecode(enc.times, self.cfg.timecode_dim).to(x.dtype))[:, None, None])
        v = self.value(x)
        k = torch.cat([k, self.null_key.expand(b, h, w, 1, p).to(k.dtype)], dim=3)
        v = torch.cat([v, self.null_value.expand(b, h, w, 1, p).to(v.dtype)], dim=3)
        k = rearrange(k, "b h w t (n d) -> b h w n t d", n=self.heads)
        v = rearrange(v, "b h w t (n d) -> b h w n t d", n=self.heads)
        # one query per sample: logits (B, h, w, heads, T+1)
        logits = torch.einsum("bnd,bhwntd->bhwnt", q, k) / math.sqrt(q.shape[-1])
        ok = torch.cat([rearrange(enc.key_ok, "b t h w -> b h w t"),
                        torch.ones(b, h, w, 1, dtype=torch.bool, device=k.device)], dim=-1)
        logits = logits.masked_fill(~ok[:, :, :, None, :], float("-inf"))
        attn = logits.softmax(dim=-1)
        s = rearrange(torch.einsum("bhwnt,bhwntd->bhwnd", attn, v), "b h w n d -> b h w (n d)")
        s = self.out(s) + self.period_embed(code)[:, None, None]
        s = s + self.mlp(self.mlp_norm(s))
        s = self.upsample(rearrange(s, "b h w c -> b c h w"))  # (B, P, L, L)
        mu = self.proj(self.proj_norm(rearrange(s, "b c h w -> b h w c")))
        return F.normalize(mu.float(), dim=-1)
