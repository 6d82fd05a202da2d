"""aefcli.heap: the embed tasks' allocator policy (glibc on Linux)."""

import gc
import os

import numpy as np
import pytest

from aefcli import heap

pytestmark = pytest.mark.skipif(heap.resident_bytes() == 0 or heap._glibc() is None, reason="needs Linux /proc and glibc")


@pytest.fixture
def fresh(monkeypatch):
    heap.reset()
    monkeypatch.setattr(heap, "ENABLED", True)
    yield
    heap.reset()


def test_resident_bytes_follow_touched_memory():
    gc.collect()  # earlier tests' garbage freed now, not while the block is measured
    heap._glibc().malloc_trim(0)  # their freed buffers (kept by a run's heap settings) would serve the block
    before = heap.resident_bytes()
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, every page touched
    assert heap.resident_bytes() - before > 48 * 2**20
    del block


def test_trims_only_when_grown_past_the_first_tasks_end(fresh, monkeypatch):
    monkeypatch.setattr(heap, "TRIM_SLACK", 32 * 2**20)
    for _ in range(heap.BASE_TASKS):  # the first tasks' ends record the base
        assert heap.trim_if_grown() is False
    assert heap._STATE["tasks_seen"] == heap.BASE_TASKS and heap._STATE["idle_base"] > 0
    assert heap.trim_if_grown() is False and heap.trims() == 0  # no growth: nothing handed back
    monkeypatch.setitem(heap._STATE, "idle_base", heap.idle_bytes() - 64 * 2**20)  # as if 64 MiB idle were gained
    assert heap.trim_if_grown() is True and heap.trims() == 1


def test_memory_held_alive_never_trims_freed_heap_memory_does(fresh, monkeypatch):
    """Live data (a cache filling up, a caller's arrays) is not idle; buffers glibc keeps after free are."""
    monkeypatch.setattr(heap, "TRIM_SLACK", 64 * 2**20)
    for _ in range(heap.BASE_TASKS):
        assert heap.trim_if_grown() is False  # the base
    held = np.ones(192 * 2**20 // 8)  # 192 MiB resident and alive
    assert heap.trim_if_grown() is False and heap.trims() == 0
    del held
    blocks = [np.ones(100 * 1024 // 8) for _ in range(1920)]  # 192 MiB of heap blocks (below the mmap threshold)
    pin = np.ones(100 * 1024 // 8)  # keeps the blocks below the heap's top, so free() cannot hand them back itself
    before = heap.idle_bytes()
    del blocks
    assert heap.idle_bytes() - before > 160 * 2**20  # freed, still resident: idle
    assert heap.trim_if_grown() is True and heap.trims() == 1
    assert heap.idle_bytes() < before + 64 * 2**20  # handed back to the OS
    del pin


def test_disabled_policy_never_trims(fresh, monkeypatch):
    monkeypatch.setattr(heap, "ENABLED", False)
    heap._STATE.update(idle_base=0, tasks_seen=heap.BASE_TASKS)
    assert heap.trim_if_grown() is False and heap.trims() == 0


def test_decorated_task_trims_even_when_it_raises(fresh, monkeypatch):
    calls = []
    monkeypatch.setattr(heap, "trim_if_grown", lambda: calls.append(1))

    @heap.trims_when_grown
    def task(fail):
        if fail:
            raise ValueError("boom")
        return 7

    assert task(False) == 7
    with pytest.raises(ValueError):
        task(True)
    assert len(calls) == 2


def test_configure_sets_glibc_and_children_but_user_settings_win(fresh, monkeypatch):
    for env, _, _ in heap.SETTINGS:
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    monkeypatch.setattr(heap, "_glibc", lambda: None)  # leave this test process's own allocator alone
    heap.configure()
    assert os.environ["MALLOC_ARENA_MAX"] == "4"
    for env, _, value in heap.SETTINGS[1:]:
        assert os.environ[env] == str(value)


def test_buffers_outside_the_heap_count_as_live_until_freed(fresh, monkeypatch):
    import gc

    from aefcli.io import chunk_decode
    from aefcli.io.chunk_decode import _outside_heap

    monkeypatch.setattr(chunk_decode, "SPARE_MAPS", 0)  # a freed map is unmapped at once

    before_out, before_idle = heap.outside_bytes(), heap.idle_bytes()
    a = _outside_heap((16, 2**20 // 4), np.float32)  # 16 MiB in its own map
    a[:] = 1.0  # resident now
    view = a[3:]
    del a
    assert heap.outside_bytes() - before_out == 16 * 2**20  # a view keeps it alive
    assert heap.idle_bytes() < before_idle + 8 * 2**20  # resident, but live: not idle
    del view
    gc.collect()
    assert heap.outside_bytes() == before_out


def test_a_freed_chunk_map_serves_the_next_chunk_of_its_size(fresh, monkeypatch):
    from aefcli.io import chunk_decode

    monkeypatch.setattr(chunk_decode, "_SPARE", {})
    monkeypatch.setattr(chunk_decode, "SPARE_MAPS", 1)
    a = chunk_decode._outside_heap((4, 2**20 // 4), np.float32)
    where = a.__array_interface__["data"][0]
    held = heap.outside_bytes()
    del a  # its map is kept (resident: still counted outside the heap, never as idle)
    b = chunk_decode._outside_heap((2**20 // 4, 4), np.float32)  # same bytes, any shape
    assert b.__array_interface__["data"][0] == where and heap.outside_bytes() == held
    c = chunk_decode._outside_heap((4, 2**20 // 4), np.float32)  # none spare: a new map
    assert c.__array_interface__["data"][0] != where and heap.outside_bytes() == held + 4 * 2**20
    del b, c  # one kept, one unmapped
    assert heap.outside_bytes() == held


def test_zeros_outside_the_heap_are_zero_and_live_until_freed(fresh):
    import gc

    before = heap.outside_bytes()
    a = heap.zeros_outside((3, 2**20 // 4), np.float32)  # 3 MiB in its own map
    assert a.shape == (3, 2**20 // 4) and a.dtype == np.float32 and not a.any()
    a += 1.0  # writable, resident now
    assert heap.outside_bytes() - before == 3 * 2**20
    del a
    gc.collect()
    assert heap.outside_bytes() == before  # unmapped with the array, none kept spare


def test_an_embed_run_keeps_all_its_threads_on_one_heap(tmp_path):
    """`aef embed` sets glibc up before any import starts a thread (zarr's, torch's): in a fresh
    process, the run's worker threads then share the one heap the settings ask for."""
    import subprocess
    import sys

    from embed_world import bbox_of, make_checkpoint, make_cube

    cube = make_cube(tmp_path / "cube.zarr", size=64)
    ckpt = make_checkpoint(tmp_path / "run", cube)
    code = f"""
from pathlib import Path
from aefcli import heap
from aefcli.embed import EmbedConfig, run
run(EmbedConfig(checkpoint=Path({str(ckpt)!r}), cube=Path({str(cube)!r}), out=Path({str(tmp_path / 'emb.zarr')!r}),
                period="2024-01-01/2025-01-01", bbox={bbox_of(64)!r}, window=32, overlap=8, chunk=16, workers=2))
print(heap.heaps())
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.split()[-1]) == 1
