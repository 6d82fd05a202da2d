"""Parsing of user-facing bbox and period strings, shared by ingest, embed and the others.

Bboxes are WGS84 ``W,S,E,N`` (degrees); periods are ISO ``start/end``, end exclusive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aefcli.errors import InputError


@dataclass(frozen=True)
class BBox:
    """WGS84 lon/lat box in degrees, west < east, south < north."""

    west: float
    south: float
    east: float
    north: float

    def __post_init__(self) -> None:
        w, s, e, n = self.west, self.south, self.east, self.north
        if not all(np.isfinite([w, s, e, n])):
            raise InputError(f"bbox {self.as_list()} has non-finite values")
        if not (-180 <= w <= 180 and -180 <= e <= 180 and -90 <= s <= 90 and -90 <= n <= 90):
            raise InputError(f"bbox {self.as_list()} is out of range; expected lon in [-180, 180], lat in [-90, 90] (W,S,E,N)")
        if w >= e or s >= n:
            raise InputError(f"bbox {self.as_list()} is reversed or empty; expected W,S,E,N with W < E and S < N")

    def as_list(self) -> list[float]:
        return [self.west, self.south, self.east, self.north]

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.west + self.east) / 2, (self.south + self.north) / 2)


def parse_bbox(text: str | list | tuple) -> BBox:
    """"W,S,E,N" (or a 4-sequence) -> BBox; InputError with the reason."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    if len(parts) != 4:
        raise InputError(f"bbox {text!r} must have four numbers W,S,E,N (WGS84 degrees)")
    try:
        values = [float(p) for p in parts]
    except (TypeError, ValueError):
        raise InputError(f"bbox {text!r} must have four numbers W,S,E,N (WGS84 degrees)") from None
    return BBox(*values)


@dataclass(frozen=True)
class Period:
    """[start, end) as datetime64[ns] UTC."""

    start: np.datetime64
    end: np.datetime64

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", np.datetime64(self.start, "ns"))
        object.__setattr__(self, "end", np.datetime64(self.end, "ns"))
        if self.end <= self.start:
            raise InputError(f"period {self} is reversed or empty; end must be after start (end exclusive)")

    def __str__(self) -> str:
        return f"{_iso(self.start)}/{_iso(self.end)}"

    def stac_datetime(self) -> str:
        """For STAC searches: an inclusive interval that ends 1 ms before `end`."""
        last = self.end - np.timedelta64(1, "ms")
        return f"{np.datetime_as_string(self.start, unit='ms')}Z/{np.datetime_as_string(last, unit='ms')}Z"

    def contains(self, t) -> bool:
        t = np.datetime64(t, "ns")
        return bool(self.start <= t < self.end)


def _iso(t: np.datetime64) -> str:
    s = np.datetime_as_string(t, unit="s")
    return s[:10] if s.endswith("T00:00:00") else s


def _parse_time(text: str, whole: str) -> np.datetime64:
    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1]
    if "+" in t[10:]:
        t = t[: 10 + t[10:].index("+")]
    try:
        return np.datetime64(t, "ns")
    except ValueError:
        raise InputError(f"period {whole!r}: cannot read {text!r} as an ISO date; expected e.g. 2024-01-01/2025-01-01") from None


def parse_period(text: str) -> Period:
    """"start/end" ISO dates or datetimes (UTC), end exclusive -> Period; InputError with the reason."""
    if not isinstance(text, str) or text.count("/") != 1:
        raise InputError(f"period {text!r} must be ISO start/end, e.g. 2024-01-01/2025-01-01 (end exclusive)")
    start, end = text.split("/")
    return Period(_parse_time(start, text), _parse_time(end, text))


def parse_weights(text: str | None, option: str = "--source-weights") -> dict[str, float]:
    """'s1=0.25,s2=1' -> {'s1': 0.25, 's2': 1.0}; None or '' -> {}. Weights must be > 0."""
    out: dict[str, float] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = float("nan")
        if not sep or not name.strip() or not weight > 0:
            raise InputError(f"{option} takes NAME=WEIGHT pairs with weights > 0, such as s1=0.25,s2=1; got {item!r}")
        out[name.strip()] = weight
    return out
