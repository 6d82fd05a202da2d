"""Learnable Laplacian pyramid between the STP resolutions (L/2, L/8, L/16).

Each resampler is a fixed anti-aliased operator (area average down, bilinear
up) plus a learned depthwise residual initialised at zero, so at
initialisation the pyramid is an exact Laplacian pyramid and training can
learn better band splits from there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Resample(nn.Module):
    """Down- or up-sampling by an integer factor; (N, C, H, W) -> (N, C, H/f or H*f, ...)."""

    def __init__(self, channels: int, factor: int, direction: str) -> None:
        super().__init__()
        if direction not in ("down", "up"):
            raise ValueError(f"direction must be 'down' or 'up', got {direction!r}")
        self.factor, self.direction = factor, direction
        conv = nn.Conv2d if direction == "down" else nn.ConvTranspose2d
        self.residual = conv(channels, channels, factor, stride=factor, groups=channels, bias=False)
        nn.init.zeros_(self.residual.weight)

    def fixed(self, x: torch.Tensor) -> torch.Tensor:
        """The operator without its learned residual."""
        if self.direction == "down":
            return F.avg_pool2d(x, self.factor)
        return F.interpolate(x, scale_factor=self.factor, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fixed(x) + self.residual(x)


class LaplacianPyramid(nn.Module):
    """Learned down/up resamplers over a chain of factors (e.g. (4, 2): L/2 -> L/8 -> L/16)."""

    def __init__(self, channels: int, factors: tuple[int, ...]) -> None:
        super().__init__()
        self.down = nn.ModuleList(Resample(channels, f, "down") for f in factors)
        self.up = nn.ModuleList(Resample(channels, f, "up") for f in factors)

    def decompose(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """x (N, C, H, W) -> (coarser levels [g1, g2, ...], band-pass details [l0, l1, ...]).

        g_{k+1} = down_k(g_k) with g0 = x; l_k = g_k - fixed_up_k(g_{k+1}): the part
        of a level that plain interpolation of the next level cannot explain.
        """
        levels, details = [], []
        for down, up in zip(self.down, self.up):
            coarse = down(x)
            levels.append(coarse)
            details.append(x - up.fixed(coarse))
            x = coarse
        return levels, details

    def reconstruct(self, coarse: torch.Tensor, details: list[torch.Tensor]) -> torch.Tensor:
        """Inverse of `decompose` through the learned upsamplers (exact at initialisation)."""
        for up, detail in zip(reversed(self.up), reversed(details)):
            coarse = up(coarse) + detail
        return coarse
