"""Run `aef embed`'s tasks on a dask scheduler, with a progress bar.

Two kinds of task (see `aefcli.embed_task`): per owner chunk, one
`compute_windows` task runs the model on the windows it owns, restricted to the
chunks this run writes; per output chunk, one `embed_chunk` task, which depends
on the `compute_windows` tasks of its owners (itself and up to 3 neighbours),
blends their parts and writes the Zarr chunk. The windows tasks start in bands one
store chunk tall (`band_order`), so neighbouring tasks share the
decoded input chunks. Every window is computed once;
results are a few numbers, the arrays go through parts (`aefcli.embed_parts`: in
memory under the threaded scheduler, files otherwise). The threaded and process
schedulers run the graph locally; a `tcp://` address sends the tasks to a
dask.distributed cluster, where a task lost with its worker is simply run again
elsewhere (part and chunk writes are atomic and idempotent).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from typing import Any, Sequence

from aefcli import console
from aefcli.embed_parts import drop_parts
from aefcli.embed_task import EmbedJob, compute_windows, embed_chunk
from aefcli.errors import InputError
from aefcli.tiling import Chunk, chunk_at, owners_of

KEY_PREFIX = "aef-embed-chunk"
BAND_ORDER = True  # windows tasks in store-chunk bands (`band_order`; False: dask's order, as before)
PARTS_IN_MEMORY = True  # threaded runs hand parts over in memory (False: files, as before; an A/B knob of benchmarks/embed_speed.py)
WINDOWS_PREFIX = "aef-embed-windows"


class _Bar:
    """tiles done / total and px/s on stderr."""

    def __init__(self, total: int) -> None:
        self.bar = console.progress([], total=total, desc="embed", unit="tile")
        self.t0 = time.perf_counter()
        self.pixels = 0

    def done(self, stats: dict[str, Any]) -> None:
        self.pixels += int(stats["pixels"])
        rate = self.pixels / max(time.perf_counter() - self.t0, 1e-9)
        self.bar.set_postfix_str(f"{rate:,.0f} px/s", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _key(chunk: Chunk) -> str:
    return f"{KEY_PREFIX}-{chunk.i}-{chunk.j}"


def _windows_key(owner: tuple[int, int]) -> str:
    return f"{WINDOWS_PREFIX}-{owner[0]}-{owner[1]}"


def band_order(job: EmbedJob, owners: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The owner chunks in bands one store chunk tall, each band swept column by column
    (boustrophedon: every other band right to left), top to bottom inside a column.

    The windows of consecutive tasks then read the same few store chunk positions, so the
    decoded-chunk cache serves more of their reads: at 16x the benchmark's area, 398 frame-chunk
    decodes instead of 446 in dask's order with the cache's 2 positions, 192 instead of 252 with
    4 (each position about twice: its own band and the halo of the band above;
    benchmarks/README.md, "Session 12").
    """
    from aefcli.io.cube import open_cube

    chunk_rows = open_cube(job.cube).chunk_size(next(iter(job.bands)))[0]

    def key(o: tuple[int, int]) -> tuple[int, int, int]:
        c = chunk_at(job.shape, job.layout.chunk, *o)
        band = (job.offset[0] + c.rows[0]) // chunk_rows
        return band, c.cols[0] if band % 2 == 0 else -c.cols[0], c.rows[0]

    return sorted(owners, key=key)


def _graph(job: EmbedJob, chunks: list[Chunk]) -> tuple[dict[tuple[int, int], list[tuple[int, int]]], dict[Chunk, list]]:
    """(owner -> the chunks of this run its windows reach, chunk -> its owners), both in a fixed order."""
    wanted: dict[tuple[int, int], list[tuple[int, int]]] = {}
    owners: dict[Chunk, list] = {}
    for c in chunks:
        owners[c] = owners_of(job.layout, job.shape, c)
        for o in owners[c]:
            wanted.setdefault(o, []).append((c.i, c.j))
    return wanted, owners


def run_tasks(job: EmbedJob, chunks: list[Chunk], scheduler: str, workers: int) -> list[dict[str, Any]]:
    """Compute and write every chunk; returns each task's stats (kind "windows" or "chunk"; pixels, windows, seconds)."""
    if not chunks:
        return []
    bar = _Bar(len(chunks))
    try:
        if scheduler.startswith("tcp://"):
            return _distributed(job, chunks, scheduler, bar)
        return _local(job, chunks, scheduler, workers, bar)
    finally:
        bar.close()


def _local(job: EmbedJob, chunks: list[Chunk], scheduler: str, workers: int, bar: _Bar) -> list[dict[str, Any]]:
    import dask
    from dask.callbacks import Callback

    from aefcli import heap

    heap.reset()  # this run's first tasks set the idle-memory base its trims compare with (`aefcli.heap`)

    wanted, owners = _graph(job, chunks)
    rank = {_windows_key(o): k for k, o in enumerate(band_order(job, list(wanted)))}

    class Progress(Callback):
        def _start_state(self, dsk, state):  # noqa: ANN001 - dask's signature
            if BAND_ORDER:  # the local schedulers pop the ready list from its end
                state["ready"].sort(key=lambda key: -rank.get(key, -1))

        def _posttask(self, key, result, dsk, state, worker_id):  # noqa: ANN001 - dask's signature
            if isinstance(key, str) and key.startswith(KEY_PREFIX):
                bar.done(result)

    if scheduler == "threads" and PARTS_IN_MEMORY:  # every task in this process: parts handed over in memory
        job = replace(job, local_parts=uuid.uuid4().hex)
    grid = job.layout.chunk
    win = {o: dask.delayed(compute_windows, pure=False)(job, chunk_at(job.shape, grid, *o), tuple(t),
                                                        dask_key_name=_windows_key(o))
           for o, t in wanted.items()}
    tasks = [dask.delayed(embed_chunk, pure=False)(job, c, *[win[o] for o in owners[c]], dask_key_name=_key(c))
             for c in chunks]
    try:
        with Progress():
            return list(dask.compute(*tasks, *win.values(), scheduler=scheduler, num_workers=workers))
    finally:
        drop_parts(job.local_parts)  # a failed run's leftovers


def _distributed(job: EmbedJob, chunks: list[Chunk], address: str, bar: _Bar) -> list[dict[str, Any]]:
    from distributed import Client, as_completed

    try:
        client = Client(address, timeout="20s")
    except (OSError, TimeoutError) as err:
        raise InputError(f"cannot reach the dask scheduler at {address} ({err}); start it with `dask scheduler`") from None
    with client:
        wanted, owners = _graph(job, chunks)
        first = {o: -k for k, o in enumerate(band_order(job, list(wanted)))}  # higher runs earlier
        win = {o: client.submit(compute_windows, job, chunk_at(job.shape, job.layout.chunk, *o), tuple(t),
                                key=_windows_key(o), pure=False, retries=2,
                                priority=first[o] if BAND_ORDER else 0) for o, t in wanted.items()}
        futures = [client.submit(embed_chunk, job, c, *[win[o] for o in owners[c]], key=_key(c), pure=False, retries=2)
                   for c in chunks]
        out = []
        for fut in as_completed(futures):
            stats = fut.result()
            bar.done(stats)
            out.append(stats)
        return out + client.gather(list(win.values()))
