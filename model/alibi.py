"""CROMA's 2D-ALiBi: attention bias -slope_h * euclidean distance between patches."""

from __future__ import annotations

import torch


def alibi_slopes(heads: int) -> torch.Tensor:
    """(heads,) geometric slopes 2^(-8/n), 2^(-16/n), ..., 2^-8 (CROMA, after ALiBi)."""
    return torch.pow(2.0, -8.0 / heads * torch.arange(1, heads + 1, dtype=torch.float32))


def alibi_bias(h: int, w: int, heads: int, device: torch.device | None = None,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(heads, h*w, h*w) additive logits bias for an h x w patch grid, row-major tokens.

    Depends only on relative positions, so a model trained on one tile size
    extrapolates to larger tiles (no learned absolute positions).
    """
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32),
                            torch.arange(w, device=device, dtype=torch.float32), indexing="ij")
    pos = torch.stack([ys.flatten(), xs.flatten()], dim=-1)  # (N, 2) patch grid units
    dist = torch.cdist(pos, pos)  # (N, N)
    slopes = alibi_slopes(heads).to(device)
    return (-slopes[:, None, None] * dist[None]).to(dtype)
