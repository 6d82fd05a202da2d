"""Whole-chunk reads and writes of a local Zarr v3 array without zarr's async machinery (embed's hot path).

zarr-python 3 reads and writes a chunk through an asyncio loop, a thread pool and
intermediate buffers: a 10-band 512 px float32 frame-chunk of a cube costs ~10 ms to
read where the zstd decode itself is ~6.5 ms, and two tasks decoding the 6 frame-chunks
of a run's first strip together took 75-215 ms through zarr against 50-70 ms read here;
writing one 256 px float32 embedding chunk (16.8 MB) cost ~25 ms through
`zarr.open_array(...)[...] = block` (benchmarks/README.md, embed section).
`ChunkReader.read` reads the chunk's file and decompresses it straight into a numpy
array; `ChunkWriter.write` writes the bytes zarr would write (padded with the fill value
at the array's edge, zstd with the array's own level and checksum) to a temporary
`*.partial` file and renames it into place, as zarr does.

Both serve the one layout aef's stores use (`aefcli.io.cube_writer`,
`aefcli.io.embedding_store`): a local store, a regular chunk grid, codecs `bytes`
(little-endian, or 1-byte types) then optionally `zstd`. For any other array
`chunk_reader` / `chunk_writer` return None and the caller goes through zarr.
"""

from __future__ import annotations

import os
import threading
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from aefcli.io.direct_write import write_new_file

OUTSIDE_HEAP = True  # decoded chunks in their own memory maps, not in malloc's heap (see `_outside_heap`)
# freed chunk maps kept for the next decodes (per size), instead of fresh zeroed pages
# (8 until session 9: ~30 MB more resident at 16x the area; benchmarks/README.md)
SPARE_MAPS = 2
_SPARE: dict[int, list] = {}
_SPARE_LOCK = threading.RLock()  # a finalizer may run while it is held


def _outside_heap(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A new array (contents undefined) in its own anonymous memory map, outside malloc's heap.

    Decoded chunks live long in a reader's LRU (`aefcli.io.cube`) while strips, window outputs and
    accumulators come and go around them: in malloc's heap such long-lived blocks pin the freed
    memory between them (fragmentation), which a run's RSS then carries (`aefcli.heap`). When the
    array is freed its map goes back to a small spare list (SPARE_MAPS per size; beyond that it is
    unmapped): a fresh map costs ~4.5 ms of page faults per 10 MB frame-chunk, a reused one none.
    """
    from aefcli.heap import map_outside

    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if n == 0:
        return np.empty(shape, dtype)
    with _SPARE_LOCK:
        spare = _SPARE.get(n)
        buf = spare.pop() if spare else None
    if buf is None:
        buf = map_outside(n)  # resident while mapped, live or spare: never idle heap memory to trim
    flat = np.frombuffer(buf, dtype)  # every view of it keeps it alive
    weakref.finalize(flat, _spare, buf)
    return flat.reshape(shape)


def _spare(buf) -> None:
    """A chunk array died: keep its map for the next decode, or let it be unmapped."""
    with _SPARE_LOCK:
        spare = _SPARE.setdefault(len(buf), [])
        if len(spare) < SPARE_MAPS:
            spare.append(buf)


class ChunkReader:
    """Reads whole chunks of one zarr v3 array from a local store.

    root: the array's folder; chunk_shape: the stored shape of every chunk (edge
    chunks are stored whole); key: the array's chunk key encoding; zstd: whether
    the bytes are zstd-compressed.
    """

    def __init__(self, root: Path, chunk_shape: tuple[int, ...], dtype: np.dtype, fill: Any, key, zstd: bool) -> None:
        from numcodecs import Zstd

        self.root, self.chunk_shape, self.dtype, self.fill, self._key = root, chunk_shape, dtype, fill, key
        self._zstd = Zstd() if zstd else None

    def read(self, index: tuple[int, ...]) -> np.ndarray:
        """The chunk at chunk-grid `index`: a new array of `chunk_shape` (the fill value where it was never written)."""
        path = self.root / self._key.encode_chunk_key(tuple(int(i) for i in index))
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return np.full(self.chunk_shape, self.fill, self.dtype)
        out = _outside_heap(self.chunk_shape, self.dtype) if OUTSIDE_HEAP else np.empty(self.chunk_shape, self.dtype)
        if self._zstd is None:
            out.reshape(-1).view(np.uint8)[:] = np.frombuffer(data, np.uint8)
        else:
            self._zstd.decode(data, out=out)  # raises when the decoded size is not the chunk's
        return out


class ChunkWriter:
    """Writes whole chunks of one zarr v3 array in a local store: the files zarr itself would write.

    shape: the array's shape; chunk_shape, dtype, fill, key as ChunkReader; zstd: the
    array's zstd codec (level, checksum), or None for uncompressed chunks.
    """

    def __init__(self, root: Path, shape: tuple[int, ...], chunk_shape: tuple[int, ...], dtype: np.dtype, fill: Any,
                 key, zstd: Any = None) -> None:
        from numcodecs import Zstd

        self.root, self.shape, self.chunk_shape, self.dtype, self.fill, self._key = root, shape, chunk_shape, dtype, fill, key
        self._zstd = None if zstd is None else Zstd(level=int(zstd.level), checksum=bool(zstd.checksum))

    def path(self, index: tuple[int, ...]) -> Path:
        """The file of the chunk at chunk-grid `index`."""
        return self.root / self._key.encode_chunk_key(tuple(int(i) for i in index))

    def write(self, index: tuple[int, ...], values: np.ndarray) -> None:
        """Write the chunk at chunk-grid `index` atomically (temporary `.partial` file + rename).

        values: the chunk's extent inside the array (`chunk_shape` inside, smaller at the
        array's far edges), of the array's dtype; an edge chunk is padded with the fill value.
        """
        values = np.asarray(values)
        if values.dtype != self.dtype:
            raise ValueError(f"chunk dtype {values.dtype} is not the array's {self.dtype}")
        want = tuple(min(c, s - i * c) for i, c, s in zip(index, self.chunk_shape, self.shape))
        if values.shape != want:
            raise ValueError(f"chunk {tuple(index)} holds {want} values, not {values.shape}")
        if values.shape != self.chunk_shape:  # zarr stores an edge chunk whole, the outside as the fill value
            full = np.full(self.chunk_shape, self.fill, self.dtype)
            full[tuple(slice(0, n) for n in values.shape)] = values
            values = full
        values = np.ascontiguousarray(values)
        payload = memoryview(values.reshape(-1).view(np.uint8)) if self._zstd is None else self._zstd.encode(values)
        path = self.path(index)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.partial")  # `chunk_done` clears strays
        try:
            write_new_file(tmp, payload)  # past the page cache where the filesystem allows (`aefcli.io.direct_write`)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def _plain_layout(arr) -> tuple | None:
    """(root folder, chunk shape, dtype, fill, chunk key encoding, zstd codec or None) of zarr array
    `arr`, or None when its store, grid or codecs are not the plain layout."""
    from zarr.codecs import BytesCodec, ZstdCodec
    from zarr.core.chunk_grids import RegularChunkGrid
    from zarr.storage import LocalStore

    meta = getattr(arr, "metadata", None)
    store = getattr(getattr(arr, "store_path", None), "store", None)
    if getattr(meta, "zarr_format", None) != 3 or not isinstance(store, LocalStore):
        return None
    if not isinstance(meta.chunk_grid, RegularChunkGrid):
        return None
    codecs = tuple(meta.codecs)
    dtype = np.dtype(arr.dtype)
    if not codecs or not isinstance(codecs[0], BytesCodec) or any(not isinstance(c, ZstdCodec) for c in codecs[1:]) or len(codecs) > 2:
        return None
    endian = getattr(codecs[0].endian, "value", codecs[0].endian)
    if dtype.itemsize > 1 and endian != "little" or dtype.byteorder == ">" or dtype.kind not in "biuf":
        return None
    root = Path(store.root) / arr.store_path.path
    return root, tuple(meta.chunk_grid.chunk_shape), dtype, meta.fill_value, meta.chunk_key_encoding, \
        (codecs[1] if len(codecs) == 2 else None)


def chunk_reader(arr) -> ChunkReader | None:
    """A ChunkReader for zarr array `arr`, or None when its store, grid or codecs are not the plain layout."""
    plain = _plain_layout(arr)
    if plain is None:
        return None
    root, chunk_shape, dtype, fill, key, zstd = plain
    return ChunkReader(root, chunk_shape, dtype, fill, key, zstd=zstd is not None)


def chunk_writer(arr) -> ChunkWriter | None:
    """A ChunkWriter for zarr array `arr`, or None when its store, grid or codecs are not the plain layout."""
    plain = _plain_layout(arr)
    if plain is None:
        return None
    root, chunk_shape, dtype, fill, key, zstd = plain
    return ChunkWriter(root, tuple(int(s) for s in arr.shape), chunk_shape, dtype, fill, key, zstd)
