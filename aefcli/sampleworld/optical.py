"""Sentinel-2 L2A-like scenes: class spectra from the NDVI state, clouds, shadows, SCL.

A scene is computed on the 10 m grid, then 20 m bands and SCL are 2x2 block
means of it, as the real 20 m bands integrate a larger footprint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aefcli.sampleworld.classes import CLASSES, CLOUD, NIR, RED, S2_BANDS, table
from aefcli.sampleworld.landcover import BUILT, ROAD, WATER, LandCover
from aefcli.sampleworld.noise import block_mean, smooth_field, stream
from aefcli.sampleworld.phenology import ndvi_curve, vegetation_fraction

BOA_ADD_OFFSET = 1000  # digital-number offset of processing baseline >= 04.00
NODATA = 0
# Sen2Cor scene classes used here
SCL_NODATA, SCL_SHADOW, SCL_VEG, SCL_SOIL, SCL_WATER = 0, 3, 4, 5, 6
SCL_CLOUD_MED, SCL_CLOUD_HIGH, SCL_CIRRUS = 8, 9, 10


@dataclass(frozen=True)
class Sky:
    """Per-date atmosphere on the 10 m grid, all (size, size) float32 in [0, 1] or bool."""

    cloud: np.ndarray  # cloud opacity
    cirrus: np.ndarray  # thin cirrus opacity
    shadow: np.ndarray  # shadow strength (the cloud field shifted away from the sun)
    nodata: np.ndarray  # bool, outside the orbit's swath


@dataclass(frozen=True)
class S2Scene:
    """One S2 L2A acquisition: digital numbers per asset key, the SCL and summary statistics."""

    doy: int
    bands: dict[str, np.ndarray]  # asset key -> uint16 (size, size) at 10 m or (size/2, size/2) at 20 m
    scl: np.ndarray  # uint8 (size/2, size/2)
    stats: dict[str, float]  # eo:cloud_cover and s2:*_percentage, percent of the tile


def parcel_ndvi(lc: LandCover, doy: float) -> np.ndarray:
    """Noise-free NDVI of every parcel on `doy`: (n_parcels,) float32, NaN for classes without phenology."""
    out = np.full(lc.parcel_class.shape, np.nan, dtype=np.float32)
    for c in CLASSES:
        if c.phenology is None:
            continue
        sel = lc.parcel_class == c.id
        cuts = lc.cuts[sel] if c.phenology.kind == "perennial" and c.name == "grassland" else None
        out[sel] = ndvi_curve(c.phenology, doy, lc.shift[sel], lc.vigour[sel], cuts)
    return out


def pixel_ndvi(lc: LandCover, doy: float, rng: np.random.Generator) -> np.ndarray:
    """Target NDVI per pixel: the parcel's curve plus static texture and per-date noise. (size, size)."""
    ndvi = parcel_ndvi(lc, doy)[lc.parcels]
    ndvi = ndvi + 0.03 * lc.texture + 0.015 * rng.standard_normal(ndvi.shape).astype(np.float32)
    return np.clip(ndvi, -0.2, 0.95)


def clear_reflectance(lc: LandCover, doy: float, rng: np.random.Generator) -> np.ndarray:
    """Cloud-free surface reflectance (10, size, size) float32, bands in `S2_BANDS` order."""
    veg = table("veg")[lc.classes]  # (h, w, 10)
    ground = table("ground")[lc.classes] * lc.brightness[lc.parcels][..., None]
    ndvi = pixel_ndvi(lc, doy, rng)
    fv = vegetation_fraction(ndvi, ground, veg, RED, NIR)
    fixed = table("fixed_fv")[lc.classes]
    no_phen = np.isnan(ndvi)
    fv = np.where(no_phen, fixed, fv)
    refl = fv[..., None] * veg + (1 - fv[..., None]) * ground
    refl = refl * (1 + 0.03 * lc.texture[..., None])
    water = lc.classes == WATER  # turbidity changes with the season's discharge
    refl[water] *= 1 + 0.15 * rng.uniform(-1, 1)
    built = (lc.classes == BUILT) | (lc.classes == ROAD)
    refl[built] *= 1 + 0.08 * rng.standard_normal((int(built.sum()), 1)).astype(np.float32)
    refl *= 1 + 0.01 * rng.standard_normal(refl.shape).astype(np.float32)  # sensor noise
    return np.moveaxis(refl, -1, 0).astype(np.float32)


def draw_sky(size: int, seed: int, doy: int) -> Sky:
    """The date's clouds, cirrus, shadows and swath edge: ~40 % of dates clear,
    30 % partly cloudy, 30 % mostly cloudy (Western European statistics)."""
    rng = stream(seed, "sky", doy)
    regime = rng.uniform()
    cover = 0.0 if regime < 0.4 else rng.uniform(0.03, 0.35) if regime < 0.7 else rng.uniform(0.4, 0.95)
    field = smooth_field(rng, (size, size), size / 8) + 0.35 * smooth_field(rng, (size, size), size / 40)
    cloud = np.zeros((size, size), np.float32)
    if cover > 0:
        threshold = np.quantile(field, 1 - cover)
        cloud = np.clip((field - threshold) / 0.6, 0, 1).astype(np.float32)
    cirrus = np.zeros_like(cloud)
    if rng.uniform() < 0.2:
        cirrus = (0.3 * np.clip(smooth_field(rng, (size, size), size / 4), 0, None)).astype(np.float32)
    # the sun is south(-east) at 10:30: shadows fall north(-west) of their clouds
    dr, dc = int(rng.integers(size // 25 + 1, size // 10 + 2)), int(rng.integers(0, size // 20 + 2))
    shadow = np.zeros_like(cloud)
    shadow[: size - dr, : size - dc] = np.clip(2 * cloud[dr:, dc:], 0, 1)  # cores cast full shadow
    shadow *= 1 - cloud
    nodata = np.zeros((size, size), bool)
    if rng.uniform() < 0.1:  # the scene lies at the edge of the orbit's swath
        half = size // 2
        yy, xx = np.mgrid[0:half, 0:half]
        edge = (yy + 0.3 * xx) > rng.uniform(0.5, 0.9) * half
        nodata = np.repeat(np.repeat(edge, 2, 0), 2, 1)  # on 20 m blocks, so both grids agree
    return Sky(cloud, cirrus, shadow, nodata)


def s2_scene(lc: LandCover, doy: int, seed: int, boa_offset: bool) -> S2Scene:
    """Synthesize the S2 L2A acquisition of day-of-year `doy` (digital numbers = reflectance x 1e4,
    + 1000 when `boa_offset`, 0 = nodata)."""
    size = lc.classes.shape[0]
    rng = stream(seed, "s2", doy)
    clear = clear_reflectance(lc, doy, rng)
    sky = draw_sky(size, seed, doy)
    cloud_refl = np.asarray(CLOUD, np.float32)[:, None, None] * (0.9 + 0.1 * sky.cloud)
    toa = (1 - sky.cloud) * clear + sky.cloud * cloud_refl
    toa = toa * (1 - 0.75 * sky.shadow)  # only diffuse skylight reaches the shadowed ground
    toa = toa + sky.cirrus * np.linspace(0.16, 0.08, len(S2_BANDS), dtype=np.float32)[:, None, None]

    add = BOA_ADD_OFFSET if boa_offset else 0
    bands: dict[str, np.ndarray] = {}
    for i, (key, _, res, _, _) in enumerate(S2_BANDS):
        refl = toa[i] if res == 10 else block_mean(toa[i])
        nod = sky.nodata if res == 10 else sky.nodata[::2, ::2]
        dn = np.clip(np.round(refl * 10_000) + add, 1, 65_535).astype(np.uint16)
        dn[nod] = NODATA
        bands[key] = dn
    scl = scene_classification(lc, clear, sky)
    return S2Scene(doy, bands, scl, _stats(scl))


def scene_classification(lc: LandCover, clear: np.ndarray, sky: Sky) -> np.ndarray:
    """A Sen2Cor-like SCL on the 20 m grid: (size/2, size/2) uint8."""
    # like Sen2Cor's dilated masks: a 20 m pixel is as cloudy as its cloudiest 10 m part
    cloud, cirrus = _block_max(sky.cloud), _block_max(sky.cirrus)
    shadow = block_mean(sky.shadow)
    red, nir = block_mean(clear[RED]), block_mean(clear[NIR])
    ndvi = (nir - red) / np.maximum(nir + red, 1e-6)
    water = block_mean((lc.classes == WATER).astype(np.float32)) >= 0.5
    scl = np.where(ndvi > 0.4, SCL_VEG, SCL_SOIL).astype(np.uint8)
    scl[water] = SCL_WATER
    scl[(shadow > 0.4) & (cloud < 0.2)] = SCL_SHADOW
    scl[(cirrus > 0.06) & (cloud < 0.2)] = SCL_CIRRUS
    scl[cloud >= 0.2] = SCL_CLOUD_MED
    scl[cloud >= 0.6] = SCL_CLOUD_HIGH
    scl[sky.nodata[::2, ::2]] = SCL_NODATA
    return scl


def _block_max(a: np.ndarray) -> np.ndarray:
    h, w = a.shape
    return a.reshape(h // 2, 2, w // 2, 2).max(axis=(1, 3))


def _stats(scl: np.ndarray) -> dict[str, float]:
    """Percentages as Earth Search reports them (of valid pixels, nodata of all)."""
    valid = scl != SCL_NODATA
    n = max(int(valid.sum()), 1)
    pct = lambda *codes: round(100.0 * float(np.isin(scl[valid], codes).sum()) / n, 4)  # noqa: E731
    return {
        "eo:cloud_cover": pct(SCL_CLOUD_MED, SCL_CLOUD_HIGH, SCL_CIRRUS),
        "s2:nodata_pixel_percentage": round(100.0 * float((~valid).mean()), 4),
        "s2:cloud_shadow_percentage": pct(SCL_SHADOW),
        "s2:vegetation_percentage": pct(SCL_VEG),
        "s2:not_vegetated_percentage": pct(SCL_SOIL),
        "s2:water_percentage": pct(SCL_WATER),
        "s2:high_proba_clouds_percentage": pct(SCL_CLOUD_HIGH),
        "s2:medium_proba_clouds_percentage": pct(SCL_CLOUD_MED),
        "s2:thin_cirrus_percentage": pct(SCL_CIRRUS),
    }
