"""Edge-aware smoothing of an embedding field: neighbours alike in embedding space are averaged.

A rolling-guidance bilateral filter on unit vectors: each pass replaces a pixel by the mean of
its neighbourhood (offsets -radius..radius every `step` px), weighted by closeness in space
(Gaussian, `space` px) and by how alike the neighbour is under the previous pass's field
(exp(-(1 - cos) / tau)), so a parcel is averaged within itself and not across its border; the
result is re-normalised to unit length. Fixed (no weights), so it applies to any checkpoint
and costs no training. Measured on a real crop patch (benchmarks/README.md, session 5): the
per-pixel field of a CPU-trained model is noisy, and this lifts a linear probe at every shot.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def edge_aware_smooth(mu: torch.Tensor, radius: int, tau: float, passes: int, step: int = 1,
                      space: float | None = None) -> torch.Tensor:
    """mu (B, H, W, E) unit vectors -> (B, H, W, E) unit vectors, smoothed within look-alike regions.

    radius: neighbourhood half-width in pixels (0: mu itself); tau: cosine-distance scale
    (smaller keeps more edges); passes: rolling-guidance iterations; step: sample every
    step-th offset (2: a quarter of the work; the spatial weights stay smooth); space: spatial
    Gaussian sigma in pixels (default radius / 1.25). Borders are replicated, so a window's
    edge pixels lean on themselves (the embed stage's overlap blending down-weights them).
    """
    if radius <= 0 or passes <= 0:
        return mu
    space = radius / 1.25 if space is None else space
    b, h, w, _ = mu.shape
    offsets = [(dy, dx) for dy in range(-radius, radius + 1, step) for dx in range(-radius, radius + 1, step)]
    if (0, 0) not in offsets:
        offsets.append((0, 0))

    def padded(x: torch.Tensor) -> torch.Tensor:  # (B, H + 2r, W + 2r, E), contiguous along E
        return F.pad(x.permute(0, 3, 1, 2), (radius,) * 4, mode="replicate").permute(0, 2, 3, 1).contiguous()

    values, guide = padded(mu), mu
    for _ in range(passes):
        around = padded(guide)
        total = torch.zeros_like(mu)
        weight = mu.new_zeros(b, h, w, 1)
        for dy, dx in offsets:
            rows, cols = slice(radius + dy, radius + dy + h), slice(radius + dx, radius + dx + w)
            cosine = torch.linalg.vecdot(guide, around[:, rows, cols]).unsqueeze(-1)
            wgt = torch.exp((cosine - 1.0) / tau - (dy * dy + dx * dx) / (2 * space * space))
            total.addcmul_(wgt, values[:, rows, cols])
            weight += wgt
        guide = F.normalize(total / weight, dim=-1)
    return guide
