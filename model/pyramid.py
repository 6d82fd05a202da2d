"""Learnable Laplacian pyramid between the STP resolutions (L/2, L/8, L/16).

Each resampler is a depthwise (transposed) convolution whose kernel is a
fixed anti-aliasing kernel (area average down; bilinear up) plus a learned
residual initialised at zero. At initialisation the pyramid is an exact
Laplacian pyramid; training can learn better band splits from there. Fixed
and learned parts share one convolution, so a resampling costs one pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _fixed_kernel(factor: int, direction: str) -> torch.Tensor:
    """(k, k): area average (k = f) for down; bilinear (k = 2f, as FCN upsampling) for up."""
    if direction == "down":
        return torch.full((factor, factor), 1.0 / factor**2)
    centre = factor - 0.5
    f = 1.0 - (torch.arange(2 * factor, dtype=torch.float32) - centre).abs() / factor
    return f[:, None] * f[None, :]


def _phase_kernel(weight: torch.Tensor, factor: int) -> torch.Tensor:
    """(C, 1, 2f, 2f) weights of a depthwise transposed convolution (stride f, padding f/2)
    -> (C, f*f, 3, 3): for output phase (r, s), the 3x3 weights over input rows i-1..i+1 and
    columns j-1..j+1 of output pixel (f*i + r, f*j + s); taps outside the kernel are 0."""
    f = factor
    # kernel row of phase r and input row offset dy: f*(-dy) + r + f/2, index 2f (a zero) if outside
    k = torch.arange(f)[:, None] - f * torch.arange(-1, 2)[None, :] + f // 2  # (f, 3)
    k = torch.where((k >= 0) & (k < 2 * f), k, 2 * f).to(weight.device)
    padded = F.pad(weight[:, 0], (0, 1, 0, 1))  # (C, 2f+1, 2f+1), last row / column 0
    return padded[:, k[:, None, :, None], k[None, :, None, :]].reshape(weight.shape[0], f * f, 3, 3)


class Resample(nn.Module):
    """Down- or up-sampling by an even integer factor f; (N, C, H, W) -> (N, C, H/f or H*f, W/f or W*f)."""

    def __init__(self, channels: int, factor: int, direction: str) -> None:
        super().__init__()
        if direction not in ("down", "up"):
            raise ValueError(f"direction must be 'down' or 'up', got {direction!r}")
        if direction == "up" and factor % 2:
            raise ValueError("upsampling factors must be even")
        self.factor, self.direction, self.channels = factor, direction, channels
        kernel = _fixed_kernel(factor, direction)
        self.register_buffer("fixed_weight", kernel.expand(channels, 1, *kernel.shape).clone(), persistent=False)
        self.residual = nn.Parameter(torch.zeros_like(self.fixed_weight))

    def _resample(self, x: torch.Tensor, weight: torch.Tensor, groups: int) -> torch.Tensor:
        weight = weight.to(x.dtype)
        if self.direction == "down":
            return F.conv2d(x, weight, stride=self.factor, groups=groups)
        return F.conv_transpose2d(x, weight, stride=self.factor, padding=self.factor // 2, groups=groups)

    def fixed(self, x: torch.Tensor) -> torch.Tensor:
        """The operator without its learned residual."""
        return self._resample(x, self.fixed_weight, self.channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._resample(x, self.fixed_weight + self.residual, self.channels)

    def learned_minus_fixed(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """self(a) - self.fixed(b) (a, b: same shape).

        Two depthwise resamplings: oneDNN runs a depthwise (transposed) convolution
        several times faster than one grouped convolution over interleaved a, b.
        """
        return self(a).sub_(self.fixed(b))

    def add_learned_minus_fixed_(self, out: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
        """out += self(a) - self.fixed(b), in place and without autograd (upsampling only).

        out: (N, C, f*H, f*W) in channels_last memory; a, b: (N, C, H, W). The transposed
        convolution is rewritten as its f x f phases: output pixel (f*i + r, f*j + s) reads
        only inputs i-1..i+1, j-1..j+1, so one ordinary grouped 3x3 convolution over a and
        b interleaved (2 inputs, f*f outputs per channel) gives every phase at once, and
        the phases are added into out's pixels through a strided view. oneDNN runs this
        ~3x faster than two depthwise transposed convolutions and a subtraction.
        """
        n, c, h, w = a.shape
        f = self.factor
        if self.direction != "up" or not out.is_contiguous(memory_format=torch.channels_last):
            out.add_(self.learned_minus_fixed(a, b))
            return
        weight = torch.stack([_phase_kernel(self.fixed_weight + self.residual, f),
                              -_phase_kernel(self.fixed_weight, f)], dim=2)  # (C, f*f, 2, 3, 3)
        # channels a0, b0, a1, b1, ... in channels_last memory (so are the phases the conv gives)
        ab = torch.stack([a.permute(0, 2, 3, 1), b.permute(0, 2, 3, 1)], dim=-1).view(n, h, w, 2 * c)
        ab = ab.permute(0, 3, 1, 2)
        phases = F.conv2d(ab, weight.view(c * f * f, 2, 3, 3).to(ab.dtype), padding=1, groups=c)
        # phases (N, C*f*f, H, W): channel (k, r, s) of pixel (i, j) is output pixel (f*i + r, f*j + s)
        src = phases.permute(0, 2, 3, 1).view(n, h, w, c, f, f).permute(0, 1, 4, 2, 5, 3)
        out.permute(0, 2, 3, 1).view(n, h, f, w, f, c).add_(src)  # out as (N, H, f, W, f, C)


class LaplacianPyramid(nn.Module):
    """Learned down/up resamplers over a chain of factors (e.g. (4, 2): L/2 -> L/8 -> L/16)."""

    def __init__(self, channels: int, factors: tuple[int, ...]) -> None:
        super().__init__()
        self.down = nn.ModuleList(Resample(channels, f, "down") for f in factors)
        self.up = nn.ModuleList(Resample(channels, f, "up") for f in factors)

    def levels(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Coarser (Gaussian) levels [g1, g2, ...] of x = g0: g_{k+1} = down_k(g_k)."""
        out = []
        for down in self.down:
            x = down(x)
            out.append(x)
        return out

    def decompose(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """x (N, C, H, W) -> (coarser levels [g1, g2, ...], band-pass details [l0, l1, ...]).

        l_k = g_k - fixed_up_k(g_{k+1}): the part of a level that plain
        interpolation of the next level cannot explain.
        """
        levels = self.levels(x)
        finer = [x] + levels[:-1]
        details = [g - up.fixed(c) for g, c, up in zip(finer, levels, self.up)]
        return levels, details

    def reconstruct(self, coarse: torch.Tensor, details: list[torch.Tensor]) -> torch.Tensor:
        """Inverse of `decompose` through the learned upsamplers (exact at initialisation)."""
        for up, detail in zip(reversed(self.up), reversed(details)):
            coarse = up(coarse) + detail
        return coarse

    def coarse_with(self, levels: list[torch.Tensor], messages: list[torch.Tensor]) -> torch.Tensor:
        """The first coarse level of `reconstruct_with`, messages included (N, C, H/f0, W/f0)."""
        c = levels[-1] + messages[-1]
        for k in range(len(levels) - 2, -1, -1):
            c = levels[k] + messages[k] + self.up[k + 1].learned_minus_fixed(c, levels[k + 1])
        return c

    def reconstruct_with(self, x: torch.Tensor, levels: list[torch.Tensor],
                         messages: list[torch.Tensor]) -> torch.Tensor:
        """reconstruct(levels[-1] + messages[-1], details with messages[k] added to l_{k+1}),
        where (levels, details) = decompose(x); computed with a single full-resolution pass.

        This is how the coarse STP paths write into the precision path: their
        messages enter as the bands of their resolution.
        """
        return x + self.up[0].learned_minus_fixed(self.coarse_with(levels, messages), levels[0])
