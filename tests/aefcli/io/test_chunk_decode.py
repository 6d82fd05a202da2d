"""Direct whole-chunk reads of local Zarr v3 arrays equal zarr's own reads, direct writes are the files zarr
writes; other layouts are refused."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from aefcli.io.chunk_decode import chunk_reader, chunk_writer


@pytest.mark.parametrize("compressed", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "bool", "int16"])
def test_reads_equal_zarr_including_edge_and_unwritten_chunks(tmp_path, dtype, compressed):
    rng = np.random.default_rng(0)
    shape, chunks = (3, 2, 70, 50), (1, 2, 32, 32)  # edge chunks in y and x
    fill = False if dtype == "bool" else (np.nan if dtype == "float32" else -7)
    arr = zarr.create_array(tmp_path / "a.zarr", shape=shape, chunks=chunks, dtype=dtype, fill_value=fill,
                            compressors=zarr.codecs.ZstdCodec(level=1) if compressed else None)
    data = (rng.random(shape) * 1000).astype(dtype)
    arr[:2] = data[:2]  # frame 2 is never written: its chunks are the fill value
    reader = chunk_reader(zarr.open_array(tmp_path / "a.zarr", mode="r"))
    assert reader is not None
    for t in range(3):
        for cy in range(3):
            for cx in range(2):
                got = reader.read((t, 0, cy, cx))
                assert got.shape == chunks and got.dtype == np.dtype(dtype)
                y, x = slice(cy * 32, min(cy * 32 + 32, 70)), slice(cx * 32, min(cx * 32 + 32, 50))
                want = np.asarray(arr[t : t + 1, :, y, x])
                np.testing.assert_array_equal(got[:, :, : y.stop - y.start, : x.stop - x.start], want)
                if t == 2:
                    np.testing.assert_array_equal(got, np.full(chunks, fill, dtype))


def test_other_layouts_go_through_zarr(tmp_path):
    blosc = zarr.create_array(tmp_path / "b.zarr", shape=(64,), chunks=(32,), dtype="float32",
                              compressors=zarr.codecs.BloscCodec())
    sharded = zarr.create_array(tmp_path / "s.zarr", shape=(64,), chunks=(16,), shards=(32,), dtype="float32")
    in_memory = zarr.create_array(zarr.storage.MemoryStore(), shape=(64,), chunks=(32,), dtype="float32")
    big_endian = zarr.create_array(tmp_path / "e.zarr", shape=(64,), chunks=(32,), dtype=">f4",
                                   serializer=zarr.codecs.BytesCodec(endian="big"))
    v2 = zarr.create_array(tmp_path / "v2.zarr", shape=(64,), chunks=(32,), dtype="float32", zarr_format=2)
    for arr in (blosc, sharded, in_memory, big_endian, v2):
        assert chunk_reader(arr) is None, arr
        assert chunk_writer(arr) is None, arr


def test_a_corrupt_chunk_raises(tmp_path):
    arr = zarr.create_array(tmp_path / "a.zarr", shape=(8, 8), chunks=(8, 8), dtype="float32")
    arr[:] = 1.0
    (tmp_path / "a.zarr" / "c" / "0" / "0").write_bytes(b"not zstd")
    with pytest.raises(Exception):
        chunk_reader(arr).read((0, 0))


@pytest.mark.parametrize("level", [None, 0, 5])
@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_writes_are_the_files_zarr_writes_including_edge_chunks(tmp_path, dtype, level):
    rng = np.random.default_rng(1)
    shape, chunks = (70, 50, 4), (32, 32, 4)  # edge chunks in y and x, stored whole
    fill = np.nan if dtype == "float32" else -128
    data = (rng.normal(size=shape) * (1 if dtype == "float32" else 50)).astype(dtype)
    data[3, 4] = fill
    made = {}
    for name in ("zarr", "direct"):
        made[name] = zarr.create_array(tmp_path / f"{name}.zarr", shape=shape, chunks=chunks, dtype=dtype, fill_value=fill,
                                       compressors=None if level is None else zarr.codecs.ZstdCodec(level=level),
                                       config={"write_empty_chunks": True})
    made["zarr"][:] = data
    writer = chunk_writer(made["direct"])
    for cy in range(3):
        for cx in range(2):
            writer.write((cy, cx, 0), data[cy * 32 : cy * 32 + 32, cx * 32 : cx * 32 + 32])
    files = {n: sorted(p.relative_to(tmp_path / f"{n}.zarr") for p in (tmp_path / f"{n}.zarr" / "c").rglob("*") if p.is_file())
             for n in made}
    assert files["direct"] == files["zarr"] and len(files["zarr"]) == 6  # no .partial left behind
    for rel in files["zarr"]:
        assert (tmp_path / "direct.zarr" / rel).read_bytes() == (tmp_path / "zarr.zarr" / rel).read_bytes(), rel
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "direct.zarr", mode="r")[:], data)


def test_a_write_must_cover_the_chunk_and_match_the_dtype(tmp_path):
    arr = zarr.create_array(tmp_path / "a.zarr", shape=(40, 40), chunks=(32, 32), dtype="float32")
    writer = chunk_writer(arr)
    with pytest.raises(ValueError, match="holds"):
        writer.write((0, 0), np.zeros((16, 32), np.float32))
    with pytest.raises(ValueError, match="holds"):
        writer.write((1, 1), np.zeros((32, 32), np.float32))  # the edge chunk holds 8 x 8
    with pytest.raises(ValueError, match="dtype"):
        writer.write((0, 0), np.zeros((32, 32), np.float64))
    assert not list((tmp_path / "a.zarr").rglob("c/*"))


def test_decoded_chunks_live_outside_mallocs_heap(tmp_path):
    """A decoded chunk (kept long in the cube's LRU) takes no heap memory, so it cannot pin freed heap blocks."""
    from aefcli import heap

    libc = heap._glibc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        pytest.skip("needs glibc's mallinfo2")
    arr = zarr.create_array(tmp_path / "a.zarr", shape=(4, 512, 512), chunks=(4, 512, 512), dtype="float32",
                            compressors=zarr.codecs.ZstdCodec(level=1))
    arr[:] = np.arange(4 * 512 * 512, dtype=np.float32).reshape(4, 512, 512)
    reader = chunk_reader(arr)
    before = libc.mallinfo2().uordblks
    got = reader.read((0, 0, 0))  # 4 MiB
    assert libc.mallinfo2().uordblks - before < 2**20
    np.testing.assert_array_equal(got, arr[:])
    got += 1  # the caller may standardise it in place
    assert got.flags.writeable and got[0, 0, 0] == 1
