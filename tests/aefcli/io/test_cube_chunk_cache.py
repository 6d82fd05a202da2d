"""The cube reader's LRU cache of decoded store chunks: same windows as direct reads, bounded RAM."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from aefcli.io.cube import open_cube

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from embed_world import make_cube  # noqa: E402


def test_chunk_cache_reads_equal_direct_reads_and_stay_in_budget(tmp_path):
    path = make_cube(tmp_path / "cube.zarr", size=80, frames=4)
    small = tmp_path / "small.zarr"
    _copy_with_chunks(path, small, 32)  # 32 px store chunks: reads cross chunk borders
    direct = open_cube(small)
    frame_bytes = 10 * 32 * 32 * 4 + 32 * 32  # one frame of one chunk (raw + valid)
    cached = open_cube(small, chunk_cache_bytes=6 * frame_bytes)  # fewer than one read needs: evictions happen
    roomy = open_cube(small, chunk_cache_bytes=2**30)
    for rows, cols in [(slice(-10, 40), slice(5, 70)), (slice(20, 100), slice(-5, 33)), (slice(31, 33), slice(63, 65)),
                       (slice(0, 80), slice(0, 80))]:
        want = direct.read_window("s2", rows, cols, period=("2024-01-01", "2025-01-01"))
        for cube in (cached, roomy, roomy):  # the second roomy read comes from the cache
            got = cube.read_window("s2", rows, cols, period=("2024-01-01", "2025-01-01"))
            np.testing.assert_array_equal(got.values, want.values)
            np.testing.assert_array_equal(got.valid, want.valid)
    assert 0 < cached._chunks.used <= 6 * frame_bytes
    assert roomy._chunks.used == 4 * 80 * 80 * (10 * 4 + 1)  # every frame of every chunk, each held once


def _copy_with_chunks(src: Path, dst: Path, chunk: int) -> None:
    from aefcli.io.cube_writer import SourceArrays, write_cube

    cube = open_cube(src)
    raw, valid = zip(*(cube.read_raw("s2", t) for t in range(len(cube.times["s2"]))))
    arrays = SourceArrays(np.stack(raw), np.stack(valid), cube.times["s2"], cube.bands["s2"], norm=cube.norm["s2"])
    write_cube(dst, {"s2": arrays}, cube.geobox, chunk=chunk)


def test_overlapping_and_concurrent_reads_decode_each_store_chunk_once(tmp_path):
    """Tiled inference: strips of several tasks overlap and start together on the same chunks."""
    from concurrent.futures import ThreadPoolExecutor

    path = make_cube(tmp_path / "cube.zarr", size=80, frames=4)
    small = tmp_path / "small.zarr"
    _copy_with_chunks(path, small, 32)  # 3 x 3 store chunks per frame
    period = ("2024-01-01", "2025-01-01")
    direct = open_cube(small)
    cube = open_cube(small, chunk_cache_bytes=2**30)
    strips = [(slice(r, r + 40), slice(c, c + 50)) for r in range(-8, 80, 24) for c in (-10, 30)]  # overlapping

    def read(rc):
        return cube.read_window("s2", *rc, period=period)

    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(read, strips * 2))  # each strip twice, four readers at once
    assert cube.chunks_decoded == 4 * 9  # frames x store chunks: every one decoded once, whatever the overlaps
    assert None not in cube._readers["s2"]  # decoded straight from the chunk files (aefcli.io.chunk_decode)
    for rc, win in zip(strips * 2, got):
        want = direct.read_window("s2", *rc, period=period)
        np.testing.assert_array_equal(win.values, want.values)
        np.testing.assert_array_equal(win.valid, want.valid)


def test_cached_chunks_are_per_statistics(tmp_path):
    """A read with other statistics (a checkpoint's) never gets values standardised with the cube's."""
    from aefcli.normalise import NormStats

    path = make_cube(tmp_path / "cube.zarr", size=48, frames=2)
    cube = open_cube(path, chunk_cache_bytes=2**30)
    own = cube.norm["s2"]
    other = NormStats(own.transform, own.bands, tuple(m + 1.0 for m in own.mean), own.std)
    rows, cols, period = slice(0, 48), slice(0, 48), ("2024-01-01", "2025-01-01")
    a = cube.read_window("s2", rows, cols, period=period)
    b = cube.read_window("s2", rows, cols, period=period, norm=other)
    diff = np.moveaxis(a.values - b.values, 1, -1)[a.valid]  # (valid pixels, bands)
    np.testing.assert_allclose(diff, np.broadcast_to(1.0 / np.asarray(own.std), diff.shape), rtol=1e-3)
    np.testing.assert_array_equal(b.values, open_cube(path).read_window("s2", rows, cols, period=period, norm=other).values)
