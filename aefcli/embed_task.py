"""The worker side of `aef embed`: one call computes and writes one output chunk.

`embed_chunk(job, chunk)` is what each dask task runs, in a thread, a process
or a dask.distributed worker. Everything it needs travels in the small,
picklable `EmbedJob`; the model and the cube are opened once per process and
cached. Memory per task: one chunk's accumulator plus one strip of input
(all frames of one window row), never the whole area.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from aefcli.tiling import Blender, Chunk, Layout

EMBED_DIM = 64
_CACHE: dict[tuple, Any] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class EmbedJob:
    """Everything a worker needs for any chunk of one run (absolute paths, plain values).

    offset: cube pixel (row, col) of the output's pixel (0, 0).
    period: (t_s, t_e) as ISO strings, end exclusive; period_days: the same in days since 1970.
    bands: source -> the checkpoint's band names, in the model's channel order.
    torch_threads: intra-op threads per task (0: leave torch's setting alone).
    """

    checkpoint: str
    model_hash: str
    cube: str
    out: str
    layout: Layout
    offset: tuple[int, int]
    period: tuple[str, str]
    period_days: tuple[float, float]
    bands: dict[str, tuple[str, ...]]
    batch_size: int
    torch_threads: int = 0
    device: str = "cpu"


def _cached(key: tuple, make):
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = make()
        return _CACHE[key]


def load_model(job: EmbedJob):
    """The checkpoint's model in eval mode, once per process (and per device)."""
    from aefcli.checkpoint import load_checkpoint

    def make():
        ckpt = load_checkpoint(job.checkpoint)
        return ckpt, ckpt.build_model(job.device)

    return _cached(("model", job.checkpoint, job.model_hash, job.device), make)


def _cube(path: str):
    from aefcli.io.cube import open_cube

    return _cached(("cube", path), lambda: open_cube(path))


def _set_threads(n: int) -> None:
    import torch

    if n > 0 and torch.get_num_threads() != n:
        torch.set_num_threads(n)


@dataclass
class _Strip:
    """The input of one row of windows: per source a SourceWindow (bands in model order)."""

    row0: int
    col0: int
    windows: dict[str, Any]
    has_data: np.ndarray  # (L, W) bool: any valid observation in any source


def read_strip(job: EmbedJob, row0: int, col0: int, width: int, height: int = 0) -> _Strip:
    """Input for output rows [row0, row0+height) (default L) and cols [col0, col0+width), all sources of the job."""
    from aefcli.io.cube import SourceWindow

    ckpt, _ = load_model(job)
    cube = _cube(job.cube)
    size = height or job.layout.window
    rows = slice(job.offset[0] + row0, job.offset[0] + row0 + size)
    cols = slice(job.offset[1] + col0, job.offset[1] + col0 + width)
    period = tuple(np.datetime64(p, "ns") for p in job.period)
    windows, has_data = {}, np.zeros((size, width), bool)
    for source, bands in job.bands.items():
        win = cube.read_window(source, rows, cols, period, norm=ckpt.norm[source])
        order = [win.bands.index(b) for b in bands] if tuple(win.bands) != tuple(bands) else None
        values = win.values if order is None else win.values[:, order]
        windows[source] = SourceWindow(values, win.valid, win.times, tuple(bands))
        has_data |= win.valid.any(axis=0)
    return _Strip(row0, col0, windows, has_data)


def _cut(strip: _Strip, row0: int, col0: int, size: int) -> tuple[dict[str, Any], np.ndarray]:
    """One L x L window of a strip, starting at output pixel (row0, col0)."""
    from aefcli.io.cube import SourceWindow

    r, a = row0 - strip.row0, col0 - strip.col0
    cut = {
        s: SourceWindow(w.values[..., r : r + size, a : a + size], w.valid[..., r : r + size, a : a + size], w.times, w.bands)
        for s, w in strip.windows.items()
    }
    return cut, strip.has_data[r : r + size, a : a + size]


STRIP_BYTES = 64 * 2**20  # input held per read: rows of windows are grouped up to this size


def _row_groups(row_starts: list[int], rows_per_read: int) -> list[list[int]]:
    return [row_starts[k : k + rows_per_read] for k in range(0, len(row_starts), rows_per_read)]


def _window_inputs(job: EmbedJob, chunk: Chunk) -> Iterator[tuple[int, int, dict, np.ndarray]]:
    """(row0, col0, window, has_data) of every contributing window with data, in a fixed order.

    Input is read in strips of several window rows (up to STRIP_BYTES): the cube's
    compressed chunks are larger than a window row, and each read decodes every
    chunk it touches, so tall strips decode each cube chunk a few times, not once
    per window row. The next strip is read in a background thread while the
    caller runs the model on the current one, so I/O hides behind compute.
    """
    lay = job.layout
    row_starts = lay.starts(0, *chunk.rows)
    col_starts = lay.starts(1, *chunk.cols)
    width = col_starts[-1] + lay.window - col_starts[0]
    first = read_strip(job, row_starts[0], col_starts[0], width)  # one window row: sizes the strips
    row_bytes = sum(w.values.nbytes + w.valid.nbytes for w in first.windows.values()) / lay.window
    extra = max(0, int(STRIP_BYTES / max(row_bytes, 1.0)) - lay.window) // lay.stride
    groups = [row_starts[:1]] + _row_groups(row_starts[1:], 1 + extra)

    def read(group: list[int]) -> _Strip:
        return read_strip(job, group[0], col_starts[0], width, group[-1] - group[0] + lay.window)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="aef-read") as pool:
        pending = None
        for k, group in enumerate(groups):
            strip = first if k == 0 else pending.result()
            if k + 1 < len(groups):
                pending = pool.submit(read, groups[k + 1])
            for r0 in group:
                for c0 in col_starts:
                    win, has = _cut(strip, r0, c0, lay.window)
                    if has.any():  # a window without any observation only touches nodata pixels
                        yield r0, c0, win, has


def run_windows(model, job: EmbedJob, windows: list[dict]) -> np.ndarray:
    """Model forward on a batch of windows -> (B, L, L, 64) float32 unit vectors (the bare compute)."""
    import torch

    from aefcli.video import windows_to_video

    period = np.tile(np.asarray(job.period_days, np.float64), (len(windows), 1))
    video = windows_to_video(windows, period)
    if job.device != "cpu":
        video = video.to(job.device)
    with torch.inference_mode():
        mu = model(video)
    return mu.float().cpu().numpy()


def compute_chunk(job: EmbedJob, chunk: Chunk) -> tuple[np.ndarray, dict[str, float]]:
    """Blend every window of one chunk: ((h, w, 64) float32 unit vectors / NaN, stats)."""
    _set_threads(job.torch_threads)
    _, model = load_model(job)
    blend = Blender(job.layout, chunk.rows, chunk.cols, EMBED_DIM)
    t_start, t_model, n_windows = time.perf_counter(), 0.0, 0
    batch: list[tuple[int, int, dict, np.ndarray]] = []

    def flush() -> None:
        nonlocal t_model, n_windows
        t0 = time.perf_counter()
        mu = run_windows(model, job, [b[2] for b in batch])
        t_model += time.perf_counter() - t0
        for (r0, c0, _, has), vec in zip(batch, mu):
            blend.add(r0, c0, vec, has)
        n_windows += len(batch)
        batch.clear()

    for item in _window_inputs(job, chunk):
        batch.append(item)
        if len(batch) == job.batch_size:
            flush()
    if batch:
        flush()
    stats = {"pixels": chunk.pixels, "windows": n_windows, "seconds": time.perf_counter() - t_start, "model_seconds": t_model}
    return blend.result(), stats


def embed_chunk(job: EmbedJob, chunk: Chunk) -> dict[str, float]:
    """Compute one chunk and write it to the store (the dask task). Returns timing stats."""
    from aefcli.io.embedding_store import write_block

    block, stats = compute_chunk(job, chunk)
    for attempt in range(3):
        try:
            write_block(job.out, block, chunk.rows[0], chunk.cols[0])
            break
        except FileNotFoundError:
            # another shard starting up may delete our in-flight `.partial` file: write again
            if attempt == 2:
                raise
    stats["pid"] = os.getpid()
    return stats
