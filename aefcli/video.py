"""Cube windows -> the model's `VideoBatch`, and the time conversions around it.

Time enters the model as float32 "days since 1970-01-01 UTC" (docs/formats.md).
A batch holds B windows of the same size L x L; each source's frames are padded
to the largest frame count of the batch, padding marked `present=False`, so
windows with ragged frame counts (or without a source at all) share one tensor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from model.batch import SourceFrames, VideoBatch

_EPOCH = np.datetime64("1970-01-01T00:00:00", "ns")
_DAY_NS = 86_400 * 10**9


def to_days(times: Any) -> np.ndarray:
    """datetime64 (any unit), ISO strings or datetimes -> float64 days since 1970-01-01 UTC.

    float64 here so callers can do exact arithmetic; cast to float32 at the model edge.
    """
    arr = np.asarray(times)
    if arr.dtype.kind != "M":
        arr = arr.astype("datetime64[ns]")
    ns = (arr.astype("datetime64[ns]") - _EPOCH).astype(np.int64)
    return ns / _DAY_NS


def from_days(days: Any) -> np.ndarray:
    """Days since 1970-01-01 UTC (float) -> datetime64[ns] (rounded to the nanosecond)."""
    ns = np.round(np.asarray(days, dtype=np.float64) * _DAY_NS).astype(np.int64)
    return _EPOCH + ns.astype("timedelta64[ns]")


def period_days(period: str | Sequence[Any]) -> tuple[float, float]:
    """An ISO `start/end` period (end exclusive) or a (start, end) pair -> (t_s, t_e) in days."""
    if isinstance(period, str):
        parts = period.split("/")
        if len(parts) != 2:
            raise ValueError(f"period {period!r} is not ISO `start/end`")
        period = parts
    start, end = (float(to_days(p)) for p in period)
    if not end > start:
        raise ValueError(f"period end {period[1]} is not after its start {period[0]}")
    return start, end


def windows_to_video(
    windows: Sequence[Mapping[str, Any]],
    period: Any,
    text: Any | None = None,
    text_mask: Any | None = None,
    min_frames: int = 1,
    reuse: dict | None = None,
) -> "VideoBatch":
    """B cube windows -> one `VideoBatch` of torch tensors on the CPU.

    windows: one dict per batch element, source name -> SourceWindow with
        `values` (T, C, L, L) float32 standardised, `valid` (T, L, L) bool,
        `times` (T,) datetime64. A source absent from an element (or with T = 0)
        gets only padding frames there.
    period: (B, 2) valid periods [t_s, t_e) in days since 1970-01-01.
    text: optional (B, D) float32 text embeddings; text_mask (B,) bool says which rows hold text.
    min_frames: each source gets at least this many (padding) frames, so no tensor has T = 0.
    reuse: see `stack_frames` (one dict for all sources).
    Returns VideoBatch(sources={name: SourceFrames(values (B,T,C,L,L), valid (B,T,L,L),
    times (B,T) days, present (B,T))}, period (B,2), text, text_mask).
    """
    import torch

    from model.batch import VideoBatch

    if not windows:
        raise ValueError("windows_to_video needs at least one window")
    b = len(windows)
    period_arr = np.asarray(period, dtype=np.float32).reshape(b, 2)
    names = sorted({name for w in windows for name in w})
    sources = {name: stack_frames([w.get(name) for w in windows], min_frames, name, reuse) for name in names}
    text_t = None if text is None else torch.as_tensor(np.asarray(text, np.float32))
    mask_t = None if text_mask is None else torch.as_tensor(np.asarray(text_mask, bool))
    return VideoBatch(sources=sources, period=torch.from_numpy(period_arr), text=text_t, text_mask=mask_t)


def stack_frames(windows: Sequence[Any | None], min_frames: int = 1, name: str = "source",
                 reuse: dict | None = None) -> "SourceFrames":
    """One source's windows of B batch elements (None = absent) -> padded `SourceFrames`.

    Each window: values (T_i, C, L, L), valid (T_i, L, L), times (T_i,) datetime64.
    Returns values (B, T, C, L, L), valid (B, T, L, L), times (B, T) days, present (B, T),
    T = max(T_i, min_frames); padding frames are invalid, not present, and carry the
    element's last time so time codes stay in range.
    reuse: a dict that keeps the values and valid buffers between calls (per source and
    shape): a caller that is done with the previous batch before the next one (tiled
    inference) refills them instead of paying fresh pages for every batch (~126 MB a
    batch of 4 windows of 128 px with 48 frames). None: new arrays.
    """
    import torch

    from model.batch import SourceFrames

    given = [w for w in windows if w is not None]
    if not given:
        raise ValueError(f"source {name!r}: no window in the batch")
    channels = {w.values.shape[1] for w in given}
    sizes = {tuple(w.valid.shape[-2:]) for w in given}
    if len(channels) != 1:
        raise ValueError(f"source {name!r} has different band counts across windows: {sorted(channels)}")
    if len(sizes) != 1:
        raise ValueError(f"windows of one batch must share one size, got {sorted(sizes)}")
    (c,), (size,) = channels, sizes
    b = len(windows)
    t_max = max([min_frames] + [len(w.times) for w in given])
    shape = (b, t_max, c, *size)
    if reuse is None:
        values, valid = np.zeros(shape, np.float32), np.zeros((b, t_max, *size), bool)
    else:
        if (name, shape) not in reuse:
            reuse[(name, shape)] = np.empty(shape, np.float32), np.empty((b, t_max, *size), bool)
        values, valid = reuse[(name, shape)]
    times = np.zeros((b, t_max), np.float32)
    present = np.zeros((b, t_max), bool)
    for i, win in enumerate(windows):
        t = 0 if win is None else len(win.times)
        if reuse is not None and t < t_max:  # padding frames: what fresh arrays hold
            values[i, t:] = 0.0
            valid[i, t:] = False
        if not t:
            continue
        values[i, :t] = win.values
        valid[i, :t] = win.valid
        times[i, :t] = to_days(win.times)
        present[i, :t] = True
        times[i, t:] = times[i, t - 1]
    return SourceFrames(
        values=torch.from_numpy(values),
        valid=torch.from_numpy(valid),
        times=torch.from_numpy(times),
        present=torch.from_numpy(present),
    )
