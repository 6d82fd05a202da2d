"""The training-time probe scores embeddings the way `aef probe` does (standardised features)."""

import numpy as np

from aefcli.train_eval import ProbeHook


class FixedHook(ProbeHook):
    """The hook's scoring on given features (no cube, no model)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, fold: np.ndarray) -> None:
        self.x, self.y, self.fold = x, y, fold

    def embeddings(self, model, device) -> np.ndarray:
        return self.x


def test_hook_score_ignores_feature_scale():
    # class signal in a dimension with tiny variance: an unstandardised, regularised probe misses it
    rng = np.random.default_rng(0)
    n = 400
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 8))
    x[:, 0] = (y + 0.3 * rng.normal(size=n)) * 1e-4
    fold = np.arange(n) % 2
    scaled = x / x.std(axis=0)
    tiny_scale, unit_scale = FixedHook(x, y, fold)(None, "cpu"), FixedHook(scaled, y, fold)(None, "cpu")
    assert unit_scale > 0.85
    assert abs(tiny_scale - unit_scale) < 1e-6
