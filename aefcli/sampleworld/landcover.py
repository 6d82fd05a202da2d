"""The land-cover map: Voronoi field parcels, a forest, a village, a river and roads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aefcli.sampleworld.classes import BY_NAME, CLASSES, CROPS
from aefcli.sampleworld.noise import smooth_field, stream

FIELD_PX = 22  # typical parcel diameter in 10 m pixels (~5 ha fields)
WATER, BUILT, ROAD, FOREST, GRASS = (BY_NAME[n].id for n in ("water", "built-up", "road", "forest", "grassland"))


@dataclass(frozen=True)
class LandCover:
    """The static world. Pixel arrays are (size, size); parcel arrays are (n_parcels,).

    A parcel is a unit of management: one class and one set of phenological
    parameters (every forest stand, the village, the river are parcels too).
    """

    classes: np.ndarray  # uint8 class id per pixel (see classes.CLASSES)
    parcels: np.ndarray  # int32 parcel index per pixel
    parcel_class: np.ndarray  # uint8
    shift: np.ndarray  # float32 days added to the class phenology dates
    vigour: np.ndarray  # float32 multiplier of the seasonal NDVI amplitude
    brightness: np.ndarray  # float32 multiplier of the background reflectance
    roughness: np.ndarray  # float32 dB added to the S1 background
    cuts: np.ndarray  # (n_parcels, 2) float32 grass mowing DOYs, NaN = none
    texture: np.ndarray  # float32 (size, size) static within-field variability, ~N(0, 1)


def _voronoi(rng: np.random.Generator, size: int) -> np.ndarray:
    """Cell index per pixel of a Voronoi tessellation stretched along x (elongated fields)."""
    from scipy.spatial import cKDTree

    n = max(12, int(round((size / FIELD_PX) ** 2)))
    seeds = rng.uniform(0, size, (n, 2))
    stretch = np.array([1.0, 0.6])  # (row, col) weights: fields longer east-west
    yy, xx = np.mgrid[0:size, 0:size]
    grid = np.stack([yy.ravel(), xx.ravel()], axis=1) + 0.5
    _, idx = cKDTree(seeds * stretch).query(grid * stretch)
    return idx.reshape(size, size).astype(np.int32)


def _river(rng: np.random.Generator, size: int) -> tuple[np.ndarray, float]:
    """A meandering north-south river; returns its mask and its mean column."""
    rows = np.arange(size) + 0.5
    x0 = rng.uniform(0.2, 0.8) * size
    amp, wavelength = rng.uniform(0.04, 0.08) * size, rng.uniform(0.6, 1.1) * size
    centre = x0 + amp * np.sin(2 * np.pi * rows / wavelength + rng.uniform(0, 2 * np.pi))
    centre += 0.3 * amp * np.sin(2 * np.pi * rows / (wavelength / 3.1) + rng.uniform(0, 2 * np.pi))
    half_width = max(1.6, size / 90)
    cols = np.arange(size)[None, :] + 0.5
    return np.abs(cols - centre[:, None]) < half_width, x0


def _roads(rng: np.random.Generator, size: int, avoid_col: float) -> tuple[np.ndarray, tuple[float, float]]:
    """One east-west and one north-south road (2 px wide); returns mask and crossing (row, col)."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    row = rng.uniform(0.3, 0.7) * size
    col = (avoid_col + rng.uniform(0.25, 0.45) * size * rng.choice([-1, 1])) % size
    slope_r, slope_c = rng.uniform(-0.15, 0.15, 2)
    ew = np.abs(yy - (row + slope_r * (xx - col))) < 1.0
    ns = np.abs(xx - (col + slope_c * (yy - row))) < 1.0
    return ew | ns, (row, col)


def make_landcover(size: int, seed: int) -> LandCover:
    """Draw the world's land cover for a grid of size x size pixels (10 m)."""
    rng = stream(seed, "landcover")
    cells = _voronoi(rng, size)
    classes = np.zeros((size, size), dtype=np.uint8)

    # forest: the high part of a smooth field tilted towards one corner
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size
    corner = rng.integers(0, 2, 2)
    tilt = 1.2 - np.hypot(yy - corner[0], xx - corner[1])
    forest = smooth_field(rng, (size, size), size / 6) + 2.5 * tilt
    forest_mask = forest > np.quantile(forest, 0.86)

    water_mask, river_col = _river(rng, size)
    road_mask, (road_row, road_col) = _roads(rng, size, river_col)
    ry, rx = np.mgrid[0:size, 0:size] + 0.5
    radius = 0.09 * size * (1 + 0.25 * smooth_field(rng, (size, size), size / 12))
    built_mask = np.hypot(ry - road_row, rx - road_col) < radius

    # Fields on the land left over; the largest cells get one of each crop and
    # grassland so every class exists even in a small world.
    land = ~(forest_mask | water_mask | built_mask | road_mask)
    counts = np.bincount(cells[land], minlength=cells.max() + 1)
    order = np.argsort(-counts, kind="stable")
    field_ids = [c.id for c in CROPS] + [GRASS]
    cell_class = rng.choice(field_ids, size=counts.size, p=_field_weights(len(field_ids)))
    cell_class[order[: len(field_ids)]] = field_ids
    classes[:] = cell_class[cells]
    classes[forest_mask] = FOREST
    classes[built_mask] = BUILT
    classes[water_mask] = WATER
    classes[road_mask] = ROAD

    # parcels = (class, cell) pairs: a forest stand keeps its cell's outline
    key = classes.astype(np.int64) * (cells.max() + 1) + cells
    uniq, inverse = np.unique(key, return_inverse=True)
    parcels = inverse.reshape(size, size).astype(np.int32)
    parcel_class = (uniq // (cells.max() + 1)).astype(np.uint8)
    return LandCover(classes, parcels, parcel_class, *_parcel_traits(stream(seed, "parcels"), parcel_class),
                     texture=_texture(stream(seed, "texture"), size))


def _field_weights(n_fields: int) -> np.ndarray:
    """Crops equally likely; grassland (the last) as likely as two crops together."""
    w = np.ones(n_fields)
    w[-1] = 2.0
    return w / w.sum()


def _parcel_traits(rng: np.random.Generator, parcel_class: np.ndarray) -> tuple[np.ndarray, ...]:
    n = parcel_class.size
    is_crop = np.isin(parcel_class, [c.id for c in CROPS])
    shift = np.where(is_crop, np.clip(rng.normal(0, 6, n), -15, 15), np.clip(rng.normal(0, 3, n), -8, 8))
    vigour = rng.uniform(0.88, 1.04, n)
    brightness = rng.uniform(0.85, 1.15, n)
    roughness = rng.normal(0.0, 1.0, n)
    cuts = np.stack([rng.uniform(135, 165, n), rng.uniform(195, 235, n)], axis=1)
    mown = (parcel_class == GRASS) & (rng.uniform(size=n) < 0.7)  # the rest is grazed
    cuts[~mown] = np.nan
    f32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    return f32(shift), f32(vigour), f32(brightness), f32(roughness), f32(cuts)


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """Within-field variability: soil patches (smooth) plus pixel-scale noise."""
    t = 0.7 * smooth_field(rng, (size, size), 4) + 0.7 * rng.standard_normal((size, size))
    return (t / t.std()).astype(np.float32)


def class_fractions(lc: LandCover) -> dict[str, float]:
    """Share of pixels per class name (for reports and tests)."""
    counts = np.bincount(lc.classes.ravel(), minlength=len(CLASSES) + 1) / lc.classes.size
    return {c.name: float(counts[c.id]) for c in CLASSES}
