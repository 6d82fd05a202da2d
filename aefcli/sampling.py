"""Training samples from ingested cubes: windows, periods, held-out targets, student views.

One training example (AEF recipe):
- a random L x L window of a random cube, kept when enough pixels have a valid observation;
- a random *support period* (the frames the model sees) and a random *valid period*
  [t_s, t_e) inside it (what the embedding summarises);
- a few frames inside the valid period held out as reconstruction targets;
- the teacher sees the other frames of the support period; the student sees a
  perturbed copy: random frames dropped, one whole source dropped, or the first
  or last part of the support period dropped.

A batch is a pure function of (seed, rank, step): every element draws from its own
`numpy.random.default_rng([seed, rank, step, i])`, so a resumed run and any
number of loader workers see exactly the same data as an uninterrupted run.
Windows are read through `Cube.read_window`, never a whole cube.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from aefcli.errors import DataError, InputError
from aefcli.video import stack_frames, to_days, windows_to_video

if TYPE_CHECKING:  # pragma: no cover
    from aefcli.io.cube import Cube, SourceWindow
    from aefcli.normalise import NormStats
    from aefcli.text import TextIndex
    from model.batch import TrainBatch

log = logging.getLogger(__name__)
_DAY = np.timedelta64(86_400, "s")


@dataclass(frozen=True)
class SamplingConfig:
    """How windows and views are drawn.

    window: L, pixels per side; batch_size: windows per step (per rank);
    max_frames: most input frames per source and window (a random, time-ordered subset);
    max_targets: most held-out frames per source and window;
    min_valid: fraction of the window's pixels that need a valid observation;
    period_days: (shortest, longest) support period; min_valid_days: shortest valid period;
    drop_frame_p: chance that the student loses each frame under frame dropout;
    cache_mb: RAM per cube for holding its sources in memory (small cubes: every window a slice);
    profile_targets: 0, or N extra targets per source: the valid period cut into N equal bins,
    each bin's per-pixel median of the window's clear observations, decoded at the bin's middle.
    """

    window: int = 64
    batch_size: int = 8
    max_frames: int = 16
    max_targets: int = 2
    min_valid: float = 0.3
    period_days: tuple[float, float] = (180.0, 365.0)
    min_valid_days: float = 60.0
    drop_frame_p: float = 0.5
    tries: int = 20
    cache_mb: int = 2048
    profile_targets: int = 0

    def __post_init__(self) -> None:
        if self.window < 8:
            raise InputError(f"--window must be at least 8 pixels, got {self.window}")
        if self.batch_size < 1:
            raise InputError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.max_frames < 1 or self.max_targets < 1:
            raise InputError("max_frames and max_targets must be at least 1")
        if not 0 <= self.min_valid <= 1:
            raise InputError(f"min_valid must lie in [0, 1], got {self.min_valid}")
        lo, hi = self.period_days
        if not 0 < lo <= hi:
            raise InputError(f"period_days must satisfy 0 < shortest <= longest, got {self.period_days}")
        if not 0 <= self.drop_frame_p < 1:
            raise InputError(f"drop_frame_p must lie in [0, 1), got {self.drop_frame_p}")
        if self.profile_targets < 0:
            raise InputError(f"--profile-targets must be 0 (off) or more, got {self.profile_targets}")


@dataclass(frozen=True)
class Example:
    """One window's views, before batching. Each dict: source -> SourceWindow (frames, time-ordered)."""

    teacher: dict[str, Any]
    student: dict[str, Any]
    targets: dict[str, Any]
    period: tuple[float, float]  # valid period, days since 1970-01-01
    text: int = -1  # index into the text table, -1 = none


class WindowSampler:
    """Draws training batches from cubes (opened lazily, so it can be sent to loader workers).

    cube_paths: ingested cubes; sources: the model's sources (each must be in at least
    one cube); norm: source -> NormStats used for every cube (the checkpoint's);
    texts: optional per-cube TextIndex and the (N, D) text embedding table.
    """

    def __init__(self, cube_paths: Sequence[str | Path], sources: Sequence[str], norm: dict[str, "NormStats"],
                 cfg: SamplingConfig, seed: int = 0, rank: int = 0,
                 texts: tuple[list["TextIndex"], np.ndarray] | None = None) -> None:
        self.paths = [Path(p) for p in cube_paths]
        self.sources = tuple(sources)
        self.norm = dict(norm)
        self.cfg = cfg
        self.seed, self.rank = int(seed), int(rank)
        self.texts = texts
        self._cubes: list["Cube"] | None = None
        self._weights = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cubes"] = None  # reopened in each worker process
        return state

    @property
    def cubes(self) -> list["Cube"]:
        if self._cubes is None:
            from aefcli.io.cube import open_cube

            self._cubes = [open_cube(p, cache_bytes=self.cfg.cache_mb * 2**20) for p in self.paths]
            self._weights = check_cubes(self._cubes, self.sources, self.cfg.window)
        return self._cubes

    def batch(self, step: int) -> "TrainBatch":
        """The TrainBatch of `step`: teacher / student VideoBatch and held-out target frames."""
        from model.batch import TrainBatch

        examples = [self.example(np.random.default_rng([self.seed, self.rank, step, i])) for i in range(self.cfg.batch_size)]
        periods = [e.period for e in examples]
        text = mask = None
        if self.texts is not None:
            table = self.texts[1]
            mask = np.array([e.text >= 0 for e in examples])
            text = np.stack([table[e.text] if e.text >= 0 else np.zeros(table.shape[1], np.float32) for e in examples])
        teacher = windows_to_video([e.teacher for e in examples], periods, text, mask)
        student = windows_to_video([e.student for e in examples], periods, text, mask)
        names = sorted({n for e in examples for n in e.targets})
        targets = {n: stack_frames([e.targets.get(n) for e in examples], 1, n) for n in names}
        return TrainBatch(teacher=teacher, student=student, targets=targets)

    def example(self, rng: np.random.Generator) -> Example:
        """One window with enough valid pixels and at least one target and one input frame."""
        cubes = self.cubes
        for _ in range(self.cfg.tries):
            ci = int(rng.choice(len(cubes), p=self._weights))
            ex = self._try(cubes[ci], ci, rng)
            if ex is not None:
                return ex
        raise DataError(
            f"no {self.cfg.window}x{self.cfg.window} window with {self.cfg.min_valid:.0%} valid pixels and a held-out "
            f"frame found in {self.cfg.tries} tries; use a smaller --window or cubes with more clear frames"
        )

    def _try(self, cube: "Cube", ci: int, rng: np.random.Generator) -> Example | None:
        cfg, size = self.cfg, self.cfg.window
        ny, nx = cube.attrs["shape"]
        r0, c0 = int(rng.integers(0, ny - size + 1)), int(rng.integers(0, nx - size + 1))
        rows, cols = slice(r0, r0 + size), slice(c0, c0 + size)
        support, valid_period = draw_periods(cube, self.sources, cfg, rng)
        wins = {s: cube.read_window(s, rows, cols, support, self.norm[s])
                for s in self.sources if s in cube.sources}
        wins = {s: w for s, w in wins.items() if w.valid.any()}
        if not wins:
            return None
        seen = np.logical_or.reduce([w.valid.any(0) for w in wins.values()])
        if seen.mean() < max(cfg.min_valid, 1e-9):
            return None
        t_lo, t_hi = (np.datetime64(int(round(d * 86_400)), "s").astype("datetime64[ns]") for d in valid_period)
        teacher, targets = {}, {}
        for s, w in wins.items():
            frac = w.valid.mean(axis=(1, 2))
            usable = np.flatnonzero(frac > 0)
            in_valid = usable[(w.times[usable] >= t_lo) & (w.times[usable] < t_hi) & (frac[usable] >= 0.1)]
            n_hold = min(cfg.max_targets, len(in_valid) // 2)  # keep at least as many as are held out
            held = np.sort(rng.choice(in_valid, n_hold, replace=False)) if n_hold else np.zeros(0, int)
            rest = np.setdiff1d(usable, held)
            if len(rest) > cfg.max_frames:
                rest = np.sort(rng.choice(rest, cfg.max_frames, replace=False))
            if cfg.profile_targets:
                held_and_profile = [take(w, held), profile(take(w, usable), valid_period, cfg.profile_targets)]
                targets[s] = concat(held_and_profile)
            elif len(held):
                targets[s] = take(w, held)
            if len(rest):
                teacher[s] = take(w, rest)
        targets = {s: t for s, t in targets.items() if len(t.times)}
        if not targets or not teacher:
            return None
        text = -1
        if self.texts is not None:
            hits = self.texts[0][ci].in_window(rows, cols)
            text = int(rng.choice(hits)) if len(hits) else -1
        student = perturb(teacher, cfg, rng)
        return Example(teacher, student, targets, valid_period, text)


def take(win: "SourceWindow", idx: np.ndarray) -> "SourceWindow":
    """The frames `idx` of a window (same type, bands kept)."""
    from dataclasses import replace

    return replace(win, values=win.values[idx], valid=win.valid[idx], times=win.times[idx])


def profile(win: "SourceWindow", period: tuple[float, float], bins: int) -> "SourceWindow":
    """The window's temporal profile over `period` (days [start, end)): `bins` equal bins, each the
    per-pixel median of the valid observations in it, timed at the bin's middle.

    A denoised, whole-period reconstruction target (a learned counterpart of the monthly
    composite): decoding it from one embedding makes the embedding keep the period's profile,
    not only the few dates held out. Bins with no valid observation are left out.
    """
    from dataclasses import replace

    edges = np.linspace(period[0], period[1], bins + 1)
    which = np.searchsorted(edges, to_days(win.times), side="right") - 1
    t, c, h, w = win.values.shape
    values = np.zeros((bins, c, h, w), np.float32)
    valid = np.zeros((bins, h, w), bool)
    for b in np.unique(which[(which >= 0) & (which < bins)]):
        frames = which == b
        obs = np.where(win.valid[frames][:, None], win.values[frames], np.nan)
        seen = win.valid[frames].any(0)
        med = np.nanmedian(obs[:, :, seen], axis=0) if seen.any() else None  # (C, n) where seen
        if med is not None:
            values[b][:, seen] = med
            valid[b] = seen
    keep = valid.any((1, 2))
    middle = (edges[:-1] + edges[1:]) / 2
    times = (np.round(middle * 86_400).astype(np.int64).astype("datetime64[s]")).astype("datetime64[ns]")
    return replace(win, values=values[keep], valid=valid[keep], times=times[keep])


def concat(wins: Sequence["SourceWindow"]) -> "SourceWindow":
    """Frames of several windows of one source, one after the other (not re-sorted)."""
    from dataclasses import replace

    return replace(wins[0], values=np.concatenate([w.values for w in wins]),
                   valid=np.concatenate([w.valid for w in wins]), times=np.concatenate([w.times for w in wins]))


def draw_periods(cube: "Cube", sources: Sequence[str], cfg: SamplingConfig,
                 rng: np.random.Generator) -> tuple[tuple[np.datetime64, np.datetime64], tuple[float, float]]:
    """A support period (datetime64 pair, end exclusive) and a valid period inside it (days).

    Half of the time the valid period is the support period (an annual-style summary);
    otherwise a random sub-period of at least `min_valid_days`.
    """
    times = np.concatenate([cube.times[s] for s in sources if s in cube.sources])
    first, last = to_days(times.min()), to_days(times.max()) + 1.0
    span = last - first
    lo, hi = cfg.period_days
    length = min(span, float(rng.uniform(lo, hi)))
    start = first + float(rng.uniform(0, span - length))
    end = start + length
    if rng.random() < 0.5 or length <= cfg.min_valid_days:
        vs, ve = start, end
    else:
        vlen = float(rng.uniform(cfg.min_valid_days, length))
        vs = start + float(rng.uniform(0, length - vlen))
        ve = vs + vlen
    support = tuple(np.datetime64(int(round(d * 86_400)), "s").astype("datetime64[ns]") for d in (start, end))
    return support, (vs, ve)


def perturb(teacher: dict[str, Any], cfg: SamplingConfig, rng: np.random.Generator) -> dict[str, Any]:
    """The student's view: frames dropped, one whole source dropped, or the first/last part of the period.

    Always keeps at least one frame. The kind of perturbation is drawn among those that apply.
    """
    kinds = ["frames", "early", "late"] + (["source"] if len(teacher) > 1 else [])
    kind = kinds[int(rng.integers(len(kinds)))]
    if kind == "source":
        drop = sorted(teacher)[int(rng.integers(len(teacher)))]
        return {s: w for s, w in teacher.items() if s != drop}
    if kind == "frames":
        keep = {s: rng.random(len(w.times)) >= cfg.drop_frame_p for s, w in teacher.items()}
    else:
        all_times = np.concatenate([w.times for w in teacher.values()])
        cut = all_times.min() + (all_times.max() - all_times.min()) * float(rng.uniform(0.3, 0.6))
        keep = {s: (w.times >= cut) if kind == "early" else (w.times <= cut) for s, w in teacher.items()}
    if not any(k.any() for k in keep.values()):  # never an empty student: keep one random frame
        s = sorted(teacher)[int(rng.integers(len(teacher)))]
        keep[s][int(rng.integers(len(keep[s])))] = True
    return {s: take(w, np.flatnonzero(keep[s])) for s, w in teacher.items() if keep[s].any()}


def check_cubes(cubes: Sequence["Cube"], sources: Sequence[str], window: int) -> np.ndarray:
    """Validate cubes for training; returns each cube's sampling weight (proportional to area).

    InputError: a source of the model is in no cube, a window larger than a cube, band
    tables that differ between cubes. DataError: a cube with no frames of the model's sources.
    """
    for s in sources:
        if not any(s in c.sources for c in cubes):
            have = sorted({x for c in cubes for x in c.sources})
            raise InputError(f"no cube has source {s!r} that the model needs (cubes have {have}); ingest it or pass --sources {','.join(have)}")
        bands = {c.bands[s] for c in cubes if s in c.sources}
        if len(bands) > 1:
            raise InputError(f"cubes disagree on the bands of {s!r}: {sorted(bands)}; ingest them with the same bands")
    areas = []
    for c in cubes:
        ny, nx = c.attrs["shape"]
        if window > min(ny, nx):
            raise InputError(f"--window {window} is larger than cube {c.path} ({ny} x {nx} px); use --window {min(ny, nx)} or less")
        if not any(len(c.times[s]) for s in sources if s in c.sources):
            raise DataError(f"cube {c.path} has no frames of {list(sources)}; ingest a period with imagery")
        areas.append(ny * nx)
    w = np.asarray(areas, np.float64)
    return w / w.sum()
