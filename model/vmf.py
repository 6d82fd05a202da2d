"""von Mises-Fisher bottleneck: an exact sampler on the unit sphere S^(d-1).

Wood (1994): the component w along the mean direction is drawn by rejection
from a Beta proposal; a uniform direction orthogonal to e1 completes the
sample, and a Householder reflection maps e1 onto mu. Gradients flow to mu
through the reflection (w and the orthogonal direction do not depend on mu).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _sample_w(n: int, d: int, kappa: float, device: torch.device) -> torch.Tensor:
    """(n,) float64 cosines between samples and the mean direction."""
    dm1 = d - 1.0
    # b written in the cancellation-free form of (-2k + sqrt(4k^2 + (d-1)^2)) / (d-1)
    b = dm1 / (2.0 * kappa + math.sqrt(4.0 * kappa**2 + dm1**2))
    x0 = (1.0 - b) / (1.0 + b)
    c = kappa * x0 + dm1 * math.log(1.0 - x0**2)
    beta = torch.distributions.Beta(torch.tensor(dm1 / 2, dtype=torch.float64, device=device),
                                    torch.tensor(dm1 / 2, dtype=torch.float64, device=device))
    w = torch.empty(n, dtype=torch.float64, device=device)
    todo = torch.arange(n, device=device)
    while todo.numel():
        z = beta.sample((todo.numel(),))
        cand = (1.0 - (1.0 + b) * z) / (1.0 - (1.0 - b) * z)
        u = torch.rand(todo.numel(), dtype=torch.float64, device=device)
        accept = kappa * cand + dm1 * torch.log(1.0 - x0 * cand) - c >= torch.log(u)
        w[todo[accept]] = cand[accept]
        todo = todo[~accept]
    return w


def sample_vmf(mu: torch.Tensor, kappa: float) -> torch.Tensor:
    """One vMF(mu, kappa) sample per vector; mu (..., d) unit vectors -> (..., d) unit vectors."""
    shape, d = mu.shape, mu.shape[-1]
    flat = mu.reshape(-1, d)
    n = flat.shape[0]
    w = _sample_w(n, d, kappa, mu.device).to(mu.dtype)[:, None]
    v = F.normalize(torch.randn(n, d - 1, device=mu.device, dtype=mu.dtype), dim=-1)
    x = torch.cat([w, (1.0 - w**2).clamp(min=0).sqrt() * v], dim=-1)  # around e1
    e1 = torch.zeros_like(flat)
    e1[:, 0] = 1.0
    u = e1 - flat
    norm = u.norm(dim=-1, keepdim=True)
    # where mu is already e1 the reflection is the identity
    u = torch.where(norm > 1e-6, u / norm.clamp(min=1e-6), torch.zeros_like(u))
    x = x - 2.0 * (x * u).sum(-1, keepdim=True) * u
    return x.reshape(shape)
