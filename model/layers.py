"""Building blocks shared by the STP paths: norms, MLP, multi-head self-attention."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over channels of (N, C, H, W); per pixel, so it keeps translation equivariance."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = rearrange(x, "n c h w -> n h w c")
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return rearrange(x, "n h w c -> n c h w")


class MLP(nn.Module):
    """(..., D) -> (..., D): Linear, GELU, Linear."""

    def __init__(self, dim: int, ratio: float) -> None:
        super().__init__()
        hidden = max(1, int(dim * ratio))
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SelfAttention(nn.Module):
    """Multi-head self-attention on (..., S, D) token sets through scaled_dot_product_attention.

    `mask` is either a bool (..., 1, S, S) "may attend" mask or an additive float
    bias broadcastable to (..., heads, S, S) (the 2D-ALiBi bias).
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        lead, (s, dim) = x.shape[:-2], x.shape[-2:]
        # the fused CPU kernel takes 4-D inputs only (5-D falls back to the slow math path)
        q, k, v = rearrange(self.qkv(x.reshape(-1, s, dim)), "n s (three h d) -> three n h s d",
                            three=3, h=self.heads)
        if mask is not None:
            mask = mask.reshape(-1, *mask.shape[-3:]) if mask.dim() > 4 else mask
            if mask.dtype != torch.bool:
                mask = mask.to(q.dtype)  # autocast may run q in bf16
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(rearrange(out, "n h s d -> n s (h d)")).view(*lead, s, dim)


class TransformerLayer(nn.Module):
    """Pre-norm transformer layer on (..., S, D); `cond` (broadcastable) is added to the attention input."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.mlp = MLP(dim, mlp_ratio)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                cond: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm1(x)
        if cond is not None:
            h = h + cond
        x = x + self.attn(h, mask)
        return x + self.mlp(self.norm2(x))


class ConvLayer(nn.Module):
    """Residual 3x3 conv block on (N, C, H, W): LayerNorm2d, conv, GELU, conv."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = LayerNorm2d(dim)
        self.conv1 = nn.Conv2d(dim, dim, 3, padding=1)
        self.conv2 = nn.Conv2d(dim, dim, 3, padding=1)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """The residual branch alone: conv2(GELU(conv1(norm(x))))."""
        h = self.conv1(self.norm(x))
        # without autograd nothing keeps conv1's output, so GELU may overwrite it
        h = F.gelu(h) if torch.is_grad_enabled() else torch.ops.aten.gelu_(h)
        return self.conv2(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)
