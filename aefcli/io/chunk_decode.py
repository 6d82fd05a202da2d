"""Whole-chunk reads of a local Zarr v3 array without zarr's async machinery (embed's hot path).

zarr-python 3 reads a chunk through an asyncio loop, a thread pool and intermediate
buffers: a 10-band 512 px float32 frame-chunk of a cube costs ~10 ms where the zstd
decode itself is ~6.5 ms, and two tasks decoding the 6 frame-chunks of a run's first
strip together took 75-215 ms through zarr against 50-70 ms read here
(benchmarks/README.md, embed section). `ChunkReader.read` reads the chunk's file and
decompresses it straight into a numpy array.

It serves the one layout aef's cubes use (`aefcli.io.cube_writer`): a local store, a
regular chunk grid, codecs `bytes` (little-endian, or 1-byte types) then optionally
`zstd`. For any other array `chunk_reader` returns None and the caller reads through zarr.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


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
        out = np.empty(self.chunk_shape, self.dtype)
        if self._zstd is None:
            out.reshape(-1).view(np.uint8)[:] = np.frombuffer(data, np.uint8)
        else:
            self._zstd.decode(data, out=out)  # raises when the decoded size is not the chunk's
        return out


def chunk_reader(arr) -> ChunkReader | None:
    """A ChunkReader for zarr array `arr`, or None when its store, grid or codecs are not the plain layout."""
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
    return ChunkReader(root, tuple(meta.chunk_grid.chunk_shape), dtype, meta.fill_value, meta.chunk_key_encoding,
                       zstd=len(codecs) == 2)
