"""`aef embed` speed and memory: end-to-end vs bare model forward, 1x vs 16x area, int8 size.

Prints one JSON line per measurement. Each measurement runs in a fresh child
process so peak RSS is its own.

    python benchmarks/embed_speed.py [--size 256] [--chunk 128] [--preset tiny] [--window 128]

- efficiency: end-to-end output px/s of `run()` vs the bare model forward on the
  very windows the run computed (same process, same batches, the same number of
  concurrent tasks with the same torch threads each, inputs read beforehand),
  i.e. the share of time that is model compute; goal >= 0.90. `run_px_per_s` counts the whole
  `run()` call (plan, store template, tasks, completion mark), `px_per_s` the
  tasks only; imports are done before the clock starts. `warm_*`: the same run
  repeated in the same process (model built, first-forward kernels warmed),
  i.e. the steady state of a long run; the first run pays those once.
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


def child(args) -> None:
    """One measured run (in its own process): prints a JSON line."""
    from aefcli.embed import EmbedConfig, plan, run
    from aefcli.embed_task import _window_inputs, load_model, run_windows
    from aefcli.tiling import batches
    from embed_world import bbox_of

    import dask.array  # noqa: F401 - imports before the clock: a run's cost, not the interpreter's
    import torch  # noqa: F401
    import xarray  # noqa: F401
    import zarr  # noqa: F401

    if args.strip_bytes is not None:  # 0: one window row per read (the reader before tall strips)
        import aefcli.embed_task

        aefcli.embed_task.STRIP_BYTES = args.strip_bytes
    work = Path(args.work)
    out = work / f"emb-{args.size}-{args.dtype}.zarr"
    cfg = EmbedConfig(checkpoint=work / "run", cube=work / f"cube-{args.size}.zarr", out=out, period="2024-01-01/2025-01-01",
                      bbox=bbox_of(args.size), window=args.window, overlap=args.window // 4, chunk=args.chunk,
                      batch_size=args.batch, dtype=args.dtype, workers=args.workers, overwrite=True)
    t0 = time.perf_counter()
    result = run(cfg)
    wall = time.perf_counter() - t0
    line = {"strip_bytes": args.strip_bytes, "size": args.size, "chunks": len(plan(cfg).chunks), "workers": args.workers, "dtype": args.dtype,
            "wall_s": round(wall, 2), "run_px_per_s": round(result["pixels"] / wall, 1), "px_per_s": result["px_per_s"],
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if args.bare:  # the same windows through the bare model: same batches, same concurrent tasks and threads
        from concurrent.futures import ThreadPoolExecutor

        from aefcli.embed_task import _set_threads

        p = plan(cfg)
        _set_threads(p.job.torch_threads)
        _, model = load_model(p.job)
        prepared = [[w for _, _, w, _ in _window_inputs(p.job, chunk)] for chunk in p.mine]  # inputs read beforehand

        def forward(wins: list) -> None:
            for b in batches(wins, args.batch):
                run_windows(model, p.job, b)

        warm = run(cfg)  # the same run again in this process: model built, kernels warmed, cube pages cached
        workers = cfg.workers or min(2, os.cpu_count() or 1)
        t1 = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(forward, prepared))
        bare = result["pixels"] / (time.perf_counter() - t1)
        line.update(torch_threads=torch.get_num_threads(), tasks_at_once=workers, bare_model_px_per_s=round(bare, 1),
                    efficiency=round(result["px_per_s"] / bare, 3), run_efficiency=round(result["pixels"] / wall / bare, 3),
                    warm_px_per_s=warm["px_per_s"], warm_efficiency=round(warm["px_per_s"] / bare, 3))
    if args.dtype == "int8":
        disk = sum(f.stat().st_size for f in (out / "embedding").rglob("*") if f.is_file())
        line.update(bytes_per_px_raw=64, bytes_per_px_disk=round(disk / args.size**2, 2))
    print(json.dumps(line), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--window", type=int, default=128)
    ap.add_argument("--chunk", type=int, default=128, help="output chunk: size/chunk chunks per side at 1x")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--scale", type=int, default=4, help="side factor of the large run (4 -> 16x area)")
    ap.add_argument("--strip-bytes", type=int, default=None, help="input bytes per read (embed_task.STRIP_BYTES)")
    ap.add_argument("--before", action="store_true", help="also run every case with one window row per read (0 bytes)")
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--bare", action="store_true")
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
    if not (work / "run").exists():
        _checkpoint(work / "run", work / f"cube-{args.size}.zarr", args.preset)
    base = [sys.executable, __file__, "--child", "--work", str(work), "--window", str(args.window), "--chunk",
            str(args.chunk), "--batch", str(args.batch)]
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
