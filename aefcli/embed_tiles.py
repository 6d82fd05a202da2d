"""`aef embed --tile A --tile B ...` / `--tiles-from FILE|-`: several global tiles in one process.

Each tile is still its own run of `aefcli.embed.run` into `OUT/ID.zarr` (resumable,
a finished tile a no-op), but the process pays its fixed cost once: the imports
(torch, dask, xarray, zarr: about 3 s on 2 cores), the model load and the cube
open are cached across tiles (`aefcli.embed_task` keeps them per process). With
the threaded scheduler the tiles overlap: the next tile's tasks start as soon as
the current tile's last chunks leave a worker idle (at most 2 tiles in flight),
and the windows crossing a shared edge run once (`aefcli.embed_edges`). A tile
whose input or data is unusable is reported and skipped; the others go on.

A tile already finished with the same checkpoint and settings is recognised from
its store's attributes and the checkpoint's header alone (`finished`), before any
heavy import: re-submitting a region's array job costs well under a second per
finished tile instead of a full start-up.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from aefcli.errors import AefError, InputError


def parse_tile_lines(lines: Iterable[str]) -> list[str]:
    """Tile ids from the lines of `aef tiles` output, in order, without repeats.

    Accepts `aef tiles --ids` (one id per line), the table (id in the first column)
    and `--json` lines ({"id": ...}); blank lines and `#` comments are skipped.
    Every id is checked (InputError naming the first bad line) before any work starts.
    """
    from aefcli.tiles import tile_from_id

    ids: dict[str, None] = {}
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("{"):
            try:
                tid = str(json.loads(line)["id"])
            except (ValueError, KeyError, TypeError):
                raise InputError(f"line {n} of the tile list is JSON without an \"id\"; give `aef tiles --json` or `--ids` output.") from None
        else:
            tid = line.split()[0]
        try:
            tile_from_id(tid)
        except InputError as err:
            raise InputError(f"line {n} of the tile list: {err}") from None
        ids[tid] = None
    return list(ids)


def read_tile_ids(source: str | Path) -> list[str]:
    """Tile ids from a file, or from stdin when `source` is "-" (see `parse_tile_lines`)."""
    if str(source) == "-":
        return parse_tile_lines(sys.stdin)
    try:
        text = Path(source).read_text()
    except OSError as err:
        raise InputError(f"cannot read the tile list {source}: {err.strerror or err}; give a file of tile ids or - for stdin.") from None
    return parse_tile_lines(text.splitlines())


def _checkpoint_hash(checkpoint: Path) -> str | None:
    """The checkpoint's model hash from its safetensors header (numpy framework: no torch import)."""
    from safetensors import safe_open

    from aefcli.checkpoint import META_KEY, checkpoint_path

    try:
        with safe_open(str(checkpoint_path(checkpoint)), framework="np") as f:
            return json.loads((f.metadata() or {})[META_KEY])["model_hash"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable: the full run reports it properly


def finished(cfg, tile_id: str) -> dict[str, Any] | None:
    """`aefcli.embed.run`'s no-op result when OUT/ID.zarr is complete and made with cfg's settings, else None.

    Compared without opening the model or the cube: completeness, tile, model hash,
    period, dtype, chunk, window and overlap. Anything else (a store made otherwise, an
    unreadable one, --overwrite, --dry-run, a preview to write) goes through the full run,
    which resumes or reports it.
    """
    from aefcli.parse import parse_period

    if cfg.overwrite or cfg.dry_run or cfg.preview is not None:
        return None
    store = cfg.out / f"{tile_id}.zarr"
    try:
        attrs = json.loads((store / "zarr.json").read_text())["attributes"]["aef:embedding"]
        sig, tiling = attrs["signature"], attrs["tiling"]
        same = (attrs.get("complete") is True and attrs.get("tile") == tile_id and sig["dtype"] == cfg.dtype
                and sig["chunk"] == cfg.chunk and tiling["window"] == cfg.window and tiling["overlap"] == cfg.overlap
                and attrs["period"] == str(parse_period(cfg.period)))
    except (OSError, ValueError, KeyError, TypeError, AefError):
        return None
    if not same or attrs["model"]["hash"] != _checkpoint_hash(cfg.checkpoint):
        return None
    ny, nx = sig["shape"]
    chunks = -(-ny // cfg.chunk) * -(-nx // cfg.chunk)
    return {"store": str(store), "complete": True, "tiles_done": 0, "tiles_total": chunks, "finished_before": True}


def _preview_for(preview: Path | None, tile_id: str) -> Path | None:
    """One preview per tile: PREVIEW.png -> PREVIEW_<ID>.png beside it."""
    return None if preview is None else preview.with_name(f"{preview.stem}_{tile_id}{preview.suffix}")


def run_tiles(cfg, tile_ids: Sequence[str], on_result: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Embed every tile of `tile_ids` into `cfg.out/ID.zarr` in this process.

    cfg: an `aefcli.embed.EmbedConfig` (its tile_id and preview are replaced per tile;
    a preview becomes PREVIEW_<ID>.png). Edge sums are shared as for single tiles: with every
    neighbour inside the cube (or on cfg.edge_tiles), listed here or embedded by another process.
    on_result: called with each tile's result as soon as it is done (`aefcli.embed.run`'s
    summary plus "tile"; for a tile that failed with a user/data problem {"tile", "error"}
    instead), in list order. Returns the totals: tiles, complete, computed (chunks), failed
    (list of {"tile", "error"}), seconds. A bug (any other exception) stops the run with its
    traceback. With the threaded scheduler and a cube the next tile's tasks start as soon as
    the current tile leaves a worker idle (`_overlapped`), at most 2 tiles in flight.
    """
    if not tile_ids:
        raise InputError("the tile list is empty; give tile ids from `aef tiles --ids`.")
    if cfg.bbox is not None:
        raise InputError("give either --bbox or tiles (--tile / --tiles-from), not both")
    t0 = time.perf_counter()
    results: list[dict[str, Any]] = []

    def done(result: dict[str, Any]) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    cfgs = [replace(cfg, tile_id=tid, preview=_preview_for(cfg.preview, tid)) for tid in tile_ids]
    # --stac ingests each tile's cube when the tile opens: that would hold up the task loop, so tiles go one by one
    if cfg.scheduler == "threads" and not cfg.dry_run and cfg.stac is None and len(cfgs) > 1:
        _overlapped(cfgs, done)
    else:
        for one in cfgs:
            done(_guarded(one, _one))
    failed = [r for r in results if "error" in r]
    return {"tiles": len(tile_ids), "complete": sum(bool(r.get("complete")) for r in results),
            "computed": sum(int(r.get("tiles_done", 0)) for r in results), "failed": failed,
            "seconds": round(time.perf_counter() - t0, 3), "out": str(cfg.out)}


def _one(cfg) -> dict[str, Any]:
    from aefcli.embed import run

    return finished(cfg, cfg.tile_id) or run(cfg)


def _guarded(cfg, fn: Callable) -> Any:
    """fn(cfg) with "tile" added, or {"tile", "error"} for a user/data problem of this tile (the others go on)."""
    try:
        out = fn(cfg)
    except AefError as err:
        return {"tile": cfg.tile_id, "error": str(err)}
    return {"tile": cfg.tile_id, **out} if isinstance(out, dict) else out


IN_FLIGHT = 2  # tiles whose tasks may run at once: memory stays a few tasks' worth, whatever the list's length


@dataclass
class _Flight:
    """One tile in flight: its plan, task bookkeeping and stats."""

    cfg: Any
    plan: Any
    seq: int
    t0: float
    deps: dict = field(default_factory=dict)  # chunk -> compute_windows keys it still waits for
    waiting: dict = field(default_factory=dict)  # compute_windows key -> chunks waiting on it
    left: int = 0  # tasks not finished
    stats: list = field(default_factory=list)
    error: str | None = None


def _overlapped(cfgs: list, done: Callable[[dict[str, Any]], None]) -> None:
    """Run the tiles' chunk tasks on one thread pool, opening the next tile when a worker would idle.

    Per tile the tasks are those of `aefcli.embed_dask` (compute_windows per owner chunk,
    embed_chunk per chunk after its owners); each tile is planned, finished (marked
    complete) and reported on its own, in list order. Ready tasks of the older tile go
    first, so the next tile only fills the idle tail of the current one.
    """
    import heapq
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    from aefcli import console
    from aefcli.embed import finish, start, workers
    from aefcli.embed_parts import drop_parts
    from aefcli.embed_task import compute_windows, embed_chunk
    from aefcli.heap import configure as configure_heap
    from aefcli.tiling import chunk_at

    todo, flights, ready, running = list(cfgs), [], [], {}
    order = iter(range(1 << 62))
    token = uuid.uuid4().hex
    bar = console.progress([], total=0, desc="embed", unit="tile")

    def open_next() -> None:
        cfg = todo.pop(0)
        started = _guarded(cfg, lambda c: finished(c, c.tile_id) or start(c))
        if isinstance(started, dict):  # a no-op, or this tile's problem
            flights.append(_Flight(cfg, None, next(order), 0.0, error=started.get("error"), stats=[started]))
            return
        p, chunks = started
        p = replace(p, job=replace(p.job, local_parts=token))  # one process: parts handed over in memory
        f = _Flight(cfg, p, next(order), time.perf_counter())
        wanted, deps = _graph(p.job, chunks)
        for o, targets in wanted.items():
            f.waiting[o] = []
            heapq.heappush(ready, (f.seq, 1, next(order), f, "windows", o, tuple(targets)))
        for c, owners in deps.items():
            f.deps[c] = set(owners)
            for o in owners:
                f.waiting[o].append(c)
        f.left = len(wanted) + len(deps)
        bar.total += len(deps)
        bar.refresh()
        flights.append(f)

    def report_finished() -> None:
        while flights and (flights[0].plan is None or flights[0].left == 0):  # in list order
            f = flights.pop(0)
            if f.plan is None:
                done(f.stats[0])
            elif f.error is not None:
                done({"tile": f.cfg.tile_id, "error": f.error})
            else:
                done(_guarded(f.cfg, lambda c: finish(f.plan, f.stats, time.perf_counter() - f.t0)))

    n = workers(cfgs[0])
    configure_heap()  # before the pool's threads start
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="aef-tile") as pool:
        try:
            while todo or flights:
                while todo and (not flights or (not ready and len(running) < n and sum(f.plan is not None for f in flights) < IN_FLIGHT)):
                    open_next()
                report_finished()
                while ready and len(running) < n:
                    _, _, _, f, kind, key, targets = heapq.heappop(ready)
                    if f.error is not None:  # the tile failed: its remaining tasks are dropped
                        continue
                    job = f.plan.job
                    task = (compute_windows, job, chunk_at(job.shape, job.layout.chunk, *key), targets) if kind == "windows" \
                        else (embed_chunk, job, key)
                    running[pool.submit(*task)] = (f, kind, key)
                report_finished()
                if not running:
                    continue
                finished_now, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished_now:
                    f, kind, key = running.pop(fut)
                    f.left -= 1
                    try:
                        stats = fut.result()
                    except AefError as err:  # this tile's problem: wait only for its running tasks
                        f.error = f.error or str(err)
                        f.left = sum(g is f for g, _, _ in running.values())
                        continue
                    if f.error is not None:
                        continue
                    f.stats.append(stats)
                    if kind == "chunk":
                        bar.update(1)
                        continue
                    for c in f.waiting[key]:
                        f.deps[c].discard(key)
                        if not f.deps[c]:
                            heapq.heappush(ready, (f.seq, 0, next(order), f, "chunk", c, ()))
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            bar.close()
            drop_parts(token)  # a failed tile's leftovers


def _graph(job, chunks: list) -> tuple[dict, dict]:
    """(owner -> the chunks of this run its windows reach, chunk -> the owners it waits for), in a fixed order.

    Owners of a tile's edge segments count too: a chunk waits for the task computing them.
    """
    from aefcli.tiling import owner, owners_of

    wanted: dict[tuple[int, int], list[tuple[int, int]]] = {}
    deps: dict[Any, list[tuple[int, int]]] = {}
    segs = {}
    if job.edges is not None:
        from aefcli.embed_edges import reaching, segments

        segs = segments(job)
    for c in chunks:
        own = set(owners_of(job.layout, job.shape, c))
        if segs:
            own |= {owner(job.layout, job.shape, *segs[k][0]) for k in reaching(job, c)}
        deps[c] = sorted(own)
        for o in deps[c]:
            wanted.setdefault(o, []).append((c.i, c.j))
    return dict(sorted(wanted.items())), deps
