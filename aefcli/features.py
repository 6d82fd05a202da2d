"""`aef features`: designed-feature baselines written in the embedding cube format.

Kinds (all from the valid observations of an ingested cube within a period):
- ``median``: per-band median of valid S2 pixels (the annual composite); bands ``B04_median``.
- ``monthly``: per calendar month of the period, the median of valid S2 and S1
  pixels, months without any valid pixel linearly interpolated in time from the
  neighbouring months (held constant beyond the first / last valid month);
  bands ``B04_m01`` .. (m01 = the period's first month).
- ``monthly-smooth``: ``monthly`` followed by a NaN-aware 3 x 3 spatial mean,
  the strongest simple baseline on real crop patches.

Values are in physical units (reflectance, dB): the cube reader's standardised
values are mapped back with the cube's own statistics before any statistic.
Written chunk by chunk, resumable, NaN where a pixel never had a valid observation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aefcli import __version__, console
from aefcli.errors import DataError, InputError
from aefcli.parse import Period, parse_period

KINDS = ("median", "monthly", "monthly-smooth")
MONTHLY_SOURCES = ("s2", "s1")


@dataclass(frozen=True)
class FeaturesConfig:
    """Validated options of `aef features`. chunk: output tile in pixels (memory ~ frames x bands x chunk^2 x 4 B)."""

    cube: Path
    period: Period
    kind: str
    out: Path
    chunk: int = 128
    overwrite: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InputError(f"--kind must be one of {', '.join(KINDS)}, not {self.kind!r}.")
        if isinstance(self.period, str):
            object.__setattr__(self, "period", parse_period(self.period))
        if self.chunk < 8:
            raise InputError(f"--chunk must be at least 8 pixels, not {self.chunk}.")


def month_edges(period: Period) -> np.ndarray:
    """Calendar-month bin edges (datetime64[ns]) covering [start, end): first = start, last = end."""
    start = period.start.astype("datetime64[M]")
    months = np.arange(start, period.end.astype("datetime64[M]") + 1).astype("datetime64[ns]")
    edges = np.concatenate([[period.start], months[(months > period.start) & (months < period.end)], [period.end]])
    return edges


def median_composite(z: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per-band median over time of valid observations. z (T, C, h, w), valid (T, h, w) -> (C, h, w), NaN if none."""
    if z.shape[0] == 0:
        return np.full(z.shape[1:], np.nan, np.float32)
    masked = np.where(valid[:, None], z, np.nan)
    with np.errstate(all="ignore"), _quiet():
        return np.nanmedian(masked, axis=0).astype(np.float32)


def interpolate_gaps(series: np.ndarray) -> np.ndarray:
    """Fill NaN along axis 0 linearly between valid steps, constant beyond the ends. (M, ...) -> (M, ...)."""
    m = series.shape[0]
    flat = series.reshape(m, -1)
    out = flat.copy()
    ok = np.isfinite(flat)
    t = np.arange(m, dtype=np.float32)
    for j in np.flatnonzero(~ok.all(axis=0) & ok.any(axis=0)):
        good = ok[:, j]
        out[:, j] = np.interp(t, t[good], flat[good, j])
    return out.reshape(series.shape)


def nan_mean_3x3(x: np.ndarray) -> np.ndarray:
    """NaN-aware 3 x 3 mean over the last two axes (edges use the pixels that exist). (..., h, w) -> same."""
    ok = np.isfinite(x)
    v = np.pad(np.where(ok, x, 0.0), [(0, 0)] * (x.ndim - 2) + [(1, 1), (1, 1)])
    n = np.pad(ok.astype(np.float32), [(0, 0)] * (x.ndim - 2) + [(1, 1), (1, 1)])
    h, w = x.shape[-2:]
    s = sum(v[..., i:i + h, j:j + w] for i in range(3) for j in range(3))
    c = sum(n[..., i:i + h, j:j + w] for i in range(3) for j in range(3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c > 0, s / np.maximum(c, 1), np.nan).astype(np.float32)


class _quiet:
    """Silence numpy's 'All-NaN slice' warnings: empty months are expected."""

    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)


def feature_bands(cube, kind: str, period: Period) -> list[tuple[str, str]]:
    """(source, output band name) per output band, in order."""
    if "s2" not in cube.sources:
        raise DataError(f"cube {cube.path} has no s2 source; designed features need Sentinel-2.")
    if kind == "median":
        return [("s2", f"{b}_median") for b in cube.bands["s2"]]
    n_months = len(month_edges(period)) - 1
    return [(s, f"{b}_m{m + 1:02d}") for s in MONTHLY_SOURCES if s in cube.sources
            for m in range(n_months) for b in cube.bands[s]]


def compute_block(cube, kind: str, period: Period, rows: slice, cols: slice) -> np.ndarray:
    """Features of one window: (h, w, nbands) float32 physical units, NaN = never valid."""
    from aefcli.normalise import destandardise

    halo = 1 if kind == "monthly-smooth" else 0
    r = slice(rows.start - halo, rows.stop + halo)
    c = slice(cols.start - halo, cols.stop + halo)
    parts = []
    sources = ("s2",) if kind == "median" else tuple(s for s in MONTHLY_SOURCES if s in cube.sources)
    for source in sources:
        win = cube.read_window(source, r, c, period=(period.start, period.end))
        # back to physical units before any statistic: the median of an even count and the
        # interpolation are then those of reflectance / dB, not of their log
        phys = destandardise(win.values, cube.norm[source].select(cube.bands[source]), axis=1)  # (T, C, h, w)
        if kind == "median":
            parts.append(median_composite(phys, win.valid))
            continue
        edges = month_edges(period)
        months = np.stack([median_composite(phys[sel], win.valid[sel]) for sel in
                           ((win.times >= a) & (win.times < b) for a, b in zip(edges[:-1], edges[1:]))])  # (M, C, h, w)
        months = interpolate_gaps(months)
        if kind == "monthly-smooth":
            months = nan_mean_3x3(months)
        parts.append(months.reshape(-1, *months.shape[2:]))  # band order: month-major, then band
    feats = np.concatenate(parts, axis=0)
    if halo:
        feats = feats[:, halo:-halo, halo:-halo]
    return np.ascontiguousarray(np.moveaxis(feats, 0, -1), dtype=np.float32)


def run(cfg: FeaturesConfig) -> dict:
    """Write the feature cube (resuming a half-written one). Returns a summary dict."""
    from aefcli.io import embedding_store as es
    from aefcli.io.cube import open_cube

    t0 = time.perf_counter()
    cube = open_cube(cfg.cube)
    bands = feature_bands(cube, cfg.kind, cfg.period)
    if not len(cube.frame_indices("s2", (cfg.period.start, cfg.period.end))):
        raise DataError(f"cube {cfg.cube} has no S2 frame in {cfg.period}; choose a period inside {cube.attrs.get('period')}.")
    attrs = {"kind": "features", "features": cfg.kind, "period": str(cfg.period), "cube": str(cfg.cube),
             "model": None, "aef_version": __version__, "command": f"aef features --kind {cfg.kind}"}
    es.create_store(cfg.out, cube.geobox, [name for _, name in bands], "float32", cfg.chunk, attrs, overwrite=cfg.overwrite)
    ny, nx = cube.geobox.shape.yx
    done = es.chunk_done(cfg.out)
    todo = [(i, j) for i in range(-(-ny // cfg.chunk)) for j in range(-(-nx // cfg.chunk)) if (i, j) not in done]
    for i, j in console.progress(todo, total=len(todo), desc="features", unit="chunk"):
        r0, c0 = i * cfg.chunk, j * cfg.chunk
        rows, cols = slice(r0, min(r0 + cfg.chunk, ny)), slice(c0, min(c0 + cfg.chunk, nx))
        es.write_block(cfg.out, compute_block(cube, cfg.kind, cfg.period, rows, cols), r0, c0)
    seconds = time.perf_counter() - t0
    es.mark_complete(cfg.out, {"seconds": round(seconds, 3)})
    return {"out": str(cfg.out), "kind": cfg.kind, "bands": len(bands), "shape": [int(ny), int(nx)],
            "chunks_written": len(todo), "chunks_resumed": len(done), "seconds": round(seconds, 3)}
