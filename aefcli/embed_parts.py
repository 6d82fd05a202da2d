"""Where the window parts of `aef embed` live between its two kinds of task (`aefcli.embed_task`).

A part is the weighted sums of one owner chunk's windows over one target chunk:
(row0, col0, acc (h, w, 64), wsum (h, w), has_data (h, w)). Under a process or cluster
scheduler parts are files in `<store>/.aef-parts/` (atomic; a resumed run reuses what a
killed run saved). When every task of a run shares one process (`EmbedJob.local_parts`,
the threaded scheduler), they are handed over in memory instead, up to HELD_BYTES per
process: writing and reading them back cost a tiny model ~8 % of its run. Such parts are
allocated in their own memory maps (`embed_task.PARTS_OUTSIDE_HEAP`), not in the heap they
would fragment. Each part has one reader, which takes it.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from aefcli.tiling import Blender

if TYPE_CHECKING:  # pragma: no cover
    from aefcli.embed_task import EmbedJob

PARTS = ".aef-parts"  # inside the store: zarr ignores a folder without zarr.json


def part_path(job: EmbedJob, owner: tuple[int, int], target: tuple[int, int]) -> Path:
    """The file holding the sums of `owner`'s windows over chunk `target`."""
    return Path(job.out) / PARTS / f"{owner[0]}.{owner[1]}-{target[0]}.{target[1]}.npy"


Part = tuple[int, int, np.ndarray, np.ndarray, np.ndarray]  # (row0, col0, acc (h, w, 64), wsum (h, w), has_data (h, w))
HELD_BYTES = 64 * 2**20  # in-memory parts of a process at most; beyond, parts go to files (memory stays flat with the area)


class _HeldParts:
    """This process's in-memory parts, (run token, store, owner, target) -> sums, at most HELD_BYTES."""

    def __init__(self) -> None:
        self._parts: dict[tuple, Part] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, key: tuple, part: Part) -> bool:
        """Hold `part` unless that would pass HELD_BYTES; whether it is held."""
        with self._lock:
            if self._bytes + _nbytes(part) > HELD_BYTES:
                return False
            self._parts[key] = part
            self._bytes += _nbytes(part)
            return True

    def has(self, key: tuple) -> bool:
        with self._lock:
            return key in self._parts

    def take(self, key: tuple) -> Part | None:
        with self._lock:
            part = self._parts.pop(key, None)
            self._bytes -= 0 if part is None else _nbytes(part)
            return part

    def count(self, token: str | None) -> int:
        with self._lock:
            return sum(token is None or k[0] == token for k in self._parts)

    def drop(self, token: str) -> None:
        with self._lock:
            for k in [k for k in self._parts if k[0] == token]:
                self._bytes -= _nbytes(self._parts.pop(k))


def _nbytes(part: Part) -> int:
    return part[2].nbytes + part[3].nbytes + part[4].nbytes


_HELD = _HeldParts()


def _held_key(job: EmbedJob, owner: tuple[int, int], target: tuple[int, int]) -> tuple:
    return job.local_parts, job.out, owner, target


def save_part(job: EmbedJob, owner: tuple[int, int], target: tuple[int, int], blend: Blender) -> None:
    """A Blender's sums as a part: in memory for a one-process run (up to HELD_BYTES), else a file (`save_sums`)."""
    part = (blend.rows[0], blend.cols[0], blend.acc, blend.wsum, blend.has_data)
    if not (job.local_parts and _HELD.put(_held_key(job, owner, target), part)):
        save_sums(part_path(job, owner, target), *part)


def part_ready(job: EmbedJob, owner: tuple[int, int], target: tuple[int, int]) -> bool:
    if job.local_parts and _HELD.has(_held_key(job, owner, target)):
        return True
    return part_path(job, owner, target).exists()  # a spilled part, or a file a killed run (or another process) saved


def take_part(job: EmbedJob, owner: tuple[int, int], target: tuple[int, int]) -> Part | None:
    """The part (its only reader takes it out of memory), or None when it is neither held nor on disk."""
    held = _HELD.take(_held_key(job, owner, target)) if job.local_parts else None
    if held is not None:
        return held
    path = part_path(job, owner, target)
    return load_sums(path) if path.exists() else None


def held_parts(token: str | None = None) -> int:
    """Parts held in memory for run `token` (any run: None); none once all its chunks are written."""
    return _HELD.count(token)


def drop_parts(token: str) -> None:
    """Forget the in-memory parts of run `token` (a failed run's leftovers; a re-run recomputes them)."""
    _HELD.drop(token)


def save_sums(path: Path, row0: int, col0: int, acc: np.ndarray, wsum: np.ndarray, has_data: np.ndarray) -> None:
    """Atomic: a part file is whole or absent (temp file + rename). Four .npy arrays back to back
    (origin (row0, col0), acc (h, w, 64), wsum (h, w), has_data (h, w)): no zip container, whose
    CRC costs more than the write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as f:
        for a in (np.array([row0, col0]), acc, wsum, has_data):
            np.save(f, a)
    os.replace(tmp, path)


def load_sums(path: Path) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray]:
    """(row0, col0, acc (h, w, 64), wsum (h, w), has_data (h, w)) of a part file."""
    with open(path, "rb") as f:
        origin, acc, wsum, has = (np.load(f) for _ in range(4))
    return int(origin[0]), int(origin[1]), acc, wsum, has
