"""Each pixel's own period profile: the mean of its valid inputs in K sub-periods.

The summary head pools frames per 8 x 8 px cell of the time path, so a small
parcel's phenology is averaged with its neighbours' before the head sees it.
With `ModelConfig.profile_skip` = K the head also gets, per pixel and per source,
the mean of the valid standardised values in each of K equal sub-periods of the
valid period [t_s, t_e) (a sub-period without a valid observation takes the
pixel's mean over the whole period; a pixel never seen, 0: the band's mean).
It has no weights: the head's linear map of it is learned.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from model.batch import VideoBatch
from model.config import ModelConfig


def profile_width(cfg: ModelConfig) -> int:
    """Channels of `period_profile`: K sub-periods x every band of every source."""
    return cfg.profile_skip * sum(s.channels for s in cfg.sources)


def period_profile(video: VideoBatch, cfg: ModelConfig) -> torch.Tensor:
    """(B, L, L, K * sum C) float32: per source (config order), per sub-period, per band, the
    pixel's mean valid value (see the module doc). A source absent from the batch gives zeros."""
    k = cfg.profile_skip
    some = next(iter(video.sources.values())).values
    b, size = some.shape[0], some.shape[-2:]
    t_s, t_e = video.period[:, :1], video.period[:, 1:]
    parts = []
    for spec in cfg.sources:
        frames = video.sources.get(spec.name)
        if frames is None:
            parts.append(some.new_zeros(b, *size, k * spec.channels, dtype=torch.float32))
            continue
        ok = frames.valid & frames.present[..., None, None]  # (B, T, L, L)
        values = torch.where(ok[:, :, None], frames.values.float(), 0.0)  # invalid values may be anything
        pos = torch.floor((frames.times - t_s) / (t_e - t_s) * k).long()  # (B, T) sub-period of each frame
        member = F.one_hot(pos.clamp(0, k - 1), k).float() * ((pos >= 0) & (pos < k))[..., None]  # (B, T, K)
        okf = ok.float()
        sums = torch.einsum("btk,btchw->bkchw", member, values)
        counts = torch.einsum("btk,bthw->bkhw", member, okf)[:, :, None]  # (B, K, 1, L, L)
        whole = sums.sum(1) / counts.sum(1).clamp(min=1.0)  # (B, C, L, L): the period's mean
        means = torch.where(counts > 0, sums / counts.clamp(min=1.0), whole[:, None])
        parts.append(rearrange(means, "b k c h w -> b h w (k c)"))
    return torch.cat(parts, dim=-1)
