"""The embedding field model: STP encoder + period summary (+ vMF, decoder for training)."""

from __future__ import annotations

import math

import torch
from torch import nn

from model.batch import VideoBatch
from model.config import ModelConfig
from model.decoder import Decoder
from model.encoder import STPEncoder
from model.profile import period_profile
from model.smoothing import edge_aware_smooth
from model.summary import SummaryHead
from model.vmf import sample_vmf


class EmbeddingFieldModel(nn.Module):
    """forward(video) -> mu (B, L, L, embed_dim) unit vectors summarising video.period.

    Training-only parts (decoder, text projection) live here too so one
    state dict holds the whole model; inference uses only encoder + summary.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = STPEncoder(cfg)
        self.summary = SummaryHead(cfg)
        self.decoder = Decoder(cfg)
        # frozen text embeddings come with the batch; only this projection learns
        self.text_proj = nn.Linear(cfg.text_dim, cfg.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    # without autograd, larger batches run in groups of this many samples: every sample is
    # computed independently, and the working set of big batches falls out of the CPU caches
    inference_batch: int = 2

    def forward(self, video: VideoBatch) -> torch.Tensor:
        """video -> mu (B, L, L, embed_dim), float32 unit vectors; without autograd (inference)
        edge-aware smoothed when the config asks for it (`model.smoothing`)."""
        b, cfg = video.batch_size, self.cfg
        if torch.is_grad_enabled():  # training learns the unsmoothed field unless cfg.smooth_train
            mu = self.summarise(video)
            return self.smooth(mu) if cfg.smooth_train else mu
        if b <= self.inference_batch:
            return self.smooth(self.summarise(video))
        groups = torch.arange(b, device=video.period.device).split(self.inference_batch)
        return torch.cat([self(video.select(index)) for index in groups])

    def summarise(self, video: VideoBatch) -> torch.Tensor:
        """Encoder + period summary (+ each pixel's own profile when cfg.profile_skip): the unsmoothed mu."""
        profile = period_profile(video, self.cfg) if self.cfg.profile_skip else None
        return self.summary(self.encoder(video), video.period, profile)

    def smooth(self, mu: torch.Tensor) -> torch.Tensor:
        """The config's edge-aware smoothing of mu (B, L, L, E); the identity when smooth_radius is 0."""
        cfg = self.cfg
        return edge_aware_smooth(mu, cfg.smooth_radius, cfg.smooth_tau, cfg.smooth_passes, cfg.smooth_step)

    def sample(self, mu: torch.Tensor) -> torch.Tensor:
        """The vMF bottleneck: one sample around each mu with concentration cfg.kappa."""
        return sample_vmf(mu, self.cfg.kappa)
