"""Edge-aware smoothing of an embedding field: neighbours alike in embedding space are averaged.

A rolling-guidance bilateral filter on unit vectors: each pass replaces a pixel by the mean of
its (2r+1)^2 neighbourhood, weighted by closeness in space (Gaussian, `space` px) and by how
alike the neighbour is under the previous pass's field (exp(-(1 - cos) / `tau`)), so a parcel
is averaged within itself and not across its border; the result is re-normalised to unit
length. Fixed (no weights), so it applies to any checkpoint and costs no training.
Measured on a real crop patch (benchmarks/README.md, session 5): per-pixel embeddings are
noisy, and plain 7 x 7 smoothing already lifts a linear probe; this keeps parcel borders.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def edge_aware_smooth(mu: torch.Tensor, radius: int, tau: float, passes: int, space: float | None = None) -> torch.Tensor:
    """mu (B, H, W, E) unit vectors -> (B, H, W, E) unit vectors, smoothed within look-alike regions.

    radius: neighbourhood half-width in pixels (0: mu unchanged); tau: cosine-distance scale
    (smaller keeps more edges); passes: rolling-guidance iterations; space: spatial Gaussian
    sigma in pixels (default radius / 1.25). Borders are replicated, so a window's edge pixels
    lean on themselves (the embed stage's overlap blending down-weights them anyway).
    """
    if radius <= 0 or passes <= 0:
        return mu
    space = radius / 1.25 if space is None else space
    b, h, w, e = mu.shape
    values = mu.permute(0, 3, 1, 2)  # (B, E, H, W)
    padded_values = F.pad(values, (radius,) * 4, mode="replicate")
    guide = values
    for _ in range(passes):
        padded_guide = F.pad(guide, (radius,) * 4, mode="replicate")
        total = torch.zeros_like(values)
        weight = values.new_zeros(b, 1, h, w)
        for dy in range(-radius, radius + 1):
            for dx in range(-radius, radius + 1):
                rows, cols = slice(radius + dy, radius + dy + h), slice(radius + dx, radius + dx + w)
                cosine = (guide * padded_guide[:, :, rows, cols]).sum(1, keepdim=True)
                wgt = torch.exp((cosine - 1.0) / tau - (dy * dy + dx * dx) / (2 * space * space))
                total.addcmul_(wgt, padded_values[:, :, rows, cols])
                weight += wgt
        guide = F.normalize(total / weight, dim=1)
    return guide.permute(0, 2, 3, 1).contiguous()
