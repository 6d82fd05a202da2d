"""Large files are written whole and past the page cache; a filesystem without direct I/O gets a plain write."""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
from pathlib import Path

import numpy as np
import pytest
import zarr

from aefcli.io import direct_write
from aefcli.io.chunk_decode import chunk_writer
from aefcli.io.direct_write import BLOCK, MIN_BYTES, PIECE, write_new_file


def _cached_pages(path: Path) -> int:
    """Pages of `path` in the page cache (mincore over a read-only map of it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    size = path.stat().st_size
    pages = -(-size // mmap.PAGESIZE)
    with open(path, "rb") as f:
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, f.fileno(), 0)
        assert addr not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
    try:
        vec = ctypes.create_string_buffer(pages)
        assert libc.mincore(addr, size, vec) == 0, os.strerror(ctypes.get_errno())
        return sum(b & 1 for b in vec.raw)
    finally:
        libc.munmap(addr, size)


def _page_cache_fs(path: Path) -> bool:
    """Whether `path` lies on a filesystem that holds its files in the page cache itself (tmpfs, ramfs)."""
    best, fstype = "", ""
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mount, kind = line.split()[:3]
        if path.is_relative_to(mount) and len(mount) > len(best):
            best, fstype = mount, kind
    return fstype in ("tmpfs", "ramfs")


@pytest.mark.parametrize("size", [100, MIN_BYTES - 1, MIN_BYTES, MIN_BYTES + 1, 3 * MIN_BYTES + BLOCK + 777, 2 * PIECE + 3 * BLOCK + 11])
def test_files_are_written_whole(tmp_path, size):
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * (size + 5000))  # an older, longer file of that name is replaced, not patched
    write_new_file(path, data)
    assert path.read_bytes() == data


def test_a_large_file_skips_the_page_cache_save_its_last_block(tmp_path):
    if _page_cache_fs(tmp_path):
        pytest.skip("the test folder is on tmpfs: its files are page-cache pages")
    size = PIECE + 4 * MIN_BYTES + 123  # two pieces and a tail
    path = tmp_path / "f.bin"
    write_new_file(path, np.ones(size, np.uint8))
    direct = _cached_pages(path)
    direct_write.ENABLED = False
    try:
        write_new_file(tmp_path / "g.bin", np.ones(size, np.uint8))
    finally:
        direct_write.ENABLED = True
    assert direct <= 1  # the tail under one block goes through the cache
    assert _cached_pages(tmp_path / "g.bin") > size // mmap.PAGESIZE // 2  # a plain write leaves it cached
    assert path.read_bytes() == b"\x01" * size


def test_a_filesystem_without_direct_io_gets_a_plain_write(tmp_path, monkeypatch):
    real_open = os.open

    def no_direct(path, flags, *a):  # what a filesystem without O_DIRECT answers
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *a)

    monkeypatch.setattr(direct_write.os, "open", no_direct)
    data = bytes(range(256)) * (MIN_BYTES // 128)
    write_new_file(tmp_path / "f.bin", data)
    assert (tmp_path / "f.bin").read_bytes() == data


def test_embedding_chunks_go_past_the_page_cache(tmp_path):
    if _page_cache_fs(tmp_path):
        pytest.skip("the test folder is on tmpfs: its files are page-cache pages")
    arr = zarr.create_array(tmp_path / "e.zarr", shape=(128, 128, 64), chunks=(128, 128, 64), dtype="float32",
                            fill_value=np.nan, compressors=None)
    block = np.random.default_rng(0).random((128, 128, 64), dtype=np.float32)
    writer = chunk_writer(zarr.open_array(tmp_path / "e.zarr", mode="r+"))
    writer.write((0, 0, 0), block)
    assert _cached_pages(writer.path((0, 0, 0))) <= 1
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "e.zarr", mode="r")[...], block)
