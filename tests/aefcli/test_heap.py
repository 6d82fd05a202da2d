"""aefcli.heap: the embed tasks' allocator policy (glibc on Linux)."""

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
    before = heap.resident_bytes()
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, every page touched
    assert heap.resident_bytes() - before > 48 * 2**20
    assert heap.peak_resident_bytes() >= heap.resident_bytes()
    del block


def test_trims_only_when_grown_past_the_first_tasks_peak(fresh, monkeypatch):
    monkeypatch.setattr(heap, "TRIM_SLACK", 32 * 2**20)
    assert heap.trim_if_grown() is False  # the first task's end records the working set
    assert heap.trim_if_grown() is False and heap.trims() == 0  # no growth: nothing handed back
    monkeypatch.setitem(heap._STATE, "working_set", heap.resident_bytes() - 64 * 2**20)  # as if 64 MiB were gained
    assert heap.trim_if_grown() is True and heap.trims() == 1


def test_disabled_policy_never_trims(fresh, monkeypatch):
    monkeypatch.setattr(heap, "ENABLED", False)
    heap._STATE["working_set"] = 0
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
