"""The one table of sources, bands, STAC asset keys and cloud masks.

A *source* is a cube group (``s2``, ``s1``, ``landsat``); a *collection* is a
STAC collection id at some provider. Canonical band names (``B02`` ...) are
what the cube and the model see; asset keys differ per provider (Earth Search
``red`` vs Planetary Computer ``B04``), so each band lists the keys to try.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aefcli.errors import InputError


@dataclass(frozen=True)
class SourceSpec:
    """How one source is loaded and cleaned.

    bands: canonical names, in cube order; assets: canonical -> asset keys to try.
    mask: canonical name of the class band (SCL / QA) or None; it is loaded with
    nearest resampling and never stored as a band.
    scale: default DN -> physical scale when an asset declares none.
    """

    name: str
    kind: str  # "optical" | "sar"
    transform: str  # aefcli.normalise transform: "log" | "identity"
    bands: tuple[str, ...]
    assets: dict[str, tuple[str, ...]]
    mask: str | None
    scale: float
    offset: float = 0.0
    nodata: float | None = 0


S2 = SourceSpec(
    name="s2", kind="optical", transform="log",
    bands=("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"),
    assets={
        "B02": ("blue", "B02"), "B03": ("green", "B03"), "B04": ("red", "B04"), "B05": ("rededge1", "B05"),
        "B06": ("rededge2", "B06"), "B07": ("rededge3", "B07"), "B08": ("nir", "B08"), "B8A": ("nir08", "B8A"),
        "B11": ("swir16", "B11"), "B12": ("swir22", "B12"), "SCL": ("scl", "SCL"),
    },
    mask="SCL", scale=1e-4,
)
S1 = SourceSpec(
    name="s1", kind="sar", transform="identity", bands=("VV", "VH"),
    assets={"VV": ("vv", "VV"), "VH": ("vh", "VH")}, mask=None, scale=1.0,
)
LANDSAT = SourceSpec(
    name="landsat", kind="optical", transform="log",
    bands=("blue", "green", "red", "nir08", "swir16", "swir22"),
    assets={"blue": ("blue", "SR_B2"), "green": ("green", "SR_B3"), "red": ("red", "SR_B4"), "nir08": ("nir08", "SR_B5"),
            "swir16": ("swir16", "SR_B6"), "swir22": ("swir22", "SR_B7"), "QA": ("qa_pixel", "QA_PIXEL")},
    mask="QA", scale=2.75e-5, offset=-0.2,
)
SOURCES: dict[str, SourceSpec] = {s.name: s for s in (S2, S1, LANDSAT)}

# Sentinel-2 Scene Classification (Sen2Cor): usable = 2 dark area, 4 vegetation,
# 5 not vegetated, 6 water, 7 unclassified. Invalid: 0 nodata, 1 saturated/defective,
# 3 cloud shadow, 8/9 cloud medium/high probability, 10 thin cirrus, 11 snow/ice.
SCL_VALID = (2, 4, 5, 6, 7)
# Landsat C2 QA_PIXEL bits that make a pixel unusable: 0 fill, 1 dilated cloud,
# 2 cirrus, 3 cloud, 4 cloud shadow, 5 snow.
QA_INVALID_BITS = 0b111111

# Processing baseline 04.00 (from 2022-01-25) added BOA_ADD_OFFSET = -1000 DN.
S2_OFFSET_BASELINE = 4.0
S2_OFFSET_FROM = np.datetime64("2022-01-25", "ns")
S2_BOA_ADD_OFFSET = -1000

# collection id -> source; aliases per provider (a URL containing the key picks it).
COLLECTION_SOURCE = {
    "sentinel-2-l2a": "s2", "sentinel-2-c1-l2a": "s2",
    "sentinel-1-grd": "s1", "sentinel-1-rtc": "s1",
    "landsat-c2-l2": "landsat",
}
ALIASES = {
    "planetarycomputer": {"s2": "sentinel-2-l2a", "s1": "sentinel-1-rtc", "landsat": "landsat-c2-l2"},
    "default": {"s2": "sentinel-2-l2a", "s1": "sentinel-1-grd", "landsat": "landsat-c2-l2"},
}


def transform_for(source: str) -> str:
    """The value transform of a source ("log" optical, "identity" SAR dB)."""
    return spec(source).transform


def spec(source: str) -> SourceSpec:
    if source not in SOURCES:
        raise InputError(f"unknown source {source!r}; known: {sorted(SOURCES)}")
    return SOURCES[source]


def resolve_collections(names: list[str] | tuple[str, ...], stac: str) -> dict[str, str]:
    """Collection ids or aliases -> {source: collection id}; InputError names an unknown one."""
    provider = next((p for p in ALIASES if p != "default" and p in stac.lower()), "default")
    out: dict[str, str] = {}
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        coll = ALIASES[provider].get(name.lower(), name)
        source = COLLECTION_SOURCE.get(coll)
        if source is None:
            known = sorted(set(COLLECTION_SOURCE) | set(ALIASES["default"]))
            raise InputError(f"unknown collection {name!r}; use one of {', '.join(known)}")
        if source in out:
            raise InputError(f"collections {out[source]!r} and {coll!r} both give source {source}; pick one")
        out[source] = coll
    if not out:
        raise InputError("no collection given; use e.g. --collections s2,s1")
    return out


def asset_key(source: SourceSpec, band: str, available) -> str | None:
    """The first asset key of `band` present in `available` (an item's asset keys), or None."""
    return next((k for k in source.assets[band] if k in available), None)


def valid_from_mask(source: SourceSpec, mask: np.ndarray) -> np.ndarray:
    """Usable-pixel mask from the class band (SCL or QA_PIXEL values), bool, same shape."""
    if source.mask == "SCL":
        return np.isin(mask, SCL_VALID)
    if source.mask == "QA":
        m = np.nan_to_num(np.asarray(mask, dtype=np.float64), nan=1).astype(np.int64)
        return (m & QA_INVALID_BITS) == 0
    return np.ones(np.shape(mask), dtype=bool)


def s2_offset(properties: dict, when: np.datetime64) -> float:
    """BOA_ADD_OFFSET in DN for a Sentinel-2 L2A item: -1000 from processing baseline 04.00, else 0.

    Uses `s2:processing_baseline` when present, else the date (baseline 04.00 from 2022-01-25).
    """
    baseline = properties.get("s2:processing_baseline")
    if baseline is not None:
        try:
            return float(S2_BOA_ADD_OFFSET) if float(baseline) >= S2_OFFSET_BASELINE else 0.0
        except ValueError:
            pass
    return float(S2_BOA_ADD_OFFSET) if np.datetime64(when, "ns") >= S2_OFFSET_FROM else 0.0
