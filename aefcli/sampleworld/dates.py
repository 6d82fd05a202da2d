"""Acquisition dates: Sentinel-2 irregular on a 5-day revisit, Sentinel-1 regular on its own orbit."""

from __future__ import annotations

import datetime as dt

import numpy as np

from aefcli.sampleworld.noise import stream

S2_REVISIT_DAYS = 5
# Local solar times of the overpasses: S2 descending ~10:30, S1 ascending ~17:50.
S2_LOCAL_HOUR = 10.5
S1_LOCAL_HOUR = 17.83
# Processing baseline 04.00 (from 2022-01-25) adds 1000 to L2A digital numbers.
BOA_OFFSET_FROM = dt.date(2022, 1, 25)


def days_in_year(year: int) -> int:
    return (dt.date(year + 1, 1, 1) - dt.date(year, 1, 1)).days


def s2_days(year: int, n: int, seed: int) -> np.ndarray:
    """Day-of-year (1-based, int) of `n` S2 acquisitions, sorted, irregular.

    The year is cut into n equal strata and one revisit-grid day is drawn in each,
    so spacing varies (gaps up to two strata, like cloudy spells that lose scenes)
    while every season is sampled. Returns (n,) int.
    """
    rng = stream(seed, "s2-dates")
    total = days_in_year(year)
    grid = np.arange(1 + rng.integers(0, S2_REVISIT_DAYS), total + 1, S2_REVISIT_DAYS)
    edges = np.linspace(1, total + 1, n + 1)
    days = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        choices = grid[(grid >= lo) & (grid < hi)]
        if choices.size == 0:  # more dates than revisits: any day of the stratum
            choices = np.arange(int(np.ceil(lo)), int(np.ceil(hi)))
        days.append(int(rng.choice(choices)))
    return np.asarray(days, dtype=int)


def s1_days(year: int, n: int) -> np.ndarray:
    """Day-of-year of `n` S1 acquisitions: a regular orbit cycle, half a cycle off the S2 strata.

    Returns (n,) int, sorted, unique.
    """
    total = days_in_year(year)
    step = total / n
    return np.unique(np.floor(1 + step / 2 + step * np.arange(n)).astype(int)).clip(1, total)


def to_datetime(year: int, doy: int, local_hour: float, longitude: float, jitter_s: int = 0) -> dt.datetime:
    """UTC time of an overpass at `local_hour` local solar time over `longitude` degrees."""
    utc_hour = local_hour - longitude / 15.0
    base = dt.datetime(year, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(days=int(doy) - 1)
    return base + dt.timedelta(seconds=int(round(utc_hour * 3600)) + jitter_s)


def processing_baseline(date: dt.date) -> str:
    """The S2 L2A processing baseline in force on `date` (Earth Search `s2:processing_baseline`)."""
    if date >= dt.date(2024, 7, 23):
        return "05.11"
    if date >= dt.date(2023, 12, 13):
        return "05.10"
    if date >= dt.date(2022, 12, 6):
        return "05.09"
    if date >= BOA_OFFSET_FROM:
        return "04.00"
    if date >= dt.date(2021, 3, 30):
        return "03.00"
    return "02.14"


def has_boa_offset(date: dt.date) -> bool:
    """Whether L2A digital numbers carry the +1000 offset (baseline >= 04.00)."""
    return date >= BOA_OFFSET_FROM
