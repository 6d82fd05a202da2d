"""The vMF sampler against the closed-form mean resultant length A_d(kappa)."""

import pytest
import torch
from scipy.special import ive

from model.vmf import sample_vmf


def mean_resultant_length(d: int, kappa: float) -> float:
    """A_d(kappa) = I_{d/2}(kappa) / I_{d/2-1}(kappa) (exponentially scaled Bessels: no overflow)."""
    return float(ive(d / 2, kappa) / ive(d / 2 - 1, kappa))


@pytest.mark.parametrize("kappa", [5.0, 50.0, 500.0, 8192.0])
def test_mean_resultant_length_matches_theory(kappa):
    d = 64
    mu = torch.nn.functional.normalize(torch.randn(d, dtype=torch.float64), dim=0)
    x = sample_vmf(mu.expand(20000, d).contiguous(), kappa)
    torch.testing.assert_close(x.norm(dim=-1), torch.ones(20000, dtype=torch.float64))
    rbar = float(x.mean(0).norm())
    expected = mean_resultant_length(d, kappa)
    assert abs(rbar - expected) / expected < 0.02, (rbar, expected)
    # the mean direction is mu
    assert float(torch.nn.functional.normalize(x.mean(0), dim=0) @ mu) > 0.99


def test_samples_are_unit_vectors_and_gradients_reach_mu():
    mu = torch.nn.functional.normalize(torch.randn(4, 8, 8, 64), dim=-1).requires_grad_()
    x = sample_vmf(mu, 100.0)
    assert x.shape == mu.shape
    torch.testing.assert_close(x.norm(dim=-1), torch.ones(4, 8, 8))
    (x * torch.randn_like(x)).sum().backward()
    assert mu.grad is not None and mu.grad.abs().sum() > 0


def test_mean_direction_equal_to_e1_is_handled():
    mu = torch.zeros(1000, 64)
    mu[:, 0] = 1.0
    x = sample_vmf(mu, 1000.0)
    assert torch.isfinite(x).all()
    assert abs(float(x[:, 0].mean()) - mean_resultant_length(64, 1000.0)) < 0.01
