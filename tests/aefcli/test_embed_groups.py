"""`aef embed` computes every window once: window owners, part files, resume from saved parts, period check."""

from __future__ import annotations

import mmap
import shutil

import numpy as np
import pytest

from aefcli.embed import EmbedConfig, plan, run
from aefcli.errors import InputError
from aefcli.io.embedding_store import open_embeddings
from aefcli.tiling import Layout, chunk_grid, owned_windows, owner, owners_of, targets
from embed_world import bbox_of, make_checkpoint, make_cube

SIZE = 96
PERIOD = "2024-01-01/2025-01-01"


@pytest.mark.parametrize("window,overlap,chunk,origin", [(32, 8, 16, (3, 5)), (32, 8, 32, (0, 0)), (128, 32, 48, (-7, 11)),
                                                         (64, 0, 40, (1, 2))])
def test_every_window_has_one_owner_among_the_chunks_it_reaches(window, overlap, chunk, origin):
    lay, shape = Layout(window, overlap, chunk, origin=origin), (SIZE, SIZE - 10)
    chunks = chunk_grid(shape, chunk)
    area = set(lay.windows((0, shape[0]), (0, shape[1])))
    owned = [w for c in chunks for w in owned_windows(lay, shape, c)]
    assert sorted(owned) == sorted(area)  # each window of the area owned exactly once
    per_chunk = sum(len(lay.windows(c.rows, c.cols)) for c in chunks)
    for c in chunks:
        reach = lay.windows(c.rows, c.cols)  # what the chunk's blend needs
        assert all((c.i, c.j) in targets(lay, shape, *w) for w in reach)
        assert owners_of(lay, shape, c) == sorted({owner(lay, shape, *w) for w in reach})
        assert (c.i, c.j) in owners_of(lay, shape, c) or not owned_windows(lay, shape, c)
    if overlap:
        assert per_chunk > len(area)  # windows straddle chunk borders: the old per-chunk work was larger


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("gworld")
    cube = make_cube(d / "cube.zarr", size=SIZE)
    return d, cube, make_checkpoint(d / "run", cube)


def _cfg(world, name, **kw):
    d, cube, ckpt = world
    base = dict(checkpoint=ckpt, out=d / name, period=PERIOD, cube=cube, bbox=bbox_of(SIZE), window=32, overlap=8, chunk=16,
                dtype="int8", workers=1)
    return EmbedConfig(**{**base, **kw})


def test_a_run_computes_each_window_once_and_leaves_no_parts(world):
    cfg = _cfg(world, "once.zarr")
    shutil.rmtree(cfg.out, ignore_errors=True)
    p = plan(cfg)
    result = run(cfg)
    assert result["complete"] and result["tiles_done"] == len(p.chunks) == 36
    lay = p.job.layout
    unique = len(lay.windows((0, SIZE), (0, SIZE)))
    assert result["windows"] == unique == p.windows  # the sample world has data in every window
    assert sum(len(lay.windows(c.rows, c.cols)) for c in p.chunks) > 2 * unique
    assert not (cfg.out / ".aef-parts").exists()


def test_resume_reuses_saved_parts_and_gives_the_same_store(world):
    from aefcli.embed_parts import part_path
    from aefcli.embed_task import compute_windows
    from aefcli.io.embedding_store import create_store

    reference = run(_cfg(world, "ref.zarr", overwrite=True))
    cfg = _cfg(world, "parts.zarr")
    shutil.rmtree(cfg.out, ignore_errors=True)
    p = plan(cfg)
    create_store(cfg.out, p.geobox, list(range(64)), cfg.dtype, cfg.chunk, p.attrs)
    # what a killed run leaves: the parts of one owner, saved before any chunk was written
    first = p.chunks[0]
    wanted = sorted({t for w in owned_windows(p.job.layout, p.job.shape, first) for t in targets(p.job.layout, p.job.shape, *w)})
    done = compute_windows(p.job, first, wanted)
    assert done["windows"] > 0 and all(part_path(p.job, (0, 0), t).is_file() for t in wanted)
    result = run(cfg)
    assert result["complete"] and result["windows"] == reference["windows"] - done["windows"]
    np.testing.assert_array_equal(open_embeddings(cfg.out).values, open_embeddings(reference["store"]).values)


def test_period_longer_than_the_checkpoint_was_trained_for_is_refused(world, tmp_path):
    d, cube, _ = world
    # `aef train` records support_days = (shortest, longest) valid period in days
    short = make_checkpoint(tmp_path / "short", cube, train_args={"support_days": [30.0, 60.0]})
    with pytest.raises(InputError, match="at most 60 days") as err:
        plan(_cfg(world, "p.zarr", checkpoint=short))
    assert "\n" not in str(err.value)
    ok = plan(_cfg(world, "p.zarr", checkpoint=short, period="2024-02-01/2024-05-01"))  # 90 days <= 2 x 60
    assert ok.windows > 0
    plan(_cfg(world, "p.zarr"))  # no support_days recorded: any period



def _root(a: np.ndarray):
    """The object that owns an array's memory (an mmap for buffers outside the heap)."""
    while isinstance(a, np.ndarray) and a.base is not None:
        a = a.base
    return a.obj if isinstance(a, memoryview) else a


def test_one_process_hands_parts_over_in_memory_with_the_same_store_as_part_files(world, monkeypatch):
    """A threaded run keeps its parts in memory (no part file is written, none is left held) and
    gives, bitwise, the store that the same tasks give through part files."""
    from dataclasses import replace

    import aefcli.embed_parts as parts_mod
    import aefcli.embed_task as task
    from aefcli.embed_dask import _graph
    from aefcli.io.embedding_store import create_store
    from aefcli.tiling import chunk_at

    written, save_sums = [], parts_mod.save_sums
    monkeypatch.setattr(parts_mod, "save_sums", lambda path, *a: written.append(path) or save_sums(path, *a))
    reference = run(_cfg(world, "ref.zarr", overwrite=True))
    assert written == [] and parts_mod.held_parts() == 0
    for token, name in (("", "files.zarr"), ("run-1", "memory.zarr")):
        cfg = _cfg(world, name)
        shutil.rmtree(cfg.out, ignore_errors=True)
        p = plan(cfg)
        create_store(cfg.out, p.geobox, list(range(64)), cfg.dtype, cfg.chunk, p.attrs)
        job = replace(p.job, local_parts=token)
        wanted, _ = _graph(job, p.chunks)
        for o, t in wanted.items():
            task.compute_windows(job, chunk_at(job.shape, job.layout.chunk, *o), t)
        files = list((cfg.out / parts_mod.PARTS).glob("*.npy"))
        parts = sum(len(t) for t in wanted.values())  # one part per (owner, chunk it reaches)
        assert (len(files), parts_mod.held_parts(token)) == ((0, parts) if token else (parts, 0))
        if token:  # held parts live in their own memory maps, outside malloc's heap
            assert all(isinstance(_root(a), mmap.mmap) for part in parts_mod._HELD._parts.values() for a in part[2:])
        for c in p.chunks:
            task.embed_chunk(job, c)
        assert parts_mod.held_parts(token) == 0 and not list((cfg.out / parts_mod.PARTS).glob("*.npy"))
        np.testing.assert_array_equal(open_embeddings(cfg.out, allow_incomplete=True).values,
                                      open_embeddings(reference["store"]).values)


def test_the_chunk_cache_holds_what_a_strip_reads_so_each_frame_chunk_is_decoded_once(world, tmp_path, monkeypatch):
    """With a floor far below one chunk position's frames, the run still decodes each store
    frame-chunk once: the cache is sized to two positions of the run's period."""
    import aefcli.embed_task as task

    monkeypatch.setattr(task, "CHUNK_CACHE_BYTES", 1)
    cube_path = make_cube(tmp_path / "cube.zarr", size=SIZE, frames=7)
    cfg = _cfg(world, "cache.zarr", cube=cube_path, overwrite=True)
    try:
        assert run(cfg)["complete"]
        cube = task._cube(str(cube_path))
        frames = len(cube.frame_indices("s2"))
        assert cube.chunks_decoded == frames  # one position, every frame once
        need = 2 * cube.chunk_position_bytes("s2")
        assert task.chunk_cache_bytes(cube, ["s2"], None) == need > 1
    finally:
        task._CACHE.pop(("cube", str(cube_path)), None)


def test_windows_tasks_run_in_store_chunk_bands_and_decode_less_than_in_dask_order(world, tmp_path, monkeypatch):
    """The windows tasks start in `band_order` (bands one store chunk tall, swept column by
    column, every other band backwards); with the cache at its size of two positions, that
    decodes fewer store chunks than dask's own order, and the store is bitwise the same."""
    from dask.callbacks import Callback

    import aefcli.embed_dask as embed_dask
    import aefcli.embed_task as task

    monkeypatch.setattr(task, "CHUNK_CACHE_BYTES", 1)  # the cache holds what CACHED_POSITIONS asks, no more
    cube_path = make_cube(tmp_path / "cube.zarr", size=SIZE, frames=4, chunk=32)
    started: list[tuple[int, int]] = []

    class Started(Callback):
        def _pretask(self, key, dsk, state):  # noqa: ANN001 - dask's signature
            if key.startswith(embed_dask.WINDOWS_PREFIX):
                started.append(tuple(int(v) for v in key.rsplit("-", 2)[1:]))

    decoded, stores = {}, {}
    for band in (True, False):
        monkeypatch.setattr(embed_dask, "BAND_ORDER", band)
        cfg = _cfg(world, f"band-{band}.zarr", cube=cube_path, overwrite=True)
        started.clear()
        try:
            with Started():
                assert run(cfg)["complete"]
            decoded[band] = task._cube(str(cube_path)).chunks_decoded
        finally:
            task._CACHE.pop(("cube", str(cube_path)), None)
        stores[band] = open_embeddings(cfg.out).values
        if band:
            order = embed_dask.band_order(plan(cfg).job, list(started))
            assert started == order
            bands = [i * 16 // 32 for i, _ in order]  # 16 px output chunks, 32 px store chunks
            assert bands == sorted(bands) and len(set(bands)) == 3  # band after band
            for b in set(bands):
                cols = [j for (_, j), k in zip(order, bands) if k == b]
                assert cols == sorted(cols, reverse=b % 2 == 1)  # every other band swept backwards
    assert decoded[True] < decoded[False]
    np.testing.assert_array_equal(stores[True], stores[False])


def test_parts_beyond_the_memory_budget_spill_to_files_with_the_same_store(world, monkeypatch):
    import aefcli.embed_parts as parts_mod

    reference = run(_cfg(world, "ref.zarr", overwrite=True))
    written, save_sums = [], parts_mod.save_sums
    monkeypatch.setattr(parts_mod, "save_sums", lambda path, *a: written.append(path) or save_sums(path, *a))
    monkeypatch.setattr(parts_mod, "HELD_BYTES", 3 * 16 * 16 * 64 * 4)  # about three parts of a 16 px chunk at once
    cfg = _cfg(world, "spill.zarr", overwrite=True)
    result = run(cfg)
    parts = sum(len(owners_of(plan(cfg).job.layout, plan(cfg).job.shape, c)) for c in plan(cfg).chunks)
    assert result["complete"] and 0 < len(written) < parts  # some parts in memory, the rest in files
    assert parts_mod.held_parts() == 0 and not (cfg.out / parts_mod.PARTS).exists()
    np.testing.assert_array_equal(open_embeddings(cfg.out).values, open_embeddings(reference["store"]).values)
