"""Seeded random streams and smooth random fields for the sample world."""

from __future__ import annotations

import zlib

import numpy as np


def stream(seed: int, *key: str | int) -> np.random.Generator:
    """An independent generator per (seed, purpose, ...): adding a feature never
    changes the random numbers of the others (stable outputs across versions)."""
    words = [seed] + [zlib.crc32(str(k).encode()) for k in key]
    return np.random.default_rng(np.random.SeedSequence(words))


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], scale_px: float) -> np.ndarray:
    """A zero-mean, unit-std random field with features ~`scale_px` pixels wide.

    White noise low-pass filtered by a Gaussian in the Fourier domain: cost does not
    grow with the scale, and the field tiles periodically (no edge artefacts).
    Returns (h, w) float32.
    """
    h, w = shape
    sigma = max(float(scale_px), 1.0) / 2.0
    spectrum = np.fft.rfft2(rng.standard_normal((h, w)))
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    spectrum *= np.exp(-2.0 * (np.pi * sigma) ** 2 * (fy**2 + fx**2))
    field = np.fft.irfft2(spectrum, s=(h, w))
    field -= field.mean()
    return (field / (field.std() + 1e-12)).astype(np.float32)


def block_mean(a: np.ndarray, factor: int = 2) -> np.ndarray:
    """Average non-overlapping factor x factor blocks of the last two axes: 10 m -> 20 m."""
    *lead, h, w = a.shape
    return a.reshape(*lead, h // factor, factor, w // factor, factor).mean(axis=(-3, -1))
