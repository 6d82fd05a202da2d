"""The ingested cube: a Zarr v3 store with one group per source (docs/formats.md section 1).

Layout of each source group (``s2``, ``s1``, ``landsat``):
- ``raw`` float32 (time, band, y, x), physical units, NaN = nodata;
- ``valid`` bool (time, y, x);
- ``frame_state`` int8 (time,): 0 pending, 1 written, 2 skipped (broken asset);
  it is what makes frame-by-frame writes resumable;
- coords ``time`` (int64 ns since epoch on disk), ``band``, ``y``, ``x``, ``item_id``, ``spatial_ref``;
- attrs ``aef:norm`` (NormStats.to_dict()) once statistics are computed.

The root attribute ``aef:cube`` holds the grid, the request and provenance;
its ``complete`` flag turns true last. This module reads cubes; `aefcli.io.cube_writer`
creates and writes them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from aefcli.errors import DataError, InputError
from aefcli.io.chunk_decode import chunk_reader
from aefcli.normalise import NormStats, standardise

CUBE_ATTR = "aef:cube"
NORM_ATTR = "aef:norm"
FORMAT = 1
PENDING, WRITTEN, SKIPPED = 0, 1, 2
DEFAULT_CHUNK = 512


def _geobox(crs: str, transform: Iterable[float], shape: Iterable[int]):
    from affine import Affine
    from odc.geo.geobox import GeoBox

    ny, nx = (int(v) for v in shape)
    return GeoBox((ny, nx), Affine(*list(transform)[:6]), crs)


def geobox_attrs(geobox) -> dict[str, Any]:
    """The grid as JSON: crs ("EPSG:xxxxx" or WKT), transform [a, b, c, d, e, f], shape [ny, nx]."""
    epsg = geobox.crs.epsg
    return {
        "crs": f"EPSG:{epsg}" if epsg else geobox.crs.to_wkt(),
        "transform": [float(v) for v in tuple(geobox.affine)[:6]],
        "shape": [int(geobox.shape.y), int(geobox.shape.x)],
    }


@dataclass(frozen=True)
class SourceWindow:
    """A window of one source. values (T, C, h, w) float32 standardised, 0 where invalid;
    valid (T, h, w) bool (overhang and nodata invalid); times (T,) datetime64[ns]; bands (C,)."""

    values: np.ndarray
    valid: np.ndarray
    times: np.ndarray
    bands: tuple[str, ...] = field(default=())


def _as_datetime64(value) -> np.datetime64:
    if isinstance(value, np.datetime64):
        return value.astype("datetime64[ns]")
    if hasattr(value, "tzinfo") and getattr(value, "tzinfo", None) is not None:
        value = value.astimezone(__import__("datetime").timezone.utc).replace(tzinfo=None)
    return np.datetime64(value, "ns")


class Cube:
    """A complete ingested cube, opened for reading (see `open_cube`)."""

    def __init__(self, path: Path, root, cache_bytes: int = 0, chunk_cache_bytes: int = 0) -> None:
        self.path = path
        self._root = root
        self._cache_left = int(cache_bytes)  # RAM still allowed for sources held as numpy
        self._cached: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._chunks = _ChunkCache(int(chunk_cache_bytes))
        self._readers: dict[str, tuple] = {}  # source -> ChunkReader of raw, valid (None: read through zarr)
        self._readers_lock = threading.Lock()
        self.attrs: dict[str, Any] = dict(root.attrs[CUBE_ATTR])
        self.geobox = _geobox(self.attrs["crs"], self.attrs["transform"], self.attrs["shape"])
        self.sources: tuple[str, ...] = tuple(self.attrs["sources"])
        self.bands: dict[str, tuple[str, ...]] = {}
        self.times: dict[str, np.ndarray] = {}
        self.item_ids: dict[str, tuple[str, ...]] = {}
        self.norm: dict[str, NormStats | None] = {}
        self._frames: dict[str, np.ndarray] = {}
        for s in self.sources:
            g = root[s]
            kept = np.flatnonzero(np.asarray(g["frame_state"][:]) == WRITTEN)  # skipped frames are dropped
            self._frames[s] = kept
            self.bands[s] = tuple(str(b) for b in g["band"][:])
            self.times[s] = np.asarray(g["time"][:], dtype="int64")[kept].astype("datetime64[ns]")
            self.item_ids[s] = tuple(str(i) for i in np.asarray(g["item_id"][:])[kept])
            norm = g.attrs.get(NORM_ATTR)
            self.norm[s] = NormStats.from_dict(norm) if norm else None

    def __repr__(self) -> str:
        frames = ", ".join(f"{s}: {len(self.times[s])} frames x {len(self.bands[s])} bands" for s in self.sources)
        return f"Cube({str(self.path)!r}, shape={tuple(self.attrs['shape'])}, {frames})"

    def frame_indices(self, source: str, period=None) -> np.ndarray:
        """Positions in `times[source]` whose time lies in [t0, t1)."""
        times = self.times[source]
        if period is None:
            return np.arange(len(times))
        t0, t1 = (_as_datetime64(p) for p in period)
        return np.flatnonzero((times >= t0) & (times < t1))

    def read_window(self, source: str, rows: slice, cols: slice, period=None, norm: NormStats | None = None) -> SourceWindow:
        """Standardised values of a (rows, cols) window; it may overhang the cube (overhang is invalid).

        rows, cols: slices of pixel indices with explicit start and stop (negative = before the edge).
        period: (t0, t1) anything numpy reads as a datetime, end exclusive. norm: statistics to use
        (e.g. a checkpoint's); default the cube's own.
        """
        if source not in self.sources:
            raise DataError(f"cube {self.path} has no source {source!r}; it has {list(self.sources)}")
        stats = norm or self.norm[source]
        if stats is None:
            raise DataError(f"cube {self.path} has no statistics for {source}; run `aef preprocess {self.path}`")
        stats = stats.select(self.bands[source])
        r0, r1, c0, c1 = rows.start or 0, rows.stop, cols.start or 0, cols.stop
        if r1 is None or c1 is None or r1 < r0 or c1 < c0:
            raise InputError("read_window needs rows and cols slices with explicit start <= stop")
        ny, nx = self.attrs["shape"]
        idx = self.frame_indices(source, period)
        t_store = self._frames[source][idx]
        nc, h, w = len(self.bands[source]), r1 - r0, c1 - c0
        values = np.zeros((len(idx), nc, h, w), dtype=np.float32)
        valid = np.zeros((len(idx), h, w), dtype=bool)
        ir0, ir1, ic0, ic1 = max(r0, 0), min(r1, ny), max(c0, 0), min(c1, nx)
        if len(idx) and ir1 > ir0 and ic1 > ic0:
            sel, ys, xs = np.asarray(t_store), slice(ir0, ir1), slice(ic0, ic1)
            inner = (slice(ir0 - r0, ir1 - r0), slice(ic0 - c0, ic1 - c0))
            if not self._in_ram(source) and self._chunks.budget:
                self._read_standardised(source, stats, sel, ys, xs, values[..., inner[0], inner[1]], valid[..., inner[0], inner[1]])
            else:
                if source in self._cached:
                    raw_all, ok_all = self._cached[source]
                    raw, ok = raw_all[:, :, ys, xs][sel], ok_all[:, ys, xs][sel]  # slice first: copy the window only
                else:
                    g = self._root[source]
                    raw = np.asarray(g["raw"].get_orthogonal_selection((sel, slice(None), ys, xs)))
                    ok = np.asarray(g["valid"].get_orthogonal_selection((sel, ys, xs)))
                z, ok = _standardise_masked(raw, ok, stats)
                values[..., inner[0], inner[1]] = z
                valid[..., inner[0], inner[1]] = ok
        return SourceWindow(values, valid, self.times[source][idx], self.bands[source])

    def _read_standardised(self, source: str, stats: NormStats, sel: np.ndarray, ys: slice, xs: slice,
                           values: np.ndarray, valid: np.ndarray) -> None:
        """Fill values (T, C, h, w) and valid (T, h, w) (views of the caller's window) for frames `sel`
        over cube pixels ys x xs from standardised store chunks, decoded at most once while cached.

        Tiled inference reads overlapping windows, strips and tasks that share the store's
        large compressed chunks: each chunk is decoded and standardised once while it stays
        in the LRU cache, and every read is then one copy into the window.
        """
        g = self._root[source]
        raw_a, ok_a = g["raw"], g["valid"]
        _, _, ny, nx = raw_a.shape
        ch, cw = raw_a.chunks[2], raw_a.chunks[3]
        for cy in range(ys.start // ch, (ys.stop - 1) // ch + 1):
            for cx in range(xs.start // cw, (xs.stop - 1) // cw + 1):
                by, bx = slice(cy * ch, min((cy + 1) * ch, ny)), slice(cx * cw, min((cx + 1) * cw, nx))
                keys = [(source, stats, int(t), cy, cx) for t in sel]
                got = {k: self._chunks.get(k) for k in keys}
                missing = [k for k in keys if got[k] is None]
                if missing:
                    got.update(self._decode(raw_a, ok_a, stats, missing, by, bx))
                oy = slice(max(ys.start, by.start), min(ys.stop, by.stop))
                ox = slice(max(xs.start, bx.start), min(xs.stop, bx.stop))
                src = (slice(oy.start - by.start, oy.stop - by.start), slice(ox.start - bx.start, ox.stop - bx.start))
                dst = (slice(oy.start - ys.start, oy.stop - ys.start), slice(ox.start - xs.start, ox.stop - xs.start))
                for n, k in enumerate(keys):
                    z, o = got[k]
                    values[n, :, dst[0], dst[1]] = z[:, src[0], src[1]]
                    valid[n, dst[0], dst[1]] = o[src[0], src[1]]

    def _decode(self, raw_a, ok_a, stats: NormStats, keys: list[tuple], by: slice, bx: slice) -> dict[tuple, tuple]:
        """(standardised values, valid) of the frame-chunks `keys` (source, stats, frame, cy, cx), each
        decoded by one reader at a time and kept in the LRU.

        Concurrent tasks start on the same chunks: a reader first decodes, frame by frame, the
        frames no other reader is decoding, then waits for the rest (a waiter takes the result
        instead of decoding it again). Two readers that need the same 6 frames decode 3 each,
        so the first read of a run waits half as long as with one decoder per chunk.
        """
        got: dict[tuple, tuple] = {}

        def load(k: tuple) -> None:  # the caller holds k's loading lock
            item = self._chunks.get(k)  # another reader may have decoded it meanwhile
            if item is None:
                raw, ok = self._frame_chunk(k[0], raw_a, ok_a, k[2], by, bx)
                item = _standardise_masked(raw, ok, stats, in_place=True)
                self._chunks.put(k, item)
                self._chunks.count_decoded(1)
            got[k] = item

        busy = []
        for k in keys:
            lock = self._chunks.loading(k)
            if not lock.acquire(blocking=False):
                busy.append(k)
                continue
            try:
                load(k)
            finally:
                lock.release()
        for k in busy:  # decoded by another reader: wait for it (or decode it if it was not kept)
            with self._chunks.loading(k):
                load(k)
        return got

    def _frame_chunk(self, source: str, raw_a, ok_a, t: int, by: slice, bx: slice) -> tuple[np.ndarray, np.ndarray]:
        """raw (C, h, w) float32 (a new array the caller may overwrite) and valid (h, w) of store
        frame t over one store chunk's extent by x bx: straight from the chunk files where the
        array has the plain layout (`aefcli.io.chunk_decode`), else through zarr."""
        with self._readers_lock:
            if source not in self._readers:
                self._readers[source] = (chunk_reader(raw_a), chunk_reader(ok_a))
            readers = self._readers[source]
        if None in readers or raw_a.chunks[1] != raw_a.shape[1]:
            raw = np.asarray(raw_a[t, :, by, bx])  # zarr hands out a new array
            if raw.dtype != np.float32 or not raw.flags.writeable:
                raw = raw.astype(np.float32)
            return raw, np.asarray(ok_a[t, by, bx])
        ch, cw = raw_a.chunks[2], raw_a.chunks[3]
        cy, cx = by.start // ch, bx.start // cw
        h, w = by.stop - by.start, bx.stop - bx.start
        raw = readers[0].read((t, 0, cy, cx))[0, :, :h, :w]
        ok = readers[1].read((t, cy, cx))[0, :h, :w]
        if (h, w) != (ch, cw):  # an edge chunk: keep only its extent (the cache counts what it holds)
            raw, ok = raw.copy(), ok.copy()
        return raw, ok

    def chunk_position_bytes(self, source: str, period=None) -> int:
        """Bytes the decoded-chunk cache holds for one store chunk position of `source`: every
        frame of the period, standardised float32 values plus the valid mask."""
        raw = self._root[source]["raw"]
        ch, cw = raw.chunks[2], raw.chunks[3]
        return len(self.frame_indices(source, period)) * (raw.shape[1] * ch * cw * 4 + ch * cw)

    def chunk_size(self, source: str) -> tuple[int, int]:
        """(rows, cols) of one store chunk of `source`."""
        raw = self._root[source]["raw"]
        return int(raw.chunks[2]), int(raw.chunks[3])

    def reserve_chunk_cache(self, nbytes: int) -> None:
        """Let the decoded-chunk cache grow to at least `nbytes` (it never shrinks)."""
        self._chunks.reserve(int(nbytes))

    @property
    def chunks_decoded(self) -> int:
        """Store chunks (one frame of one chunk) decoded by cached reads so far: the cost of re-reads."""
        return self._chunks.decoded

    def _in_ram(self, source: str) -> bool:
        """Hold a source's arrays in RAM (read once) while they fit in the cache budget.

        Training draws thousands of random small windows: from the store each one decodes
        whole compressed chunks of every frame, from RAM it is a slice.
        """
        if source in self._cached:
            return True
        g = self._root[source]
        size = g["raw"].nbytes + g["valid"].nbytes
        if size > self._cache_left:
            return False
        self._cached[source] = (np.asarray(g["raw"][...]), np.asarray(g["valid"][...]))
        self._cache_left -= size
        return True

    def read_raw(self, source: str, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame t (position in `times[source]`): raw (C, y, x) physical units and valid (y, x)."""
        g = self._root[source]
        ts = int(self._frames[source][t])
        return np.asarray(g["raw"][ts]), np.asarray(g["valid"][ts])


def _standardise_masked(raw: np.ndarray, ok: np.ndarray, stats: NormStats, in_place: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """raw (..., C, h, w) physical units, ok (..., h, w) -> (standardised float32, 0 where invalid; valid).

    A pixel is valid where the store says so and every band standardises to a finite value.
    in_place: standardise in raw's own buffer (a float32 array the caller owns).
    """
    z = standardise(raw, stats, in_place=in_place)  # raw's buffer or a new array: zeroed in place below
    ok = ok & np.isfinite(z).all(axis=-3)
    # zero the invalid pixels of every band as one AND of the bits with an all-ones / all-zeros
    # word per pixel: +0.0 exactly, as a masked copy gives, at ~1/15 of np.copyto(where=)'s cost
    keep = np.negative(ok, dtype=np.uint32)  # True -> 0xFFFFFFFF, False -> 0
    bits = z.view(np.uint32)
    np.bitwise_and(bits, keep[..., None, :, :], out=bits)
    return z, ok


class _ChunkCache:
    """Least-recently-used decoded store chunks, (standardised values, valid) per
    (source, statistics, frame, chunk row, chunk col), under a byte budget.

    Thread-safe: the tasks of one process share one Cube. `decoded` counts the
    frame-chunks decoded into it (a chunk larger than the budget is decoded but never kept).
    """

    def __init__(self, budget: int) -> None:
        self.budget, self.used, self.decoded = budget, 0, 0
        self._items: OrderedDict[tuple, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[tuple, threading.Lock] = {}  # one per frame-chunk read (frames x chunk positions)

    def loading(self, where: tuple) -> threading.Lock:
        """The lock a reader holds while it decodes one frame-chunk (a cache key)."""
        with self._lock:
            return self._loading.setdefault(where, threading.Lock())

    def __contains__(self, key: tuple) -> bool:
        with self._lock:
            return key in self._items

    def get(self, key: tuple) -> tuple[np.ndarray, np.ndarray] | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def reserve(self, budget: int) -> None:
        with self._lock:
            self.budget = max(self.budget, budget)

    def count_decoded(self, n: int) -> None:
        with self._lock:
            self.decoded += n

    def put(self, key: tuple, item: tuple[np.ndarray, np.ndarray]) -> None:
        size = item[0].nbytes + item[1].nbytes
        with self._lock:
            if key in self._items or size > self.budget:
                return
            self._items[key] = item
            self.used += size
            while self.used > self.budget:
                _, old = self._items.popitem(last=False)
                self.used -= old[0].nbytes + old[1].nbytes


def read_cube_attrs(path: str | Path) -> dict[str, Any] | None:
    """The `aef:cube` attributes of a store, or None when `path` is not a cube."""
    import zarr

    try:
        root = zarr.open_group(str(path), mode="r")
    except Exception:  # noqa: BLE001  (any unreadable store is "not a cube")
        return None
    attrs = root.attrs.get(CUBE_ATTR)
    return dict(attrs) if attrs else None


def open_cube(path: str | Path, require_complete: bool = True, cache_bytes: int = 0, chunk_cache_bytes: int = 0) -> Cube:
    """Open a cube for reading; DataError when missing, not a cube, or not marked complete.

    cache_bytes: RAM for holding whole sources as numpy (those that fit), for many small reads.
    chunk_cache_bytes: RAM for an LRU cache of decoded store chunks, for overlapping reads
    that walk the cube (tiled inference); 0 reads straight from the store.
    """
    import zarr

    path = Path(path)
    if not path.exists():
        raise DataError(f"cube {path} does not exist; create it with `aef ingest`")
    attrs = read_cube_attrs(path)
    if attrs is None:
        raise DataError(f"{path} is not an aef cube (no {CUBE_ATTR} attribute)")
    if require_complete and not attrs.get("complete"):
        raise DataError(f"cube {path} is incomplete (an ingest was interrupted); re-run the same `aef ingest` to finish it")
    return Cube(path, zarr.open_group(str(path), mode="r"), cache_bytes, chunk_cache_bytes)
