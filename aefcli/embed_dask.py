"""Run `aef embed`'s chunk tasks on a dask scheduler, with a progress bar.

One task per output chunk (`embed_chunk(job, chunk)`), returning only a few
numbers: the results never travel back, each task writes its own chunk. The
threaded and process schedulers run the graph locally; a `tcp://` address
sends the tasks to a dask.distributed cluster, where a task lost with its
worker is simply run again elsewhere (chunk writes are idempotent).
"""

from __future__ import annotations

import time
from typing import Any

from aefcli import console
from aefcli.embed_task import EmbedJob, embed_chunk
from aefcli.errors import InputError
from aefcli.tiling import Chunk

KEY_PREFIX = "aef-embed-chunk"


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


def run_tasks(job: EmbedJob, chunks: list[Chunk], scheduler: str, workers: int) -> list[dict[str, Any]]:
    """Run `embed_chunk` for every chunk; returns each task's stats (pixels, windows, seconds)."""
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

    class Progress(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):  # noqa: ANN001 - dask's signature
            if isinstance(key, str) and key.startswith(KEY_PREFIX):
                bar.done(result)

    tasks = [dask.delayed(embed_chunk, pure=False)(job, c, dask_key_name=_key(c)) for c in chunks]
    with Progress():
        return list(dask.compute(*tasks, scheduler=scheduler, num_workers=workers))


def _distributed(job: EmbedJob, chunks: list[Chunk], address: str, bar: _Bar) -> list[dict[str, Any]]:
    from distributed import Client, as_completed

    try:
        client = Client(address, timeout="20s")
    except (OSError, TimeoutError) as err:
        raise InputError(f"cannot reach the dask scheduler at {address} ({err}); start it with `dask scheduler`") from None
    with client:
        futures = [client.submit(embed_chunk, job, c, key=_key(c), pure=False, retries=2) for c in chunks]
        out = []
        for fut in as_completed(futures):
            stats = fut.result()
            bar.done(stats)
            out.append(stats)
        return out
