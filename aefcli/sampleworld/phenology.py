"""NDVI over the year for each vegetated class, with per-parcel timing and vigour."""

from __future__ import annotations

import numpy as np

from aefcli.sampleworld.classes import SOIL_NDVI, Phenology

MOW_LEVEL = 0.45  # NDVI right after a grass cut
MOW_REGROW_DAYS = 25.0


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))


def ndvi_curve(
    phen: Phenology,
    doy: float | np.ndarray,
    shift: float | np.ndarray = 0.0,
    vigour: float | np.ndarray = 1.0,
    cuts: np.ndarray | None = None,
) -> np.ndarray:
    """NDVI of a class on day(s) of year `doy` (1..366, float).

    shift: days added to every phenological date (a late-sown parcel has shift > 0);
    vigour: multiplies the seasonal amplitude (peak - base), ~0.9..1.05 per parcel;
    cuts: grass mowing DOYs, (..., n_cuts) broadcastable with doy, NaN = no cut.
    Shapes broadcast (doy, shift and vigour may be per-parcel arrays). Returns float32.
    """
    t = np.asarray(doy, dtype=np.float64) - np.asarray(shift, dtype=np.float64)
    peak = phen.base + (phen.peak - phen.base) * np.asarray(vigour, dtype=np.float64)
    value = phen.base + (peak - phen.base) * _sigmoid((t - phen.green_up) / phen.rise)
    value = value - (peak - phen.senesced) * _sigmoid((t - phen.senescence) / phen.fall)
    if phen.harvest is not None:
        after = t >= phen.harvest
        regrowth = 0.0
        if phen.kind == "winter":
            # the next season's crop emerges ~30 days after autumn sowing
            regrowth = (phen.base - SOIL_NDVI) * _sigmoid((t - phen.sowing - 30.0) / 8.0)
        value = np.where(after, SOIL_NDVI + regrowth, value)
    if cuts is not None:
        since = t[..., None] - np.asarray(cuts, dtype=np.float64)
        recovering = (since >= 0) & (since < MOW_REGROW_DAYS)
        frac = np.where(recovering, since / MOW_REGROW_DAYS, 1.0)
        cut_value = MOW_LEVEL + (value[..., None] - MOW_LEVEL) * frac
        value = np.minimum(value, np.nanmin(np.where(recovering, cut_value, np.inf), axis=-1))
    return np.asarray(value, dtype=np.float32)


def vegetation_fraction(ndvi: np.ndarray, ground: np.ndarray, veg: np.ndarray, red: int, nir: int) -> np.ndarray:
    """Fraction of green cover whose linear mix with the ground has the target NDVI.

    ndvi (...,); ground, veg (..., n_bands) end-member reflectances. Mixing is linear in
    reflectance, so NDVI(f) = (N - R) / (N + R) with N, R linear in f: solved exactly.
    Returns (...,) float32 in [0, 1].
    """
    gr, gn = ground[..., red], ground[..., nir]
    dr, dn = veg[..., red] - gr, veg[..., nir] - gn
    denom = ndvi * (dn + dr) - (dn - dr)
    safe = np.where(np.abs(denom) < 1e-6, -1e-6, denom)
    f = (gn - gr - ndvi * (gn + gr)) / safe
    return np.clip(f, 0.0, 1.0).astype(np.float32)
