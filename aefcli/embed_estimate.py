"""Model time estimates for `aef embed --dry-run` and `aef tiles --estimate`: one timed model batch on this machine."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from aefcli.errors import InputError
from aefcli.tiling import Layout


def dummy_window(job, size: int) -> dict:
    """A window of the cube's real frame count, for timing (values do not change the cost)."""
    from aefcli.embed_task import read_strip

    return read_strip(job, 0, 0, size).windows


def seconds_per_window(job, window: dict) -> float:
    """Measured model seconds per window on this machine: one warm-up batch, then one timed batch.

    window: source -> SourceWindow (T, C, L, L) as the model would see it; the batch
    repeats it min(batch_size, 4) times (values do not change the cost, shapes do).
    """
    from aefcli.embed_task import load_model, run_windows

    _, model = load_model(job)
    probe = [window] * min(job.batch_size, 4)
    run_windows(model, job, probe)  # warm-up
    t0 = time.perf_counter()
    run_windows(model, job, probe)
    return (time.perf_counter() - t0) / len(probe)


def calibrate(checkpoint: Path, window: int = 128, overlap: int = 32, frames: int = 24, batch_size: int = 8,
              device: str = "auto", seed: int = 0) -> float:
    """Model seconds per L x L window of `checkpoint` on this machine, without a cube.

    frames: observations per source in the period (T of every source the checkpoint reads);
    the synthetic window spreads them over one year. Used by `aef tiles --estimate --checkpoint`.
    """
    from aefcli.checkpoint import load_checkpoint
    from aefcli.embed import _device
    from aefcli.embed_task import EmbedJob
    from aefcli.io.cube import SourceWindow
    from aefcli.video import to_days

    if frames < 1:
        raise InputError(f"--frames must be at least 1, not {frames}")
    ckpt = load_checkpoint(checkpoint)
    layout = Layout(window, overlap, window)
    rng = np.random.default_rng(seed)
    start, end = np.datetime64("2024-01-01", "ns"), np.datetime64("2025-01-01", "ns")
    times = start + ((end - start) / frames * (np.arange(frames) + 0.5)).astype("timedelta64[ns]")
    win = {s: SourceWindow(rng.normal(size=(frames, len(b), window, window)).astype(np.float32),
                           np.ones((frames, window, window), bool), times, tuple(b)) for s, b in ckpt.bands.items()}
    job = EmbedJob(checkpoint=str(Path(ckpt.path).resolve()), model_hash=ckpt.model_hash, cube="", out="", layout=layout,
                   offset=(0, 0), period=(str(start), str(end)), period_days=(float(to_days(start)), float(to_days(end))),
                   bands={s: tuple(b) for s, b in ckpt.bands.items()}, batch_size=batch_size, device=_device(device))
    return seconds_per_window(job, win)


def estimate_tiles(geom, tiles, checkpoint: Path | None = None, window: int = 128, overlap: int = 32, chunk: int = 512,
                   frames: int = 24, batch_size: int = 8, device: str = "auto") -> dict[str, Any]:
    """`aef tiles --estimate`: km2, tiles, output bytes and, with a checkpoint, a measured compute time.

    geom: the area (shapely, WGS84); tiles: aefcli.tiles.Tile list covering it. The compute
    time is windows x seconds per window of one timed model batch (`calibrate`) on this
    machine with all its cores, I/O excluded.
    """
    from aefcli.embed import _device
    from aefcli.tiles import estimate

    spw = calibrate(checkpoint, window, overlap, frames, batch_size, device) if checkpoint is not None else None
    est = estimate(geom, tiles, seconds_per_window=spw, window=window, overlap=overlap, chunk=chunk)
    if spw is not None:
        est["calibration"] = {"checkpoint": str(checkpoint), "window": window, "overlap": overlap, "chunk": chunk, "frames": frames,
                              "batch_size": min(batch_size, 4), "device": _device(device)}
    return est
