"""The worker side of `aef embed`: the two kinds of dask task.

Every window of the lattice is computed once, by the chunk that owns it (the
first chunk its weighted support meets, `aefcli.tiling.owner`):

- `compute_windows(job, chunk, targets)` runs the model on the windows `chunk`
  owns and saves, for each target chunk they reach (itself, and the neighbours
  right / below when a window straddles a chunk border), the weighted sums of
  their outputs as one "part" (`aefcli.embed_parts`: in memory or a file);
- `embed_chunk(job, chunk)` adds the parts of its owners (itself and up to 3
  neighbours) in a fixed order, normalises, writes the Zarr chunk and deletes
  the parts it used. A part that is missing (a lost worker, a run killed before
  it was saved) is computed on the spot, so the task also stands alone.

In a global tile's store the windows crossing the tile's edge are left to
`aefcli.embed_edges`: computed per edge segment, once for every tile they reach,
by the chunk owning a segment's first window (or on the spot when missing), and
blended after the interior parts.

Parts are not task results: memory stays one chunk's accumulator plus one strip
of input per task whatever the area, and dask.distributed never ships arrays
between workers. Everything a task needs travels in the small, picklable
`EmbedJob`; the model and the cube are opened once per process and cached.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from aefcli.embed_parts import part_path, part_ready, save_part, take_part
from aefcli.heap import trims_when_grown, zeros_outside
from aefcli.tiling import Blender, Chunk, Layout, chunk_at, owned_windows, owners_of, targets

EMBED_DIM = 64
_CACHE: dict[tuple, Any] = {}
CHUNK_CACHE_BYTES = 128 * 2**20  # decoded cube chunks kept per process: neighbouring tasks' reads share them
CACHED_POSITIONS = 2  # store chunk positions (all frames) the decoded-chunk cache holds (`chunk_cache_bytes`)
_LOCK = threading.Lock()
_BATCH = threading.local()  # per thread: the batch input buffers, refilled batch after batch (`stack_frames`)
REUSE_BATCH_BUFFERS = True  # False: new arrays for every batch (the setting before session 8; an A/B knob of embed_speed.py)
PARTS_OUTSIDE_HEAP = True  # in-memory parts in their own memory maps (False: the heap; an A/B knob of embed_speed.py)


@dataclass(frozen=True)
class EmbedJob:
    """Everything a worker needs for any chunk of one run (absolute paths, plain values).

    offset: cube pixel (row, col) of the output's pixel (0, 0).
    period: (t_s, t_e) as ISO strings, end exclusive; period_days: the same in days since 1970.
    bands: source -> the checkpoint's band names, in the model's channel order.
    torch_threads: intra-op threads per task (0: leave torch's setting alone).
    shape: (ny, nx) pixels of the output grid (the chunk grid's extent).
    edges: None, or for a global tile the EdgeSpec of its edge windows (`aefcli.embed_edges`).
    config_hash: `inference_hash` of the checkpoint (its config, statistics and bands): with
    model_hash (the weights) it names the forward a window gets, in the model cache and the
    edge sums' signature.
    local_parts: "" (parts are files), or the token of a run whose tasks all run in this
    process: its parts stay in memory under that token (`aefcli.embed_parts`).
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
    shape: tuple[int, int] = (0, 0)
    edges: Any = None  # aefcli.embed_edges.EdgeSpec of a global tile's store: edge windows shared with neighbours
    config_hash: str = ""
    local_parts: str = ""


def _cached(key: tuple, make):
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = make()
        return _CACHE[key]


def inference_hash(ckpt) -> str:
    """sha256 (hex) of what besides the weights changes a window's embedding: the checkpoint's
    model config (e.g. `smooth_radius`, an inference-only setting), input statistics and bands.

    ckpt: an `aefcli.checkpoint.Checkpoint`. A checkpoint re-saved in place with the same weights
    and another config must never be served from a model or edge sums made for the old one.
    """
    import hashlib
    import json

    doc = {"config": ckpt.model_config, "norm": {s: n.to_dict() for s, n in sorted(ckpt.norm.items())},
           "bands": {s: list(b) for s, b in sorted(ckpt.bands.items())}}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def load_model(job: EmbedJob):
    """The checkpoint's model in eval mode, once per process (and per device, weights and config)."""
    from aefcli.checkpoint import load_checkpoint

    def make():
        ckpt = load_checkpoint(job.checkpoint)
        return ckpt, ckpt.build_model(job.device)

    return _cached(("model", job.checkpoint, job.model_hash, job.config_hash, job.device), make)


def _cube(path: str):
    from aefcli.io.cube import open_cube

    return _cached(("cube", path), lambda: open_cube(path, chunk_cache_bytes=CHUNK_CACHE_BYTES))


def chunk_cache_bytes(cube, sources, period) -> int:
    """The decoded-chunk cache a run reading `sources` over `period` needs: two store chunk
    positions with all their frames (a strip that straddles a chunk border reads both), at least
    CHUNK_CACHE_BYTES, at most a quarter of the machine's RAM.

    Every strip reads every frame of the chunks it touches; with fewer frames cached than a
    position holds, each strip decodes them all again (48 frames, 128 MiB: 9x the decodes of
    the cube at 1x area, efficiency 0.43 instead of 0.80; benchmarks/README.md, "Session 8").
    """
    need = CACHED_POSITIONS * sum(cube.chunk_position_bytes(s, period) for s in sources)
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(CHUNK_CACHE_BYTES, min(need, ram // 4))


def _job_cube(job: EmbedJob):
    """The job's cube, its decoded-chunk cache sized for the job's period (`chunk_cache_bytes`)."""
    cube = _cube(job.cube)
    if CHUNK_CACHE_BYTES:  # 0: no cache, reads go straight to the store
        period = tuple(np.datetime64(p, "ns") for p in job.period)
        cube.reserve_chunk_cache(chunk_cache_bytes(cube, job.bands, period))  # the sources the checkpoint reads
    return cube


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
    cube = _job_cube(job)
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


def window_inputs(job: EmbedJob, row_starts: Sequence[int], col_starts: Sequence[int]) -> Iterator[tuple[int, int, dict, np.ndarray]]:
    """(row0, col0, window, has_data) of every window row_starts x col_starts with data, row-major.

    Input is read in strips of several window rows (up to STRIP_BYTES): the cube's
    compressed chunks are larger than a window row, and each read decodes every
    chunk it touches, so tall strips decode each cube chunk a few times, not once
    per window row. The next strip is read in a background thread while the
    caller runs the model on the current one, so I/O hides behind compute.
    """
    lay = job.layout
    row_starts, col_starts = sorted(row_starts), sorted(col_starts)
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
    if not hasattr(_BATCH, "buffers"):
        _BATCH.buffers = {}
    # full batches refill this thread's buffers (the batch is done with when this returns);
    # a task's short last batch gets new arrays
    reuse = REUSE_BATCH_BUFFERS and len(windows) == job.batch_size
    video = windows_to_video(windows, period, reuse=_BATCH.buffers if reuse else None)
    if job.device != "cpu":
        video = video.to(job.device)
    with torch.inference_mode():
        mu = model(video)
    return mu.float().cpu().numpy()


def add_weighted(blends: Sequence[Blender], weight: np.ndarray, row0: int, col0: int, values: np.ndarray,
                 has_data: np.ndarray) -> None:
    """Add one window's output to every Blender of `blends`, bitwise as `Blender.add` does.

    values: (L, L, C) float32 model output, OVERWRITTEN with its weighted values (the
    caller's own buffer): weighted once in place for all blends, instead of one weighted
    copy per blend. weight: (L, L) `Layout.weights()`. has_data: (L, L) bool.
    """
    np.multiply(values, weight[..., None], out=values)
    for blend in blends:
        blend.add_block(row0, col0, values, weight, has_data)


def _extent(lay: Layout, chunk: Chunk, windows: list[tuple[int, int]]) -> tuple[tuple[int, int], tuple[int, int]]:
    """The rows, cols of `chunk` that the weighted supports of `windows` cover (their bounding box)."""
    r0 = max(chunk.rows[0], min(r for r, _ in windows) + lay.trim)
    r1 = min(chunk.rows[1], max(r for r, _ in windows) + lay.window - lay.trim)
    c0 = max(chunk.cols[0], min(c for _, c in windows) + lay.trim)
    c1 = min(chunk.cols[1], max(c for _, c in windows) + lay.window - lay.trim)
    return (r0, r1), (c0, c1)


@trims_when_grown
def compute_windows(job: EmbedJob, chunk: Chunk, wanted: Sequence[tuple[int, int]], *_deps: Any) -> dict[str, float]:
    """Run the model on the windows `chunk` owns that reach a chunk of `wanted`; save one part per wanted chunk.

    In a tile store, also the edge segments whose first window it owns (`aefcli.embed_edges`).
    Parts already on disk (a killed run saved them) are kept and not recomputed. The
    owned windows with data are cut into batches in one fixed order whatever `wanted`
    is, and a batch runs whole or not at all, so a window's output never depends on
    which run, share or task computed it (int8 stores stay bitwise identical).
    Returns stats: windows run, model seconds, seconds.
    """
    from aefcli.io.embedding_store import chunk_written

    t_start = time.perf_counter()
    lay, shape = job.layout, job.shape
    owned = owned_windows(lay, shape, chunk, _grid(job))
    me = (chunk.i, chunk.j)
    reach = {w: targets(lay, shape, *w) for w in owned}
    open_ = {t for t in wanted if not chunk_written(job.out, *t)}
    need = sorted({t for t in open_ if any(t in r for r in reach.values()) and not part_ready(job, me, t)})
    stats = {"kind": "windows", "pixels": 0, "windows": 0, "model_seconds": 0.0}
    if job.edges is not None:  # this chunk's edge segments, once for every tile they reach
        from aefcli.embed_edges import compute_segment, owned as owned_segments

        for key in owned_segments(job, chunk, open_):
            _add(stats, compute_segment(job, key))
    if not need:
        return {**stats, "seconds": time.perf_counter() - t_start}
    _set_threads(job.torch_threads)
    _, model = load_model(job)
    blends = {}
    # parts kept in memory outlive this task: outside the heap, or they pin the memory freed around them
    zeros = zeros_outside if job.local_parts and PARTS_OUTSIDE_HEAP else np.zeros
    for t in need:
        into = [w for w in owned if t in reach[w]]
        blends[t] = Blender(lay, *_extent(lay, chunk_at(shape, lay.chunk, *t), into), EMBED_DIM, zeros=zeros)
    rows, cols = sorted({r for r, _ in owned}), sorted({c for _, c in owned})
    weight = lay.weights()
    batch: list[tuple[int, int, dict, np.ndarray]] = []

    def flush() -> None:
        hit = [[t for t in reach[(r0, c0)] if t in blends] for r0, c0, _, _ in batch]
        if any(hit):
            t0 = time.perf_counter()
            mu = run_windows(model, job, [b[2] for b in batch])
            stats["model_seconds"] += time.perf_counter() - t0
            stats["windows"] += len(batch)
            for (r0, c0, _, has), vec, into in zip(batch, mu, hit):
                add_weighted([blends[t] for t in into], weight, r0, c0, vec, has)
        batch.clear()

    for item in window_inputs(job, rows, cols):  # streamed: one strip of input at a time
        batch.append(item)
        if len(batch) == job.batch_size:
            flush()
    if batch:
        flush()
    for t, blend in blends.items():
        save_part(job, me, t, blend)
    return {**stats, "seconds": time.perf_counter() - t_start}


def blend_chunk(job: EmbedJob, chunk: Chunk) -> tuple[np.ndarray, dict[str, float]]:
    """Add the parts of every owner of `chunk` (computing missing ones): ((h, w, 64) float32 unit vectors / NaN, stats)."""
    lay = job.layout
    me = (chunk.i, chunk.j)
    blend = Blender(lay, chunk.rows, chunk.cols, EMBED_DIM)
    stats = {"kind": "chunk", "pixels": chunk.pixels, "windows": 0, "model_seconds": 0.0}
    for owner in owners_of(lay, job.shape, chunk, _grid(job)):  # a fixed order: the float sums are reproducible
        part = take_part(job, owner, me)
        if part is None:
            _add(stats, compute_windows(job, chunk_at(job.shape, lay.chunk, *owner), [me]))
            part = take_part(job, owner, me)
        blend.add_block(*part)
    if job.edges is not None:  # then the edge segments, in their absolute order (the same in every tile)
        from aefcli.embed_edges import compute_segment, load_segment, reaching

        for key in reaching(job, chunk):
            _add(stats, compute_segment(job, key))  # a no-op when present
            blend.add_block(*load_segment(job, key))
    return blend.result(), stats


def _grid(job: EmbedJob):
    """The tile grid whose edge windows are left to `aefcli.embed_edges`, or None."""
    return None if job.edges is None else job.edges.grid


def _add(stats: dict[str, Any], more: dict[str, Any]) -> None:
    stats["windows"] += more["windows"]
    stats["model_seconds"] += more["model_seconds"]


@trims_when_grown
def embed_chunk(job: EmbedJob, chunk: Chunk, *_deps: Any) -> dict[str, float]:
    """Blend one chunk from its parts and write it to the store (the dask task). Returns stats.

    _deps: the `compute_windows` results it waits for (their parts are on disk).
    """
    from aefcli.io.embedding_store import chunk_written, write_block

    t_start = time.perf_counter()
    if chunk_written(job.out, chunk.i, chunk.j):  # a retry after a lost worker had written it
        return {"kind": "chunk", "pixels": chunk.pixels, "windows": 0, "model_seconds": 0.0, "seconds": 0.0, "pid": os.getpid()}
    block, stats = blend_chunk(job, chunk)
    for attempt in range(3):
        try:
            write_block(job.out, block, chunk.rows[0], chunk.cols[0])
            break
        except FileNotFoundError:
            # another shard starting up may delete our in-flight `.partial` file: write again
            if attempt == 2:
                raise
    for owner in owners_of(job.layout, job.shape, chunk):  # each part has this one reader
        part_path(job, owner, (chunk.i, chunk.j)).unlink(missing_ok=True)
    stats["seconds"] = time.perf_counter() - t_start
    stats["pid"] = os.getpid()
    return stats
