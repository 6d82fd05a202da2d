"""Sinusoidal timecodes for timestamps in days since 1970-01-01."""

from __future__ import annotations

import math

import torch

MIN_PERIOD_DAYS = 4.0
MAX_PERIOD_DAYS = 16 * 365.25


def timecode(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sin/cos features of times `t` (..., days) -> (..., dim) float32.

    Periods are geometric from 4 days to 16 years, so the code resolves
    revisits, seasons (the year lies in the range) and multi-year trends.
    Angles are computed in float64: t ~ 2e4 days loses the short periods in float32.
    """
    n = dim // 2
    periods = torch.logspace(math.log10(MIN_PERIOD_DAYS), math.log10(MAX_PERIOD_DAYS), n,
                             dtype=torch.float64, device=t.device)
    angle = t.to(torch.float64)[..., None] * (2 * math.pi / periods)
    return torch.cat([angle.sin(), angle.cos()], dim=-1).to(torch.float32)
