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
from model.profile import profile_width
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
        # K > 1: one query per K-th of the valid period, their summaries side by side
        self.queries = cfg.summary_queries
        self.out = nn.Linear(p * self.queries, p)
        self.mlp_norm = nn.LayerNorm(p)
        self.mlp = MLP(p, cfg.mlp_ratio)
        self.upsample = nn.ConvTranspose2d(p, p, 4, stride=2, padding=1, groups=p, bias=False)
        with torch.no_grad():
            self.upsample.weight.copy_(_bilinear_kernel(p))
        # each pixel's own period profile (`model.profile`), mapped into the upsampled summary
        self.profile = nn.Linear(profile_width(cfg), p) if cfg.profile_skip else None
        self.proj_norm = nn.LayerNorm(p)
        self.proj = nn.Sequential(nn.Linear(p, p), nn.GELU(), nn.Linear(p, cfg.embed_dim))

    def sub_period_codes(self, period: torch.Tensor) -> torch.Tensor:
        """(B, 2) days -> (B, K, 2*tc + 1): the codes of the K equal sub-periods of [t_s, t_e)."""
        k = self.queries
        frac = torch.arange(k + 1, device=period.device, dtype=period.dtype) / k
        edges = period[:, :1] + (period[:, 1:] - period[:, :1]) * frac  # (B, K+1)
        subs = torch.stack([edges[:, :-1], edges[:, 1:]], dim=-1)  # (B, K, 2)
        return self.period_code(subs.reshape(-1, 2)).view(period.shape[0], k, -1)

    def period_code(self, period: torch.Tensor) -> torch.Tensor:
        """(B, 2) days [t_s, t_e) -> (B, 2*tc + 1)."""
        tc = timecode(period, self.cfg.timecode_dim)  # (B, 2, tc)
        duration = (period[:, 1] - period[:, 0]).clamp(min=1.0).log()[:, None] / math.log(3650.0)
        return torch.cat([tc.flatten(1), duration.float()], dim=-1)

    def forward(self, enc: Encoded, period: torch.Tensor, profile: torch.Tensor | None = None) -> torch.Tensor:
        """-> mu (B, L, L, embed_dim), unit norm. profile: (B, L, L, profile_width) when
        cfg.profile_skip (`model.profile.period_profile`), else None.

        Each query is folded into the key and value projections, so no per-frame key
        or value is ever made: q . (W_k x + k0) = (W_k^T q) . x + q . k0, and
        sum_t a_t (W_v x_t + b_v) = W_v (sum_t a_t x_t) + (1 - a_null) b_v (the weights of
        the real frames and the null key sum to 1). The arithmetic per cell and frame drops
        from two P x P projections to 2 x queries x heads x P multiply-adds.
        """
        b, t, h, w, f = enc.features.shape
        n, d, kq = self.heads, self.query[-1].out_features // self.heads, self.queries
        code = self.period_code(period).to(enc.features.dtype)
        qcode = code[:, None] if kq == 1 else self.sub_period_codes(period).to(code.dtype)
        q = self.query(qcode).view(b, kq, n, d) / math.sqrt(d)
        code_t = timecode(enc.times, self.cfg.timecode_dim).to(q.dtype)
        key_time = self.key_time(code_t)  # (B, T, P)
        # the part of every key that does not depend on the pixel: bias and timecode
        k0 = self.key.bias + (key_time if self.value_time is not None else F.linear(key_time, self.key.weight))
        offset = torch.einsum("btnd,bknd->btkn", k0.view(b, t, n, d), q).reshape(b, t, kq * n)
        qk = torch.einsum("ndf,bknd->bfkn", self.key.weight.view(n, d, f).to(q.dtype), q).reshape(b, f, kq * n)
        # each cell's frames side by side (one copy, which the pooling matmul needs anyway)
        x = self.norm(enc.features.permute(0, 2, 3, 1, 4)).view(b, h * w, t, f)  # (B, hw, T, P)
        logits = (x.view(b, h * w * t, f) @ qk.to(x.dtype)).view(b, h * w, t, kq * n) + offset[:, None]
        ok = rearrange(enc.key_ok, "b t h w -> b (h w) t 1")
        null = (self.null_key.view(n, d).to(q.dtype) * q).sum(-1).reshape(b, kq * n)  # the null key's logits
        logits = torch.cat([logits.masked_fill(~ok, float("-inf")), null[:, None, None].expand(b, h * w, 1, kq * n)], 2)
        attn = logits.softmax(dim=2)  # (B, hw, T+1, K*heads), the last is the null key
        a, a_null = attn[:, :, :t], attn[:, :, t].view(b, h * w, kq, n, 1)
        pooled = (a.transpose(-1, -2).to(x.dtype) @ x).view(b, h * w, kq, n, f)  # each query-head's mean frame
        s = torch.einsum("blknf,ndf->blknd", pooled, self.value.weight.view(n, d, f).to(pooled.dtype))
        s = s + (1 - a_null) * self.value.bias.view(n, d) + a_null * self.null_value.view(n, d)
        if self.value_time is not None:
            s = s + torch.einsum("bltkn,btnd->blknd", a.view(b, h * w, t, kq, n),
                                 self.value_time(code_t).view(b, t, n, d).to(a.dtype))
        s = s.reshape(b, h, w, kq * n * d)  # (B, h, w, K*P)
        s = self.out(s) + self.period_embed(code)[:, None, None]
        s = s + self.mlp(self.mlp_norm(s))
        s = rearrange(self.upsample(rearrange(s, "b h w c -> b c h w")), "b c h w -> b h w c")  # (B, L, L, P)
        if self.profile is not None:
            s = s + self.profile(profile.to(s.dtype))
        mu = self.proj(self.proj_norm(s))
        return F.normalize(mu.float(), dim=-1)
