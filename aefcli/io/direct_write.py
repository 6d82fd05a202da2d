"""Large new files written past the page cache (O_DIRECT) where the filesystem allows it.

A buffered write copies every byte into page-cache pages the kernel must first find. On
a VM whose balloon reports free memory back to the host (the machines aef is measured
on), such pages are cold: ~9 µs each on first touch, so one 16.8 MB embedding chunk
cost 35-45 ms of CPU against 3-4 ms on recently freed pages. With O_DIRECT the device
reads the bytes from an aligned copy: 2-5 ms of CPU and 10-15 ms of wall time for the
same chunk, the copy included (benchmarks/README.md, "Session 10" and "Session 11"). An output cube is
written once and read later, so keeping it in the page cache buys nothing either.

The bulk of a file (whole blocks) goes out PIECE bytes at a time through a page-aligned
buffer kept per thread (a fresh one would pay its page faults again); the tail, under one
block, through a plain write. A filesystem that refuses O_DIRECT (tmpfs before Linux
6.6, some network filesystems) gets a plain write, as do files under MIN_BYTES.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import threading
from pathlib import Path

ENABLED = True  # False: every file through the page cache (an A/B knob of benchmarks/embed_speed.py)
BLOCK = 4096  # the alignment O_DIRECT asks of offsets, lengths and buffers on common filesystems
MIN_BYTES = 2**20  # smaller files: a plain write (the buffer copy and device wait would not pay)
PIECE = 4 * 2**20  # bytes per direct write: the aligned buffer each writing thread keeps (memory stays flat)
_THREAD = threading.local()  # this thread's aligned buffer, up to PIECE bytes


def write_new_file(path: str | Path, payload) -> None:
    """Create (or truncate) `path` and write `payload` (bytes-like) to it, past the page cache where possible.

    Not atomic by itself: callers write a temporary name and rename it into place.
    """
    data = memoryview(payload).cast("B")
    bulk = len(data) - len(data) % BLOCK if ENABLED and len(data) >= MIN_BYTES and hasattr(os, "O_DIRECT") else 0
    if bulk:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o666)
        except OSError as err:
            if err.errno != errno.EINVAL:  # EINVAL: this filesystem has no direct I/O
                raise
        else:
            try:
                if _write_direct(fd, data, bulk):
                    return
            finally:
                os.close(fd)
    with open(path, "wb") as f:
        f.write(data)


def _write_direct(fd: int, data: memoryview, bulk: int) -> bool:
    """data[:bulk] through O_DIRECT, PIECE bytes at a time from an aligned copy, then the tail
    buffered; False when the filesystem rejected the direct write (the caller rewrites the file plainly)."""
    buf = _aligned_buffer(min(PIECE, bulk))
    view = memoryview(buf)
    try:
        for start in range(0, bulk, PIECE):
            n = min(PIECE, bulk - start)
            view[:n] = data[start : start + n]
            done = 0
            while done < n:
                done += os.write(fd, view[done:n])
    except OSError as err:
        if err.errno != errno.EINVAL:
            raise
        return False
    finally:
        view.release()
    if bulk < len(data):
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_DIRECT)
        tail = data[bulk:]
        while len(tail):
            tail = tail[os.write(fd, tail):]
    return True


def _aligned_buffer(n: int) -> mmap.mmap:
    """This thread's page-aligned buffer of at least n bytes (kept: a fresh map pays its page faults again)."""
    buf = getattr(_THREAD, "buf", None)
    if buf is None or len(buf) < n:
        from aefcli.heap import map_outside

        if buf is not None:
            buf.close()
        buf = map_outside(n)
        _THREAD.buf = buf
    return buf
