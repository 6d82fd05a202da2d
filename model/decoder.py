"""Light reconstruction decoder: sampled embedding + source + timecode -> a held-out frame."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from model.config import ModelConfig
from model.timecode import timecode


class Decoder(nn.Module):
    """Per-pixel MLP conditioned (FiLM) on the source embedding and the frame's timecode."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        w = cfg.decoder_width
        self.cfg = cfg
        self.inp = nn.Linear(cfg.embed_dim, w)
        self.source_embed = nn.ParameterDict(
            {s.name: nn.Parameter(torch.randn(w) * 0.02) for s in cfg.sources})
        self.cond = nn.Sequential(nn.Linear(cfg.timecode_dim + w, w), nn.GELU(), nn.Linear(w, 2 * w))
        self.hidden = nn.Linear(w, w)
        self.heads = nn.ModuleDict({s.name: nn.Linear(w, s.channels) for s in cfg.sources})

    def forward(self, z: torch.Tensor, source: str, times: torch.Tensor) -> torch.Tensor:
        """z (B, L, L, E) embeddings, times (B, T) days -> (B, T, C_source, L, L) predicted frames."""
        b, t = times.shape
        h = self.inp(z)[:, None]  # (B, 1, L, L, W)
        meta = torch.cat([timecode(times, self.cfg.timecode_dim).to(h.dtype),
                          self.source_embed[source].expand(b, t, -1)], dim=-1)
        scale, shift = self.cond(meta)[:, :, None, None].chunk(2, dim=-1)  # (B, T, 1, 1, W)
        h = F.gelu(h * (1 + scale) + shift)
        h = F.gelu(self.hidden(h))
        return rearrange(self.heads[source](h), "b t h w c -> b t c h w")
