"""`aef embed` speed and memory: end-to-end vs bare model forward, 1x vs 16x area, int8 size.

Prints one JSON line per measurement. Each measurement runs in a fresh child
process so peak RSS is its own.

    python benchmarks/embed_speed.py [--size 512] [--chunk 256] [--preset tiny|small|RECIPE] [--window 128] [--reps 3]

- efficiency: end-to-end output px/s of `run()` vs the bare model forward on the
  UNIQUE windows of the area, each once (so windows computed twice would count
  as overhead), batched as the run's compute tasks batch them, with the same
  number of concurrent tasks and torch threads each, inputs read beforehand:
  the share of time that is model compute; goal >= 0.90. Before anything is
  timed the process runs untimed forwards at the run's batch shapes (B windows,
  and the shorter last batches) on as many threads at once as the run has tasks, so
  neither side pays the one-time kernel set-up or the heap growing for them. Then `--reps` alternated
  (run, bare) pairs; every run starts from a cold decoded-chunk cache (it
  decodes the cube as a fresh process would). `first_pair_efficiency` is the
  first run of the process, `median_efficiency` the median over the pairs,
  `median_cpu_efficiency` the same with CPU seconds of the process (bare / run:
  steadier than wall time on a shared machine). `px_per_s` counts the tasks
  (`run()`'s own figure), `run_px_per_s` the whole first `run()` call (plan,
  store template, tasks, completion mark); imports happen before the clock.
  `frame_chunks_decoded` vs `frame_chunks_in_cube`: store chunks decoded by the
  first run vs one decode of the whole cube; `trims`: malloc_trim calls of a run
  (`aefcli.heap`). The run's allocator settings apply from the process start (before
  the warm-up), as a run applies them before its first task.
- scaling: peak RSS and wall time for an area of size^2 vs (scale size)^2, both
  with several chunks (size / chunk per side) and the same workers; goals
  RSS <= 1.25x, time <= 17x for scale 4.
- int8: bytes/pixel before compression (64) and on disk.
- `--ab NAME` (one of SWITCHES): A/B a setting in one invocation. The efficiency pairs after
  the first alternate on, off, on, ... (`on_median_efficiency` / `off_...` over those), and the
  16x run is made 4 times, off, on, off, on, each in a fresh process (a scaling line per run).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "aefcli")]


def _checkpoint(path: Path, cube: Path, preset_name: str) -> Path:
    import torch

    from aefcli.checkpoint import save_checkpoint
    from aefcli.io.cube import open_cube
    from embed_world import S2_BANDS
    from model import EmbeddingFieldModel, SourceSpec, preset

    from aefcli.recipes import RECIPES

    torch.manual_seed(0)
    sources = (SourceSpec("s2", len(S2_BANDS)),)
    if preset_name in RECIPES:  # a training recipe's model: its preset with its model overrides
        recipe = RECIPES[preset_name]
        cfg = preset(recipe["preset"], sources, **recipe.get("model_overrides", {}))
    else:
        cfg = preset(preset_name, sources)
    return save_checkpoint(path, EmbeddingFieldModel(cfg), cfg, {"s2": open_cube(cube).norm["s2"]},
                           {"s2": S2_BANDS}, {"preset": preset_name}, step=0)


def _cube_path(work: Path, size: int, frames: int) -> Path:
    return work / (f"cube-{size}.zarr" if frames == 6 else f"cube-{size}-f{frames}.zarr")


def _peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM); ru_maxrss would carry the parent's peak across exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _forget_cube(job) -> None:
    """Drop the process's cached cube, with its decoded-chunk LRU: the next run decodes the cube
    as a run in a fresh process would (a run's own cost), not from what a previous pass left."""
    import aefcli.embed_task

    aefcli.embed_task._CACHE.pop(("cube", job.cube), None)


def _warm_up(job, workers: int) -> None:
    """Untimed forwards at the run's batch shapes (b windows of L x L with the cube's frames, for
    every b <= B: a task's last batch is short), on `workers` threads at once as a run's tasks
    run them: the one-time kernel set-up of a process for each shape, and the heap growing to
    hold the concurrent forwards' buffers, are paid here, by neither side of a pair."""
    from concurrent.futures import ThreadPoolExecutor

    from aefcli.embed_task import _set_threads, load_model, read_strip, run_windows

    _set_threads(job.torch_threads)
    _, model = load_model(job)
    window = read_strip(job, 0, 0, job.layout.window).windows

    def shapes(_: int) -> None:
        for b in range(job.batch_size, 0, -1):
            run_windows(model, job, [window] * b)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(shapes, range(workers)))
    _forget_cube(job)


def _cube_frame_chunks(job) -> int:
    """Frame-chunks of the cube (one frame of one store chunk, every source): what one full decode costs."""
    from aefcli.embed_task import _cube

    cube = _cube(job.cube)
    total = 0
    for s in job.bands:
        raw = cube._root[s]["raw"]
        total += len(cube.times[s]) * -(-raw.shape[2] // raw.chunks[2]) * -(-raw.shape[3] // raw.chunks[3])
    return total


def _timed_run(cfg, job) -> dict:
    """One end-to-end `run(cfg)` from a cold chunk cache: its summary (px/s of its tasks), the CPU
    seconds of the process while the tasks ran, and the store chunks (frames) they decoded."""
    import aefcli.embed_dask
    from aefcli.embed import run
    from aefcli.embed_task import _cube

    tasks, cpu = aefcli.embed_dask.run_tasks, []

    def timed_tasks(*a, **k):  # the span `run()` reports px/s over
        c0 = time.process_time()
        try:
            return tasks(*a, **k)
        finally:
            cpu.append(time.process_time() - c0)

    _forget_cube(job)
    aefcli.embed_dask.run_tasks = timed_tasks
    try:
        result = run(cfg)
    finally:
        aefcli.embed_dask.run_tasks = tasks
    import aefcli.heap

    return {**result, "cpu_s": cpu[0], "decoded": getattr(_cube(job.cube), "chunks_decoded", -1),
            "trims": aefcli.heap.trims()}  # this run's (a local run re-bases the heap policy)


# A/B switches (`--ab NAME`): (module, attribute, value off: the setting before, value on: the candidate), ...
SWITCHES = {
    "direct_writes": (("aefcli.io.embedding_store", "DIRECT_WRITES", False, True),),  # chunk files vs zarr's write path
    "chunks_outside_heap": (("aefcli.io.chunk_decode", "OUTSIDE_HEAP", False, True),),  # decoded chunks in own mmaps
    "trim_slack_64": (("aefcli.heap", "TRIM_SLACK", 128 * 2**20, 64 * 2**20),),  # trim at half the idle growth
    "parts_in_memory": (("aefcli.embed_dask", "PARTS_IN_MEMORY", False, True),),  # threaded runs: parts in memory vs files
    "reuse_batch_buffers": (("aefcli.embed_task", "REUSE_BATCH_BUFFERS", False, True),),  # refilled batch inputs vs new arrays
    "parts_outside_heap": (("aefcli.embed_task", "PARTS_OUTSIDE_HEAP", False, True),),  # in-memory parts in own mmaps vs the heap
    "odirect": (("aefcli.io.direct_write", "ENABLED", False, True),),  # chunk files past the page cache vs buffered
    "cache_4_positions": (("aefcli.embed_task", "CACHED_POSITIONS", 2, 4),),  # decoded-chunk cache: 4 store chunk positions vs 2
    "band_order": (("aefcli.embed_dask", "BAND_ORDER", False, True),),  # windows tasks in store-chunk bands vs dask's order
    "cache_3_positions": (("aefcli.embed_task", "CACHED_POSITIONS", 2, 3),),  # decoded-chunk cache: 3 store chunk positions vs 2
    "spare_maps_2": (("aefcli.io.chunk_decode", "SPARE_MAPS", 8, 2),),  # freed chunk maps kept for reuse: 2 vs 8 per size
}
AB_SWITCHES = tuple(SWITCHES)


def _switch(name: str, on: bool) -> None:
    """Turn A/B switch `name` on (the candidate) or off (the setting before)."""
    import importlib

    for module, attr, off_value, on_value in SWITCHES[name]:
        setattr(importlib.import_module(module), attr, on_value if on else off_value)


def _malloc_policy(name: str) -> None:
    """How freed buffers go back to the OS (an experiment knob; "product": the embed run's own settings,
    `aefcli.heap`: one heap, 32 MiB mmap threshold, malloc_trim(0) after a task when idle memory grew).

    late: the product's settings made by the run itself, after the warm-up's threads took heaps of
    their own (as `aef embed` did before session 10); glibc: nothing at all; mmap1m: M_MMAP_THRESHOLD
    1 MiB (the product until session 3); mmap32m: 32 MiB; trim: glibc's defaults plus malloc_trim(0)
    after every task; arena2: glibc's defaults with at most 2 malloc arenas (M_ARENA_MAX); arena2trim: both.
    """
    import ctypes
    import functools

    import aefcli.heap

    if name == "product":
        # the run's allocator settings from the start, before any import starts a thread, as `aef embed`
        # sets them: the warm-up's forwards then leave the model's buffers in the heap the tasks use
        # (applied only by the run itself, the first run alone grew that heap: ~60k page faults more)
        aefcli.heap.configure()
        return
    if name == "late":  # the run sets them itself, after the warm-up's threads made their own heaps (before session 10)
        return
    import aefcli.embed_dask

    aefcli.heap.ENABLED = False  # the task's own trim is never made
    libc = ctypes.CDLL("libc.so.6")
    if name in ("mmap1m", "mmap32m"):
        libc.mallopt(-3, (1 if name == "mmap1m" else 32) * 2**20)
    if name in ("arena2", "arena2trim"):
        libc.mallopt(-8, 2)
    if name in ("trim", "arena2trim"):
        def trimmed(fn):
            @functools.wraps(fn)
            def task(*a, **k):
                try:
                    return fn(*a, **k)
                finally:
                    libc.malloc_trim(0)
            return task

        aefcli.embed_dask.compute_windows = trimmed(aefcli.embed_dask.compute_windows)
        aefcli.embed_dask.embed_chunk = trimmed(aefcli.embed_dask.embed_chunk)


def malloc_forward(args) -> None:
    """The bare forward at the run's batch shape, alternated in one process between glibc's
    M_MMAP_THRESHOLD at 1 MiB (the embed task's setting until session 3) and 32 MiB (glibc's own ceiling):
    what the setting costs the model (fresh mmap + page faults per large tensor). Prints a JSON line."""
    import ctypes

    import torch

    from aefcli.embed import EmbedConfig, plan
    from aefcli.embed_task import _set_threads, load_model, read_strip, run_windows
    from embed_world import bbox_of

    work = Path(args.work)
    cfg = EmbedConfig(checkpoint=work / f"run-{args.preset}", cube=_cube_path(work, args.size, args.frames), out=work / "unused.zarr",
                      period="2024-01-01/2025-01-01", bbox=bbox_of(args.size), window=args.window, overlap=args.window // 4,
                      chunk=args.chunk, batch_size=args.batch, workers=args.workers)
    job = plan(cfg).job
    _set_threads(job.torch_threads)
    _, model = load_model(job)
    batch = [read_strip(job, 0, 0, job.layout.window).windows] * job.batch_size
    libc = ctypes.CDLL("libc.so.6")
    times: dict[str, list[float]] = {"mmap_1mib": [], "mmap_32mib": []}
    for _ in range(args.reps):
        for name, threshold in (("mmap_1mib", 2**20), ("mmap_32mib", 32 * 2**20)):
            libc.mallopt(-3, threshold)
            run_windows(model, job, batch)  # settle the heap under this setting
            t0 = time.perf_counter()
            for _ in range(3):
                run_windows(model, job, batch)
            times[name].append(time.perf_counter() - t0)
    ratios = sorted(a / b for a, b in zip(times["mmap_1mib"], times["mmap_32mib"]))
    print(json.dumps({"case": "malloc", "preset": args.preset, "torch_threads": torch.get_num_threads(),
                      "batch": job.batch_size, "seconds_1mib": [round(t, 3) for t in times["mmap_1mib"]],
                      "seconds_32mib": [round(t, 3) for t in times["mmap_32mib"]],
                      "slowdown_1mib_vs_32mib": [round(r, 3) for r in ratios], "median": round(ratios[len(ratios) // 2], 3)}), flush=True)


def child(args) -> None:
    """One measured process: prints a JSON line."""
    _malloc_policy(args.malloc)  # before the imports below start threads
    from aefcli.embed import EmbedConfig, plan
    from embed_world import bbox_of

    import dask.array  # noqa: F401 - imports before the clock: a run's cost, not the interpreter's
    import torch  # noqa: F401
    import xarray  # noqa: F401
    import zarr  # noqa: F401

    import aefcli.embed_task

    if args.strip_bytes is not None:  # 0: one window row per read (the reader before tall strips)
        aefcli.embed_task.STRIP_BYTES = args.strip_bytes
    if args.cache_mb is not None:  # decoded cube chunks kept per process (0: read straight from the store)
        aefcli.embed_task.CHUNK_CACHE_BYTES = args.cache_mb * 2**20
    if args.ab and args.variant != "ab":  # a whole process on one side (the scaling runs of an A/B)
        _switch(args.ab, args.variant == "on")
    elif args.ab:
        _switch(args.ab, False)  # the first pair: off
    work = Path(args.work)
    out = work / f"emb-{args.size}-{args.dtype}.zarr"
    cfg = EmbedConfig(checkpoint=work / f"run-{args.preset}", cube=_cube_path(work, args.size, args.frames), out=out,
                      period="2024-01-01/2025-01-01", bbox=bbox_of(args.size), window=args.window, overlap=args.window // 4,
                      chunk=args.chunk, batch_size=args.batch, dtype=args.dtype, workers=args.workers, overwrite=True)
    p = plan(cfg)
    _warm_up(p.job, cfg.workers or min(2, os.cpu_count() or 1))
    t0 = time.perf_counter()
    first = _timed_run(cfg, p.job)
    wall = time.perf_counter() - t0
    line = {"preset": args.preset, "frames": args.frames, "malloc": args.malloc, "strip_bytes": args.strip_bytes, "size": args.size, "chunks": len(p.chunks),
            "workers": args.workers, "dtype": args.dtype, "windows_run": first["windows"], "windows_unique": p.windows,
            "frame_chunks_decoded": first["decoded"], "frame_chunks_in_cube": _cube_frame_chunks(p.job),
            "wall_s": round(wall, 2), "run_px_per_s": round(first["pixels"] / wall, 1), "px_per_s": first["px_per_s"],
            "peak_rss_mb": _peak_rss_mb(), "trims": first["trims"], "ab": args.ab, "variant": args.variant}
    if args.bare:
        line.update(_pairs(args, cfg, p, first))
    if args.dtype == "int8":
        disk = sum(f.stat().st_size for f in (out / "embedding").rglob("*") if f.is_file())
        line.update(bytes_per_px_raw=64, bytes_per_px_disk=round(disk / args.size**2, 2))
    print(json.dumps(line), flush=True)


def _pairs(args, cfg, p, first: dict) -> dict:
    """Alternated (end-to-end run, bare forward) pairs in this process; the first run is `first`.

    The bare forward runs the area's UNIQUE windows once each (so a window computed twice
    counts as overhead), inputs read beforehand, batched as the run's compute tasks batch
    them (one list per owner chunk), as many lists at once as the run has concurrent tasks,
    same torch threads.
    """
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from aefcli.embed_task import load_model, run_windows, window_inputs
    from aefcli.tiling import batches, owned_windows

    _, model = load_model(p.job)
    prepared = []
    for chunk in p.chunks:
        owned = owned_windows(p.job.layout, p.job.shape, chunk)
        if owned:
            rows, cols = sorted({r for r, _ in owned}), sorted({c for _, c in owned})
            prepared.append([w for _, _, w, _ in window_inputs(p.job, rows, cols)])
    workers = cfg.workers or min(2, os.cpu_count() or 1)

    def forward(wins: list) -> None:
        for b in batches(wins, args.batch):
            run_windows(model, p.job, b)

    def bare() -> tuple[float, float]:
        c0, t1 = time.process_time(), time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(forward, prepared))
        return first["pixels"] / (time.perf_counter() - t1), time.process_time() - c0

    pairs = []
    for k in range(args.reps):  # alternated: run, bare, run, bare, ...
        side = None
        if args.ab and args.variant == "ab" and k > 0:  # A/B: later pairs alternate on, off, on, ...
            side = "on" if k % 2 else "off"
            _switch(args.ab, side == "on")
        run = first if k == 0 else _timed_run(cfg, p.job)
        bare_rate, bare_cpu = bare()
        pairs.append({"run_px_per_s": run["px_per_s"], "bare_px_per_s": round(bare_rate, 1),
                      "efficiency": round(run["px_per_s"] / bare_rate, 3),
                      "cpu_efficiency": round(bare_cpu / run["cpu_s"], 3), "decoded": run["decoded"], "trims": run["trims"],
                      **({"side": side} if side else {})})
    line = {"torch_threads": torch.get_num_threads(), "tasks_at_once": workers,
            "bare_model_px_per_s": _median([q["bare_px_per_s"] for q in pairs]),
            "first_pair_efficiency": pairs[0]["efficiency"], "median_efficiency": _median([q["efficiency"] for q in pairs]),
            "median_cpu_efficiency": _median([q["cpu_efficiency"] for q in pairs]), "pairs": pairs}
    for side in ("off", "on"):  # A/B: the pairs after the first, per side
        mine = [q for q in pairs if q.get("side") == side]
        if mine:
            line[f"{side}_median_efficiency"] = _median([q["efficiency"] for q in mine])
            line[f"{side}_median_cpu_efficiency"] = _median([q["cpu_efficiency"] for q in mine])
            line[f"{side}_run_px_per_s"] = _median([q["run_px_per_s"] for q in mine])
    return line


def _median(values: list[float]) -> float:
    """The median (the upper one of an even count, as before)."""
    return sorted(values)[len(values) // 2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--preset", default="tiny", help="model: tiny | small | base, or a training recipe's name "
                    "(its model, e.g. cpu-q12-s: the checkpoint benchmarks/quality.py trains)")
    ap.add_argument("--window", type=int, default=128)
    ap.add_argument("--chunk", type=int, default=256, help="output chunk: size/chunk chunks per side at 1x")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--scale", type=int, default=4, help="side factor of the large run (4 -> 16x area)")
    ap.add_argument("--strip-bytes", type=int, default=None, help="input bytes per read (embed_task.STRIP_BYTES)")
    ap.add_argument("--cache-mb", type=int, default=None, help="embed_task.CHUNK_CACHE_BYTES in MiB")
    ap.add_argument("--before", action="store_true", help="also run every case with one window row per read (0 bytes)")
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--bare", action="store_true")
    ap.add_argument("--reps", type=int, default=3, help="alternated (run, bare forward) pairs")
    ap.add_argument("--malloc", default="product", choices=("product", "late", "glibc", "mmap1m", "mmap32m", "trim", "arena2", "arena2trim"),
                    help="how freed buffers return to the OS (experiment; product = the embed task's setting)")
    ap.add_argument("--frames", type=int, default=6, help="S2 frames of the synthetic cubes")
    ap.add_argument("--cases", default="efficiency,scaling,int8",
                    help="which children to run (comma-separated), or `malloc` alone: the forward under two mmap thresholds")
    ap.add_argument("--ab", choices=AB_SWITCHES, default=None,
                    help="A/B a switch in one invocation: efficiency pairs after the first alternate on/off, "
                         "and the 16x run is made twice per side, alternated")
    ap.add_argument("--variant", default="ab", choices=("ab", "on", "off"), help=argparse.SUPPRESS)
    ap.add_argument("--work")
    args = ap.parse_args()
    if args.child:
        return malloc_forward(args) if args.cases == "malloc" else child(args)
    from embed_world import make_cube

    work = Path(args.work or tempfile.mkdtemp(prefix="aef-embed-bench-"))
    big = args.size * args.scale
    cases = set(args.cases.split(","))
    for n in (args.size, big) if "scaling" in cases else (args.size,):
        if not _cube_path(work, n, args.frames).exists():
            make_cube(_cube_path(work, n, args.frames), size=n, frames=args.frames)
    if not (work / f"run-{args.preset}").exists():
        _checkpoint(work / f"run-{args.preset}", _cube_path(work, args.size, args.frames), args.preset)
    base = [sys.executable, __file__, "--child", "--work", str(work), "--window", str(args.window), "--chunk",
            str(args.chunk), "--batch", str(args.batch), "--preset", args.preset, "--reps", str(args.reps),
            "--frames", str(args.frames), "--malloc", args.malloc] + (["--cache-mb", str(args.cache_mb)] if args.cache_mb is not None else [])
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    workers = str(args.workers)
    if cases == {"malloc"}:
        out = subprocess.run(base + ["--size", str(args.size), "--workers", workers, "--cases", "malloc"], capture_output=True, text=True, env=env)
        print(out.stdout.strip() or out.stderr[-2000:], flush=True)
        return
    if args.ab:
        base += ["--ab", args.ab]
    runs = [["--size", str(args.size), "--bare", "--workers", workers]]  # efficiency, and 1x of the scaling pair
    if "scaling" in cases:
        sides = [["--variant", v] for v in ("off", "on", "off", "on")] if args.ab else [[]]
        runs += [["--size", str(big), "--workers", workers] + side for side in sides]
    if "int8" in cases:
        runs.append(["--size", str(args.size), "--dtype", "int8", "--workers", workers])
    for strip in (["--strip-bytes", "0"], []) if args.before else ([],):
        lines = []
        for extra in runs:
            out = subprocess.run(base + strip + extra, capture_output=True, text=True, env=env)
            print(out.stdout.strip() or out.stderr[-2000:], flush=True)
            lines.append(json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else None)
        small = lines[0]
        for large in [line for line in lines[1:] if line and line["size"] == big and line["dtype"] == args.dtype]:
            if small:
                print(json.dumps({"scaling": f"{args.scale**2}x area", "strip_bytes": strip[1] if strip else "default",
                                  "variant": large["variant"] if args.ab else None,
                                  "rss_ratio": round(large["peak_rss_mb"] / small["peak_rss_mb"], 3),
                                  "time_ratio": round(large["wall_s"] / small["wall_s"], 2), "goals": "rss <= 1.25, time <= 17"}),
                      flush=True)


if __name__ == "__main__":
    main()
