"""aefcli.normalise.standardise: the in-place arithmetic equals the plain formula, input untouched."""

import numpy as np
import pytest

from aefcli.normalise import LOG_OFFSET, NormStats, standardise


@pytest.mark.parametrize("transform", ["log", "identity"])
def test_standardise_is_bitwise_the_plain_formula_and_leaves_its_input(transform):
    rng = np.random.default_rng(1)
    raw = rng.uniform(-0.1, 1.2, (3, 4, 8, 8)).astype(np.float32)
    raw[0, 0, 0, :3] = np.nan
    stats = NormStats(transform, ("a", "b", "c", "d"), tuple(rng.normal(size=4)), tuple(rng.uniform(0.5, 2, 4)))
    mean = np.asarray(stats.mean, np.float32).reshape(4, 1, 1)
    std = np.asarray(stats.std, np.float32).reshape(4, 1, 1)
    t = np.log(np.maximum(raw, 0.0) + np.float32(LOG_OFFSET)) if transform == "log" else raw
    expected = ((t - mean) / std).astype(np.float32)
    before = raw.copy()
    z = standardise(raw, stats)
    assert z.dtype == np.float32 and np.array_equal(z, expected, equal_nan=True)
    assert np.array_equal(raw, before, equal_nan=True)
    assert np.isnan(z[0, 0, 0, :3]).all()


@pytest.mark.parametrize("transform", ["log", "identity"])
def test_standardise_in_place_gives_the_same_bits_in_the_inputs_buffer(transform):
    rng = np.random.default_rng(2)
    raw = rng.uniform(-0.1, 1.2, (2, 4, 6, 6)).astype(np.float32)
    raw[1, 2, 3, :2] = np.nan
    stats = NormStats(transform, ("a", "b", "c", "d"), tuple(rng.normal(size=4)), tuple(rng.uniform(0.5, 2, 4)))
    expected = standardise(raw, stats)
    z = standardise(raw, stats, in_place=True)
    assert z is raw and np.array_equal(raw, expected, equal_nan=True)
    other = rng.uniform(-0.1, 1.2, (2, 4, 6, 6)).astype(np.float32)
    want = standardise(other[:, :, 1:5, 1:5].copy(), stats)
    view = standardise(other[:, :, 1:5, 1:5], stats, in_place=True)  # a strided view (an edge chunk's extent)
    assert np.array_equal(other[:, :, 1:5, 1:5], want) and np.array_equal(view, want)
    with pytest.raises(Exception, match="writable float32"):
        standardise(raw.astype(np.float64), stats, in_place=True)
