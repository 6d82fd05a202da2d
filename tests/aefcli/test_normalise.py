"""aefcli.normalise.standardise: the in-place arithmetic equals the plain formula, input untouched."""

import numpy as np
import pytest

from aefcli.normalise import LOG_OFFSET, NormStats, standardise


def _raw_and_stats(seed: int, shape: tuple[int, ...], transform: str):
    """float32 reflectances (T, 4, y, x) with a few NaN, and 4-band statistics."""
    rng = np.random.default_rng(seed)
    raw = rng.uniform(-0.1, 1.2, shape).astype(np.float32)
    raw[-1, 2, 3, :2] = np.nan
    stats = NormStats(transform, ("a", "b", "c", "d"), tuple(rng.normal(size=4)), tuple(rng.uniform(0.5, 2, 4)))
    return rng, raw, stats


@pytest.mark.parametrize("transform", ["log", "identity"])
def test_standardise_is_bitwise_the_plain_formula_and_leaves_its_input(transform):
    _, raw, stats = _raw_and_stats(1, (3, 4, 8, 8), transform)
    mean = np.asarray(stats.mean, np.float32).reshape(4, 1, 1)
    std = np.asarray(stats.std, np.float32).reshape(4, 1, 1)
    t = np.log(np.maximum(raw, 0.0) + np.float32(LOG_OFFSET)) if transform == "log" else raw
    expected = ((t - mean) / std).astype(np.float32)
    before = raw.copy()
    z = standardise(raw, stats)
    assert z.dtype == np.float32 and np.array_equal(z, expected, equal_nan=True)
    assert np.array_equal(raw, before, equal_nan=True)
    assert np.isnan(z[-1, 2, 3, :2]).all()


@pytest.mark.parametrize("transform", ["log", "identity"])
def test_standardise_in_place_gives_the_same_bits_in_the_inputs_buffer(transform):
    rng, raw, stats = _raw_and_stats(2, (2, 4, 6, 6), transform)
    expected = standardise(raw, stats)
    z = standardise(raw, stats, in_place=True)
    assert z is raw and np.array_equal(raw, expected, equal_nan=True)
    other = rng.uniform(-0.1, 1.2, (2, 4, 6, 6)).astype(np.float32)
    want = standardise(other[:, :, 1:5, 1:5].copy(), stats)
    view = standardise(other[:, :, 1:5, 1:5], stats, in_place=True)  # a strided view (an edge chunk's extent)
    assert np.array_equal(other[:, :, 1:5, 1:5], want) and np.array_equal(view, want)
    with pytest.raises(ValueError, match="writable float32"):
        standardise(raw.astype(np.float64), stats, in_place=True)
