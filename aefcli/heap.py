"""Keep a long embed process's heap from growing with the number of tasks (glibc).

Tasks allocate and free many large numpy buffers (decoded cube chunks, strips,
accumulators, the model's activations) from several threads, and glibc keeps
what they free in fragmented per-thread heaps: left alone, a 16x larger area
ended its tasks at up to 1.45x the resident memory of the first task. Handing
freed memory back after EVERY task (malloc_trim(0)) bounded that, but it also
handed back the model's buffers, which the next task faulted in again: `small`
ran ~15 % slower at 16x the area (benchmarks/README.md, embed section).

So a local run sets glibc up to keep freed buffers for reuse (`configure`: one
heap for all threads, no fresh mmap per buffer, no eager hand-back), and a task's
end trims only when the heap has grown: when its idle memory (resident, but held
by no live allocation: freed buffers glibc keeps) exceeds the most seen at the
ends of the first BASE_TASKS tasks by more than TRIM_SLACK. Memory the caller
holds alive (a chunk cache filling up, a benchmark's inputs) is not idle and never
triggers a trim, which could not hand it back anyway: session 4 compared resident
size with the first task's peak, and the bare forward's inputs that embed_speed.py
keeps between runs made the later runs trim 6-7 times each (the model faulting its
buffers in again after each: ~0.3 s more system time per 1x run). Both are no-ops
where glibc is absent.

`configure` must come before any thread allocates: glibc gives each new thread a heap
of its own until the heap limit is set, and never takes those back. `aef embed` calls
it first thing (`aefcli.embed.start`); called after zarr's and torch's threads had
started, a run kept 7-8 heaps (`heaps()`) and 100-150 MB more at its 16x peak.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import threading
import weakref
from typing import Any, Callable

TRIM_SLACK = 128 * 2**20  # bytes of idle-memory growth over the base tolerated before trimming
BASE_TASKS = 4  # task ends whose idle memory sets the base
ENABLED = True  # benchmarks/embed_speed.py turns it off to compare allocator policies
# glibc settings of a local run (mallopt parameter number, value); glibc's defaults: one heap per
# thread up to 8 per core, buffers >= 128 KiB-32 MiB (adaptive) from fresh mmaps, free heap tops
# over 2x that handed back at once. A buffer that comes from a fresh mmap or a trimmed heap is
# faulted in page by page again, each time.
SETTINGS = (
    ("MALLOC_ARENA_MAX", -8, 1),  # one heap: a buffer freed by one task serves the next on any thread
    ("MALLOC_MMAP_THRESHOLD_", -3, 32 * 2**20),  # buffers up to 32 MiB (glibc's ceiling) from the heap
    ("MALLOC_TRIM_THRESHOLD_", -1, 256 * 2**20),  # free heap top kept up to this; growth beyond: trim_if_grown
)
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_LOCK = threading.RLock()  # re-entrant: a freed buffer's finalizer (`map_outside`) may run while it is held
_STATE: dict[str, Any] = {}


def resident_bytes() -> int:
    """This process's resident set size in bytes (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None


def _glibc():
    with _LOCK:
        if "libc" not in _STATE:
            libc = _libc()
            if libc is not None and hasattr(libc, "mallinfo2"):
                libc.mallinfo2.restype = _MallInfo2
            if libc is not None and hasattr(libc, "malloc_info"):
                libc.fdopen.restype, libc.fdopen.argtypes = ctypes.c_void_p, [ctypes.c_int, ctypes.c_char_p]
                libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
                libc.fclose.argtypes = [ctypes.c_void_p]
            _STATE["libc"] = libc
        return _STATE["libc"]


def configure() -> None:
    """Apply SETTINGS to this process before a local run's worker threads start (heaps are given
    to threads at their first allocation), and to its child processes through the environment.
    A setting the user made in the environment wins."""
    if not ENABLED:
        return
    libc = _glibc()
    for env, param, value in SETTINGS:
        if env in os.environ:
            continue
        os.environ[env] = str(value)
        if libc is not None and hasattr(libc, "mallopt"):
            libc.mallopt(param, int(value))


def heaps() -> int:
    """How many malloc heaps (arenas) this process has (glibc's `malloc_info`); 0 without glibc.

    `configure` asks for one, but glibc fixes the count when a second thread first allocates:
    a run that configures after an import started threads keeps a heap per thread, whose
    tops are handed back and faulted in again batch after batch."""
    import tempfile

    libc = _glibc()
    if libc is None or not hasattr(libc, "malloc_info"):
        return 0
    with tempfile.TemporaryFile() as f:
        stream = libc.fdopen(os.dup(f.fileno()), b"w")
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        f.seek(0)
        return f.read().count(b"<heap nr=")


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def map_outside(nbytes: int):
    """A new anonymous memory map of `nbytes`, outside malloc's heap (e.g. a decoded chunk of
    `aefcli.io.chunk_decode`), counted as live memory, not idle memory, until it is freed."""
    import mmap

    buf = mmap.mmap(-1, nbytes)
    with _LOCK:
        _STATE["outside"] = _STATE.get("outside", 0) + nbytes
    weakref.finalize(buf, _freed_outside, nbytes)
    return buf


def zeros_outside(shape: tuple[int, ...], dtype: Any) -> "np.ndarray":
    """A zeroed array in its own anonymous memory map (the kernel zero-fills it), unmapped when freed.

    For buffers that outlive the tasks around them (an embed run's in-memory parts): in the heap
    they would pin the memory freed between them (fragmentation), which the run's RSS then carries.
    """
    import numpy as np

    n = max(1, int(np.prod(shape)) * np.dtype(dtype).itemsize)
    buf = map_outside(n)
    return np.frombuffer(buf, dtype, count=int(np.prod(shape))).reshape(shape)  # every view keeps the map alive


def _freed_outside(nbytes: int) -> None:
    with _LOCK:
        _STATE["outside"] = _STATE.get("outside", 0) - nbytes


def outside_bytes() -> int:
    """Bytes mapped by `map_outside` and still alive."""
    return int(_STATE.get("outside", 0))


def idle_bytes() -> int:
    """Resident bytes not held by live allocations: RSS - (heap bytes in use + mmapped chunks in
    use) (glibc >= 2.33 mallinfo2) - live buffers outside malloc (`map_outside`). Where mallinfo2
    is missing: the resident size."""
    libc = _glibc()
    rss = resident_bytes()
    if libc is None or not hasattr(libc, "mallinfo2"):
        return rss
    info = libc.mallinfo2()
    return max(rss - int(info.uordblks) - int(info.hblkhd) - outside_bytes(), 0)


def trim_if_grown() -> bool:
    """At a task's end: malloc_trim(0) when idle memory outgrew the base by TRIM_SLACK.

    Returns whether it trimmed. The first BASE_TASKS calls only record the base: the
    largest idle memory at their ends (freed strips, accumulators, model activations:
    what the next tasks reuse; the heap reaches its working size while the first tasks
    of all workers overlap, not at the end of the very first one).
    """
    libc = _glibc()
    if libc is None or not ENABLED or resident_bytes() == 0:
        return False
    idle = idle_bytes()  # outside _LOCK: it takes the lock itself (through _glibc)
    with _LOCK:
        seen = _STATE.get("tasks_seen", 0)
        if seen < BASE_TASKS:
            _STATE["tasks_seen"] = seen + 1
            _STATE["idle_base"] = max(_STATE.get("idle_base", 0), idle)
            return False
        if idle <= _STATE["idle_base"] + TRIM_SLACK:
            return False
        libc.malloc_trim(0)
        _STATE["trims"] = _STATE.get("trims", 0) + 1
        return True


def trims_when_grown(task: Callable) -> Callable:
    """Decorator: `trim_if_grown()` after every call of `task`, however it ends."""

    @functools.wraps(task)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return task(*args, **kwargs)
        finally:
            trim_if_grown()

    return run


def reset() -> None:
    """Forget the recorded base and trim count (a new run in the same process)."""
    with _LOCK:
        _STATE.pop("idle_base", None)
        _STATE.pop("tasks_seen", None)
        _STATE.pop("trims", None)


def trims() -> int:
    """How many times tasks trimmed since the last `reset()`."""
    return int(_STATE.get("trims", 0))
