"""The value transform and per-band standardisation, defined once for all stages.

Standardised value = (T(raw) - mean) / std, per band, where T is:

- ``"log"`` (optical reflectance, unitless ~0..1):
  ``T(r) = ln(max(r, 0) + LOG_OFFSET)`` with ``LOG_OFFSET = 0.01``.
  Reflectance below 0 (noise left after removing the processing-baseline
  offset) is clipped to 0 first; the offset keeps dark water (~0.01) away from
  the log's pole. Inverse: ``r = exp(t) - LOG_OFFSET`` (exact for r >= 0).
- ``"identity"`` (SAR backscatter already in dB): ``T(x) = x``.

The statistics (mean, std of T(raw) over valid pixels) live in a `NormStats`
that is stored in the cube's group attributes (``aef:norm``) and in model
checkpoints, so training and inference use the same numbers. The raw values
stay in the cube, so nothing here is lossy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from aefcli.errors import DataError, InputError

LOG_OFFSET = 0.01
TRANSFORMS = ("log", "identity")


def forward(raw: np.ndarray, transform: str, copy: bool = False, out: np.ndarray | None = None) -> np.ndarray:
    """T(raw), float32, NaN kept. raw in physical units (reflectance or dB).
    copy: always a new array (never a view of raw), so the caller may work in place.
    out: a float32 array of raw's shape to write T(raw) into (may be raw itself); returned."""
    x = np.asarray(raw, dtype=np.float32)
    if transform == "log":
        with np.errstate(invalid="ignore"):
            t = np.maximum(x, np.float32(0.0), out=np.empty_like(x) if out is None else out)  # an array even for a 0-d input
            t += np.float32(LOG_OFFSET)
            return np.log(t, out=t)
    if transform == "identity":
        if out is not None:
            if out is not x:
                np.copyto(out, x)
            return out
        return x.copy() if copy else x
    raise InputError(f"unknown value transform {transform!r}; expected one of {TRANSFORMS}")


def inverse(t: np.ndarray, transform: str) -> np.ndarray:
    """T^-1(t), float32: back to physical units (reflectance clipped at 0, or dB)."""
    x = np.asarray(t, dtype=np.float32)
    if transform == "log":
        return (np.exp(x) - np.float32(LOG_OFFSET)).astype(np.float32)
    if transform == "identity":
        return x
    raise InputError(f"unknown value transform {transform!r}; expected one of {TRANSFORMS}")


@dataclass(frozen=True)
class NormStats:
    """Per-band statistics of T(raw) over valid pixels; one per source.

    bands, mean, std: equal-length tuples (std > 0, in units of T(raw)).
    """

    transform: str
    bands: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "bands", tuple(str(b) for b in self.bands))
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        if self.transform not in TRANSFORMS:
            raise InputError(f"unknown value transform {self.transform!r}; expected one of {TRANSFORMS}")
        if not (len(self.bands) == len(self.mean) == len(self.std)) or not self.bands:
            raise InputError("normalisation statistics need one mean and one std per band")
        if not all(np.isfinite(self.mean)) or not all(np.isfinite(s) and s > 0 for s in self.std):
            raise InputError("normalisation statistics must be finite with std > 0")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as stored in `aef:norm` attributes and checkpoints."""
        return {"transform": self.transform, "bands": list(self.bands), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NormStats":
        """Inverse of `to_dict`; InputError when keys are missing."""
        try:
            return cls(transform=d["transform"], bands=tuple(d["bands"]), mean=tuple(d["mean"]), std=tuple(d["std"]))
        except (KeyError, TypeError) as err:
            raise InputError(f"malformed normalisation statistics ({err}); expected transform/bands/mean/std") from None

    def select(self, bands: tuple[str, ...] | list[str]) -> "NormStats":
        """The statistics of `bands`, in that order; DataError names a missing band."""
        missing = [b for b in bands if b not in self.bands]
        if missing:
            raise DataError(f"normalisation statistics lack band(s) {missing}; they cover {list(self.bands)}")
        idx = [self.bands.index(b) for b in bands]
        return NormStats(self.transform, tuple(bands), tuple(self.mean[i] for i in idx), tuple(self.std[i] for i in idx))


def _shape_for(stats: NormStats, ndim: int, axis: int) -> tuple[int, ...]:
    shape = [1] * ndim
    shape[axis] = len(stats.bands)
    return tuple(shape)


def standardise(raw: np.ndarray, stats: NormStats, axis: int = -3, in_place: bool = False) -> np.ndarray:
    """(T(raw) - mean) / std, float32; `axis` is the band axis ((T, C, y, x) -> -3). NaN stays NaN.

    in_place: overwrite raw (a writable float32 array the caller owns, e.g. a freshly decoded
    chunk) and return it: no second array of its size. The bits are the same either way.
    """
    x = np.asarray(raw)
    if x.shape[axis] != len(stats.bands):
        raise DataError(f"array has {x.shape[axis]} bands on axis {axis}, statistics have {len(stats.bands)}")
    if in_place and (x.dtype != np.float32 or not x.flags.writeable):
        raise ValueError(f"standardise in place needs a writable float32 array, got {x.dtype}")
    shape = _shape_for(stats, x.ndim, axis)
    mean = np.asarray(stats.mean, dtype=np.float32).reshape(shape)
    std = np.asarray(stats.std, dtype=np.float32).reshape(shape)
    # one array (a new one, or raw's own), then in place: the same float32 ops, no temporaries
    z = forward(x, stats.transform, out=x) if in_place else forward(x, stats.transform, copy=True)
    z -= mean
    z /= std
    return z


def destandardise(z: np.ndarray, stats: NormStats, axis: int = -3) -> np.ndarray:
    """Inverse of `standardise`: back to physical units (optical reflectance clipped at 0)."""
    x = np.asarray(z, dtype=np.float32)
    shape = _shape_for(stats, x.ndim, axis)
    mean = np.asarray(stats.mean, dtype=np.float32).reshape(shape)
    std = np.asarray(stats.std, dtype=np.float32).reshape(shape)
    return inverse(x * std + mean, stats.transform)


class RunningStats:
    """Streaming per-band mean/std of T(raw) over valid pixels (float64 sums, frame by frame)."""

    def __init__(self, bands: tuple[str, ...], transform: str) -> None:
        self.bands = tuple(bands)
        self.transform = transform
        self.n = np.zeros(len(bands), dtype=np.float64)
        self.s1 = np.zeros(len(bands), dtype=np.float64)
        self.s2 = np.zeros(len(bands), dtype=np.float64)

    def add(self, raw: np.ndarray, valid: np.ndarray) -> None:
        """raw (T, C, y, x) or (C, y, x) physical units; valid (T, y, x) or (y, x) bool."""
        raw = np.asarray(raw)
        if raw.ndim == 3:
            raw, valid = raw[None], np.asarray(valid)[None]
        t = forward(raw, self.transform).astype(np.float64)  # (T, C, y, x)
        ok = np.asarray(valid, dtype=bool)[:, None] & np.isfinite(t)
        t = np.where(ok, t, 0.0)
        self.n += ok.sum(axis=(0, 2, 3))
        self.s1 += t.sum(axis=(0, 2, 3))
        self.s2 += (t * t).sum(axis=(0, 2, 3))

    def result(self) -> NormStats:
        """The NormStats; DataError when a band has no valid pixel."""
        if np.any(self.n == 0):
            empty = [b for b, n in zip(self.bands, self.n) if n == 0]
            raise DataError(f"no valid pixels for band(s) {empty}: cannot compute normalisation statistics")
        mean = self.s1 / self.n
        var = np.maximum(self.s2 / self.n - mean * mean, 0.0)
        # A constant band would divide by zero; 1e-6 keeps it finite and centred.
        std = np.maximum(np.sqrt(var), 1e-6)
        return NormStats(self.transform, self.bands, tuple(mean), tuple(std))
