"""Sentinel-1 IW GRD-like backscatter: VV/VH from vegetation and roughness, with speckle.

Written as linear power (sigma0, float32, like the analysis-ready S1 collections
of public STAC APIs); `aef ingest` converts to dB. Speckle is multiplicative
gamma noise of a multi-looked GRD (equivalent number of looks ~4.4).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aefcli.sampleworld.classes import SOIL_NDVI, table
from aefcli.sampleworld.landcover import WATER, LandCover
from aefcli.sampleworld.noise import smooth_field, stream
from aefcli.sampleworld.optical import parcel_ndvi

ENL = 4.4  # equivalent number of looks of Sentinel-1 IW GRDH
FULL_CANOPY_NDVI = 0.85


@dataclass(frozen=True)
class S1Scene:
    """One S1 acquisition on the 10 m grid: linear sigma0, (size, size) float32 each."""

    doy: int
    vv: np.ndarray
    vh: np.ndarray


def backscatter_db(lc: LandCover, doy: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Speckle-free (VV, VH) sigma0 in dB on `doy`, each (size, size) float32.

    Ground and canopy mix linearly in dB by the green cover implied by NDVI; soil
    moisture (rain) shifts the ground term per date; wind roughens the water.
    """
    rng = stream(seed, "s1-weather", doy)
    moisture = float(rng.normal(0.0, 1.2))
    wind = float(rng.uniform(-1.5, 5.0))
    ndvi = parcel_ndvi(lc, doy)[lc.parcels]
    fv = np.clip((ndvi - SOIL_NDVI) / (FULL_CANOPY_NDVI - SOIL_NDVI), 0, 1)
    fv = np.where(np.isnan(ndvi), table("fixed_fv")[lc.classes], fv)
    ground = table("s1_ground")[lc.classes] + (lc.roughness[lc.parcels] + moisture)[..., None]
    canopy = table("s1_veg")[lc.classes]
    db = (1 - fv[..., None]) * ground + fv[..., None] * canopy
    water = lc.classes == WATER
    db[water] = table("s1_ground")[lc.classes[water]] + wind
    db += 0.5 * lc.texture[..., None]
    return db[..., 0].astype(np.float32), db[..., 1].astype(np.float32)


def s1_scene(lc: LandCover, doy: int, seed: int) -> S1Scene:
    """Synthesize the S1 acquisition of day-of-year `doy` (linear sigma0 with speckle)."""
    vv_db, vh_db = backscatter_db(lc, doy, seed)
    rng = stream(seed, "s1-speckle", doy)
    # a faint incidence-angle trend across the swath (near range brighter)
    size = vv_db.shape[1]
    ramp = np.linspace(0.6, -0.6, size, dtype=np.float32)[None, :] + 0.1 * smooth_field(rng, vv_db.shape, size / 3)
    out = []
    for db in (vv_db, vh_db):
        speckle = rng.gamma(ENL, 1.0 / ENL, db.shape).astype(np.float32)
        out.append((10 ** ((db + ramp) / 10) * speckle).astype(np.float32))
    return S1Scene(doy, out[0], out[1])
