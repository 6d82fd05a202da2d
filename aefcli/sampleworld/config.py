"""The sample world's parameters (validated at construction) and its UTM grid."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from aefcli.errors import InputError

PIXEL_M = 10.0  # the 10 m grid of S2 B02/B03/B04/B08 and of S1
# Scene centre in every UTM zone: on the central meridian at ~50.8 N (or ~50.8 S,
# 10 000 km false northing), i.e. Flanders-like farmland for the default EPSG:32631.
CENTRE_EASTING = 500_000.0
CENTRE_NORTHING = 5_630_000.0
CENTRE_NORTHING_SOUTH = 10_000_000.0 - CENTRE_NORTHING
MIN_SIZE, MAX_SIZE = 64, 8192
MAX_DATES = 365
_UTM = re.compile(r"^EPSG:(32[67])(\d\d)$")


@dataclass(frozen=True)
class WorldConfig:
    """What `aef sample-world` builds; every field is checked at construction.

    size: pixels per side of the 10 m grid (20 m bands get size/2); a multiple of 16.
    dates: number of Sentinel-2 acquisitions over the year (Sentinel-1 gets as many).
    seed: the only source of randomness: same config -> byte-identical files.
    year: calendar year of all acquisitions.
    crs: a WGS84 UTM zone, "EPSG:326zz" (north) or "EPSG:327zz" (south).
    labels_per_class: labelled points written per class (fewer if the class is small).
    """

    size: int = 256
    dates: int = 24
    seed: int = 0
    year: int = 2024
    crs: str = "EPSG:32631"
    labels_per_class: int = 30

    def __post_init__(self) -> None:
        if self.size % 16 or not MIN_SIZE <= self.size <= MAX_SIZE:
            raise InputError(
                f"--size {self.size} is not valid: give a multiple of 16 between {MIN_SIZE} and {MAX_SIZE} (e.g. 256)."
            )
        if not 1 <= self.dates <= MAX_DATES:
            raise InputError(f"--dates {self.dates} is not valid: give a number of acquisitions from 1 to {MAX_DATES}.")
        if not 2015 <= self.year <= 2100:
            raise InputError(f"--year {self.year} is not valid: Sentinel-2 data start in 2015; give a year from 2015.")
        if self.seed < 0:
            raise InputError(f"--seed {self.seed} is not valid: give a non-negative integer.")
        if _UTM.match(self.crs.upper()) is None or not 1 <= self.utm_zone <= 60:
            raise InputError(f"--crs {self.crs} is not valid: give a WGS84 UTM zone such as EPSG:32631 or EPSG:32733.")
        if self.labels_per_class < 1:
            raise InputError("labels_per_class must be at least 1.")

    @property
    def epsg(self) -> int:
        return int(self.crs.upper().split(":")[1])

    @property
    def utm_zone(self) -> int:
        return self.epsg % 100

    @property
    def south(self) -> bool:
        return self.epsg // 100 == 327

    @property
    def transform(self) -> tuple[float, float, float, float, float, float]:
        """Affine (a, b, c, d, e, f) of the 10 m grid, north-up, origin on a 20 m multiple."""
        half = self.size * PIXEL_M / 2
        north = CENTRE_NORTHING_SOUTH if self.south else CENTRE_NORTHING
        return (PIXEL_M, 0.0, CENTRE_EASTING - half, 0.0, -PIXEL_M, north + half)

    def geobox(self, pixel_m: float = PIXEL_M) -> Any:
        """The odc-geo GeoBox of the world at `pixel_m` metres (10 or 20)."""
        from affine import Affine
        from odc.geo.geobox import GeoBox

        a, b, c, d, e, f = self.transform
        n = int(round(self.size * PIXEL_M / pixel_m))
        return GeoBox((n, n), Affine(pixel_m, b, c, d, -pixel_m, f), f"EPSG:{self.epsg}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
