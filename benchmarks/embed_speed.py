"""`aef embed` speed and memory: end-to-end vs bare model forward, 1x vs 16x area, int8 size.

Prints one JSON line per measurement. Each measurement runs in a fresh child
process so peak RSS is its own.

    python benchmarks/embed_speed.py [--size 512] [--chunk 256] [--preset tiny|small] [--window 128] [--reps 3]

- efficiency: end-to-end output px/s of `run()` vs the bare model forward on the
  UNIQUE windows of the area, each once (so windows computed twice would count
  as overhead), batched as the run's compute tasks batch them, with the same
  number of concurrent tasks and torch threads each, inputs read beforehand:
  the share of time that is model compute; goal >= 0.90. `cold_efficiency`: the
  first run of the process (model built and first-forward kernels warmed inside
  the clock) vs the first bare pass. `warm_efficiency`: median of `--reps`
  alternated (same run again, bare forward) pairs, the steady state of a long
  run. `run_px_per_s` counts the whole `run()` call (plan, store template, tasks,
  completion mark), `px_per_s` the tasks only; imports happen before the clock.
- scaling: peak RSS and wall time for an area of size^2 vs (scale size)^2, both
  with several chunks (size / chunk per side) and the same workers; goals
  RSS <= 1.25x, time <= 17x for scale 4.
- int8: bytes/pixel before compression (64) and on disk.
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

    torch.manual_seed(0)
    cfg = preset(preset_name, (SourceSpec("s2", len(S2_BANDS)),))
    return save_checkpoint(path, EmbeddingFieldModel(cfg), cfg, {"s2": open_cube(cube).norm["s2"]},
                           {"s2": S2_BANDS}, {"preset": preset_name}, step=0)


def _peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM); ru_maxrss would carry the parent's peak across exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def child(args) -> None:
    """One measured run (in its own process): prints a JSON line."""
    from aefcli.embed import EmbedConfig, plan, run
    from aefcli.embed_task import load_model, run_windows, window_inputs
    from aefcli.tiling import batches, owned_windows
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
    work = Path(args.work)
    out = work / f"emb-{args.size}-{args.dtype}.zarr"
    cfg = EmbedConfig(checkpoint=work / f"run-{args.preset}", cube=work / f"cube-{args.size}.zarr", out=out,
                      period="2024-01-01/2025-01-01", bbox=bbox_of(args.size), window=args.window, overlap=args.window // 4,
                      chunk=args.chunk, batch_size=args.batch, dtype=args.dtype, workers=args.workers, overwrite=True)
    t0 = time.perf_counter()
    result = run(cfg)
    wall = time.perf_counter() - t0
    p = plan(cfg)
    line = {"preset": args.preset, "strip_bytes": args.strip_bytes, "size": args.size, "chunks": len(p.chunks),
            "workers": args.workers, "dtype": args.dtype, "windows_run": result["windows"], "windows_unique": p.windows,
            "wall_s": round(wall, 2), "run_px_per_s": round(result["pixels"] / wall, 1), "px_per_s": result["px_per_s"],
            "peak_rss_mb": _peak_rss_mb()}
    if args.bare:  # the area's unique windows through the bare model, each once, as the run's tasks batch them
        from concurrent.futures import ThreadPoolExecutor

        from aefcli.embed_task import _set_threads

        _set_threads(p.job.torch_threads)
        _, model = load_model(p.job)
        prepared = []  # inputs read beforehand, one list per owner chunk (the run's compute tasks)
        for chunk in p.chunks:
            owned = owned_windows(p.job.layout, p.job.shape, chunk)
            if owned:
                rows, cols = sorted({r for r, _ in owned}), sorted({c for _, c in owned})
                prepared.append([w for _, _, w, _ in window_inputs(p.job, rows, cols)])
        workers = cfg.workers or min(2, os.cpu_count() or 1)

        def forward(wins: list) -> None:
            for b in batches(wins, args.batch):
                run_windows(model, p.job, b)

        def bare_px_per_s() -> float:
            t1 = time.perf_counter()
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(forward, prepared))
            return result["pixels"] / (time.perf_counter() - t1)

        ratios, warm_rates, bare_rates = [], [], []
        for _ in range(args.reps):  # alternated: the same run again (model built, kernels warm), then the bare forward
            warm = run(cfg)
            bare = bare_px_per_s()
            warm_rates.append(warm["px_per_s"])
            bare_rates.append(bare)
            ratios.append(warm["px_per_s"] / bare)
        ratios.sort()
        line.update(torch_threads=torch.get_num_threads(), tasks_at_once=workers,
                    bare_model_px_per_s=round(sorted(bare_rates)[len(bare_rates) // 2], 1),
                    warm_px_per_s=round(sorted(warm_rates)[len(warm_rates) // 2], 1),
                    cold_efficiency=round(result["px_per_s"] / bare_rates[0], 3),
                    warm_efficiency=round(ratios[len(ratios) // 2], 3), warm_efficiency_all=[round(r, 3) for r in ratios])
    if args.dtype == "int8":
        disk = sum(f.stat().st_size for f in (out / "embedding").rglob("*") if f.is_file())
        line.update(bytes_per_px_raw=64, bytes_per_px_disk=round(disk / args.size**2, 2))
    print(json.dumps(line), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--preset", default="tiny")
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
    ap.add_argument("--reps", type=int, default=3, help="alternated (warm run, bare forward) pairs")
    ap.add_argument("--work")
    args = ap.parse_args()
    if args.child:
        return child(args)
    from embed_world import make_cube

    work = Path(args.work or tempfile.mkdtemp(prefix="aef-embed-bench-"))
    big = args.size * args.scale
    for n in (args.size, big):
        if not (work / f"cube-{n}.zarr").exists():
            make_cube(work / f"cube-{n}.zarr", size=n, frames=6)
    if not (work / f"run-{args.preset}").exists():
        _checkpoint(work / f"run-{args.preset}", work / f"cube-{args.size}.zarr", args.preset)
    base = [sys.executable, __file__, "--child", "--work", str(work), "--window", str(args.window), "--chunk",
            str(args.chunk), "--batch", str(args.batch), "--preset", args.preset, "--reps", str(args.reps)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    workers = str(args.workers)
    runs = (["--size", str(args.size), "--bare", "--workers", workers],  # efficiency, and 1x of the scaling pair
            ["--size", str(big), "--workers", workers],
            ["--size", str(args.size), "--dtype", "int8", "--workers", workers])
    for strip in (["--strip-bytes", "0"], []) if args.before else ([],):
        lines = []
        for extra in runs:
            out = subprocess.run(base + strip + extra, capture_output=True, text=True, env=env)
            print(out.stdout.strip() or out.stderr[-2000:], flush=True)
            lines.append(json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else None)
        small, large = lines[0], lines[1]
        if small and large:
            print(json.dumps({"scaling": f"{args.scale**2}x area", "strip_bytes": strip[1] if strip else "default",
                              "rss_ratio": round(large["peak_rss_mb"] / small["peak_rss_mb"], 3),
                              "time_ratio": round(large["wall_s"] / small["wall_s"], 2), "goals": "rss <= 1.25, time <= 17"}), flush=True)


if __name__ == "__main__":
    main()
