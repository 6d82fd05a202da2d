"""The sample world's land-cover classes: names, colours, phenology, spectra, backscatter.

One table; every other module of the sample world reads its numbers from here.
Reflectances are surface reflectance (unitless, 0..1) in the band order of
`S2_BANDS`; backscatter is sigma0 in dB. Values are typical of temperate
Western European farmland (orders of magnitude from the S2 L2A / S1 GRD
literature and the WorldCereal Flanders patch in ../shared/data).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# (STAC asset key as on Earth Search v1, S2 band name, resolution m, centre wavelength um, FWHM um)
S2_BANDS: tuple[tuple[str, str, int, float, float], ...] = (
    ("blue", "B02", 10, 0.490, 0.098),
    ("green", "B03", 10, 0.560, 0.045),
    ("red", "B04", 10, 0.665, 0.038),
    ("rededge1", "B05", 20, 0.704, 0.019),
    ("rededge2", "B06", 20, 0.740, 0.018),
    ("rededge3", "B07", 20, 0.783, 0.028),
    ("nir", "B08", 10, 0.842, 0.145),
    ("nir08", "B8A", 20, 0.865, 0.033),
    ("swir16", "B11", 20, 1.610, 0.143),
    ("swir22", "B12", 20, 2.190, 0.242),
)
RED, NIR = 2, 6  # indices into S2_BANDS for NDVI
S1_BANDS: tuple[str, ...] = ("vv", "vh")


@dataclass(frozen=True)
class Phenology:
    """NDVI over the day of year (DOY, 1..366) as a double logistic with a harvest.

    kind: "spring" (sown this year, bare before), "winter" (sown last autumn, green
    over winter, re-sown at `sowing` after harvest) or "perennial" (no harvest).
    base: NDVI before green-up (bare soil for spring crops, winter cover otherwise);
    green_up / senescence: DOY of the half rise / half decline, widths rise / fall days;
    harvest: DOY from which the field is bare soil (NDVI `SOIL_NDVI`).
    """

    kind: str
    sowing: int
    green_up: int
    senescence: int
    harvest: int | None
    base: float
    peak: float
    senesced: float
    rise: float
    fall: float


@dataclass(frozen=True)
class LandClass:
    """One class of the world. `fixed_fv`: vegetation fraction of classes without phenology."""

    id: int
    name: str
    colour: tuple[int, int, int]
    phenology: Phenology | None
    veg: tuple[float, ...]  # green end-member reflectance per S2 band
    ground: tuple[float, ...]  # background end-member (soil, litter, tarmac, water)
    fixed_fv: float
    s1_ground: tuple[float, float]  # (VV, VH) dB of the background
    s1_veg: tuple[float, float]  # (VV, VH) dB of a full canopy
    crop: bool = False


SOIL_NDVI = 0.15
SOIL = (0.070, 0.100, 0.140, 0.160, 0.170, 0.180, 0.190, 0.200, 0.300, 0.250)
CROP_LEAF = (0.025, 0.070, 0.025, 0.100, 0.300, 0.400, 0.460, 0.470, 0.210, 0.090)
GRASS_LEAF = (0.030, 0.080, 0.035, 0.110, 0.290, 0.370, 0.400, 0.420, 0.240, 0.120)
THATCH = (0.060, 0.090, 0.110, 0.140, 0.180, 0.210, 0.230, 0.250, 0.320, 0.240)
CANOPY = (0.020, 0.045, 0.020, 0.070, 0.220, 0.300, 0.330, 0.350, 0.150, 0.065)
LITTER = (0.040, 0.060, 0.070, 0.100, 0.150, 0.170, 0.190, 0.200, 0.200, 0.130)
WATER = (0.060, 0.065, 0.045, 0.035, 0.025, 0.020, 0.015, 0.013, 0.006, 0.004)
ROOFS = (0.110, 0.125, 0.140, 0.160, 0.175, 0.185, 0.195, 0.205, 0.250, 0.230)
TARMAC = (0.080, 0.090, 0.100, 0.110, 0.115, 0.120, 0.125, 0.130, 0.150, 0.140)
CLOUD = (0.500, 0.490, 0.480, 0.480, 0.490, 0.500, 0.510, 0.510, 0.380, 0.260)
SOIL_S1 = (-12.0, -21.0)

CLASSES: tuple[LandClass, ...] = (
    LandClass(1, "maize", (255, 211, 0), Phenology("spring", 120, 170, 262, 282, 0.16, 0.86, 0.45, 9, 7),
              CROP_LEAF, SOIL, 0.0, SOIL_S1, (-9.5, -14.5), crop=True),
    LandClass(2, "winter wheat", (166, 112, 0), Phenology("winter", 290, 85, 178, 208, 0.40, 0.85, 0.28, 10, 7),
              CROP_LEAF, SOIL, 0.0, SOIL_S1, (-12.5, -18.0), crop=True),
    LandClass(3, "sugar beet", (168, 0, 226), Phenology("spring", 95, 160, 288, 298, 0.15, 0.88, 0.70, 12, 6),
              CROP_LEAF, SOIL, 0.0, SOIL_S1, (-9.0, -14.0), crop=True),
    LandClass(4, "potato", (112, 38, 0), Phenology("spring", 105, 150, 215, 245, 0.17, 0.84, 0.30, 8, 7),
              CROP_LEAF, SOIL, 0.0, SOIL_S1, (-9.5, -15.0), crop=True),
    LandClass(5, "rapeseed", (209, 255, 0), Phenology("winter", 240, 65, 150, 192, 0.55, 0.82, 0.30, 10, 8),
              CROP_LEAF, SOIL, 0.0, SOIL_S1, (-10.0, -15.0), crop=True),
    LandClass(6, "grassland", (147, 204, 147), Phenology("perennial", 0, 90, 285, None, 0.55, 0.82, 0.55, 15, 15),
              GRASS_LEAF, THATCH, 0.0, (-11.0, -19.0), (-11.0, -17.0)),
    LandClass(7, "forest", (20, 110, 40), Phenology("perennial", 0, 118, 292, None, 0.50, 0.87, 0.50, 8, 10),
              CANOPY, LITTER, 0.0, (-8.0, -13.5), (-7.5, -12.5)),
    LandClass(8, "water", (40, 110, 220), None, CROP_LEAF, WATER, 0.0, (-22.0, -28.5), (-22.0, -28.5)),
    LandClass(9, "built-up", (200, 60, 60), None, GRASS_LEAF, ROOFS, 0.20, (-3.0, -10.0), (-3.0, -10.0)),
    LandClass(10, "road", (90, 90, 90), None, GRASS_LEAF, TARMAC, 0.08, (-16.0, -24.0), (-16.0, -24.0)),
)
BY_NAME = {c.name: c for c in CLASSES}
CROPS = tuple(c for c in CLASSES if c.crop)
NODATA_CLASS = 0


def class_names() -> dict[int, str]:
    """Class id -> readable name (0 is nodata and not listed)."""
    return {c.id: c.name for c in CLASSES}


def table(field: str) -> np.ndarray:
    """A per-class lookup array indexed by class id (row 0 = nodata, zeros).

    field: "veg" or "ground" -> (n_classes + 1, 10) float32 reflectance;
    "s1_ground" or "s1_veg" -> (n_classes + 1, 2) float32 dB; "fixed_fv" -> (n_classes + 1,).
    """
    rows = [getattr(c, field) for c in CLASSES]
    first = np.asarray(rows[0], dtype=np.float32)
    out = np.zeros((len(CLASSES) + 1, *first.shape), dtype=np.float32)
    for c, row in zip(CLASSES, rows):
        out[c.id] = row
    return out
