"""CPU speed of the embedding field model, and its size per preset.

Prints, in one run: a large fp32 matmul's FLOP/s (the CPU's practical ceiling),
measured alternately with every model timing it is compared with (so both
sides see the same machine load; every timed function first runs WARMUP untimed
calls at the timed shape), each line giving the median round's ratio with the
min / max over the rounds and the page faults per forward; `small` forward throughput at L=128
(pixels/s, FLOP/s and the fraction of the matmul's) eagerly in fp32, over a
batch-size sweep, under bf16 autocast (with its agreement with fp32) and,
with --compile, through torch.compile (compile time, steady state, agreement);
then training-step times and parameters / forward FLOPs per pixel of every
preset (counted on the meta device, so `base` costs nothing to count).

Run from the repository root (on a shared machine, under the benchmark lock):
    flock /tmp/aef-bench.lock python -m benchmarks.model_speed [--threads 2] [--size 128] [--batch 2]
        [--frames 12] [--sweep 1,2,4,8] [--compile] [--repeats 9]
        [--malloc keep|embed|default]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import os
import resource
import statistics
import time

import torch

from model import PRESETS, EmbeddingFieldModel, preset, training_losses
from model.compiled import compile_for_inference
from model.flops import count_flops, count_parameters
from model.synthetic import EXAMPLE_SOURCES, random_train_batch, random_video

SOURCES = EXAMPLE_SOURCES[:2]  # s2 (10 bands) + s1 (VV, VH)
MATMUL_N = 2048
WARMUP = 3  # untimed calls of every timed function before its timed rounds
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
FAULTS: dict[str, int] = {}  # median minor page faults per call of the last alternate()


def _median_seconds(fn, repeats: int) -> float:
    for _ in range(WARMUP):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def alternate(fns: dict, repeats: int) -> dict[str, list[float]]:
    """Seconds of each function per round, the functions run in turn once per round after
    WARMUP untimed calls each (oneDNN primitives, weight reorders, the heap), so that load
    changes on a shared machine fall on every function alike. Page faults per call go to
    FAULTS[name] (their median)."""
    for _ in range(WARMUP):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    faults: dict[str, list[int]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            f0, t0 = _faults(), time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
            faults[name].append(_faults() - f0)
    FAULTS.update({name: int(statistics.median(f)) for name, f in faults.items()})
    return times


def matmul_fn(dtype: torch.dtype):
    a, b = torch.randn(MATMUL_N, MATMUL_N, dtype=dtype), torch.randn(MATMUL_N, MATMUL_N, dtype=dtype)
    return lambda: a @ b


def _line(label: str, secs: list[float], pixels: int, flops: int, mm_secs: list[float]) -> str:
    """The model's FLOP/s as a fraction of the matmul's, round by round: the median round,
    and the spread (min / max) a reader should see beside it."""
    mm_flops = 2 * MATMUL_N**3
    ratios = sorted((flops / s) / (mm_flops / m) for s, m in zip(secs, mm_secs))
    sec, mm = statistics.median(secs), mm_flops / statistics.median(mm_secs)
    return (f"{label}: {sec:.3f} s/batch, {pixels / sec:,.0f} px/s, {flops / sec / 1e9:.1f} GFLOP/s "
            f"= {statistics.median(ratios):.2f} of fp32 matmul (rounds: min {ratios[0]:.2f}, median "
            f"{statistics.median(ratios):.2f}, max {ratios[-1]:.2f}, n={len(ratios)}; matmul {mm / 1e9:.1f} GFLOP/s)")


def set_malloc(mode: str) -> str:
    """glibc's allocator policy for the run (before any big allocation):
    'keep': buffers up to 32 MiB come from the heap and freed memory stays there (no trim), so
    a forward reuses the previous one's pages; 'embed': what `aef embed` set until session 3
    (buffers >= 1 MiB by mmap, returned to the OS when freed: every batch page-faults them in
    again; embed now trims once per task instead);
    'default': glibc's adaptive thresholds (first calls fault, later ones less)."""
    if mode == "default":
        return mode
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return "default (no glibc)"
    if mode == "embed":
        libc.mallopt(M_MMAP_THRESHOLD, 1 << 20)
    else:
        libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)  # glibc's largest allowed value
        libc.mallopt(M_TRIM_THRESHOLD, 1 << 40)
    return mode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=128, help="tile side L in pixels")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--frames", type=int, default=12, help="frames per source (s2 and s1)")
    ap.add_argument("--sweep", default="1,2,4,8", help="batch sizes of the sweep ('' skips it)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (minutes to compile)")
    ap.add_argument("--repeats", type=int, default=9, help="timed rounds (at least 7)")
    ap.add_argument("--malloc", choices=("keep", "embed", "default"), default="keep",
                    help="glibc allocator policy (see set_malloc); 'embed' is what aef embed sets today")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--skip-training", action="store_true", help="skip the training-step timings")
    args = ap.parse_args()
    if args.repeats < 7:
        ap.error("--repeats must be at least 7 (the headline is a median over alternated rounds)")
    malloc = set_malloc(args.malloc)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"threads={args.threads}  malloc={malloc}  load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    mm32, mm16 = matmul_fn(torch.float32), matmul_fn(torch.bfloat16)
    cfg = preset(args.preset, SOURCES)
    model = EmbeddingFieldModel(cfg).eval()
    frames = {s.name: args.frames for s in SOURCES}

    def video_of(batch: int):
        return random_video(cfg, batch, args.size, frames, torch.Generator().manual_seed(0))

    video = video_of(args.batch)
    flops = count_flops(model, video)
    pixels = args.batch * args.size**2
    outputs = {}

    def forward(key, fwd=model, ctx=contextlib.nullcontext, v=video):
        def run():
            with torch.inference_mode(), ctx():
                outputs[key] = fwd(v)
        return run

    bf16 = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
    # the headline alternates the fp32 forward with the fp32 matmul only: bf16 work in the same
    # rounds evicts the caches and slowed the fp32 forward that followed it by up to 25 %
    sec = alternate({"mm32": mm32, "fp32": forward("fp32")}, args.repeats)
    name = f"{args.preset} L={args.size} B={args.batch} frames={frames}"
    print(_line(f"{name} eager fp32", sec["fp32"], pixels, flops, sec["mm32"]))
    print(f"  page faults per forward: {FAULTS['fp32']:,} (median); load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    sec = alternate({"mm32": mm32, "mm16": mm16, "bf16": forward("bf16", ctx=bf16)}, args.repeats)
    print(_line(f"{name} eager bf16-autocast", sec["bf16"], pixels, flops, sec["mm32"])
          + f"; {flops / statistics.median(sec['bf16']) / (2 * MATMUL_N**3 / statistics.median(sec['mm16'])):.2f}"
          " of bf16 matmul")
    cos = (outputs["fp32"] * outputs["bf16"].float()).sum(-1)
    print(f"bf16 vs fp32 agreement: mean cosine {cos.mean():.5f}, 0.1 % quantile {cos.flatten().quantile(0.001):.5f}, "
          f"min {cos.min():.5f}")

    grouped = model.inference_batch

    def ungrouped(v):  # the whole batch in one pass, as before inference_batch existed
        def run():
            model.inference_batch = v.batch_size
            try:
                forward("whole", v=v)()
            finally:
                model.inference_batch = grouped
        return run

    print(f"batch sweep (inference runs groups of model.inference_batch = {grouped} samples):")
    for batch in [int(b) for b in args.sweep.split(",") if b]:
        v = video_of(batch)
        fl = count_flops(model, v)
        fns = {"mm32": mm32, "fp32": forward("sweep", v=v)}
        if batch > grouped:
            fns["whole"] = ungrouped(v)
        sec = alternate(fns, args.repeats)
        print(_line(f"  B={batch}", sec["fp32"], batch * args.size**2, fl, sec["mm32"]))
        if batch > grouped:
            print(_line(f"  B={batch} in one pass", sec["whole"], batch * args.size**2, fl, sec["mm32"]))

    if args.compile:
        fwd = compile_for_inference(model)
        t0 = time.perf_counter()
        fwd(video)
        compile_s = time.perf_counter() - t0
        if not fwd.is_compiled:
            print(f"torch.compile unavailable ({fwd.fallback_reason}): eager only")
        else:
            sec = alternate({"mm32": mm32, "eager": forward("eager"), "compiled": forward("compiled", fwd=fwd)},
                            args.repeats)
            print(f"torch.compile (inductor, freezing): first call {compile_s:.1f} s")
            print(_line(f"{name} eager fp32   ", sec["eager"], pixels, flops, sec["mm32"]))
            print(_line(f"{name} compiled fp32", sec["compiled"], pixels, flops, sec["mm32"]))
            cos = (outputs["eager"] * outputs["compiled"]).sum(-1)
            print(f"compiled vs eager agreement: min cosine {cos.min():.7f}")

    if not args.skip_training:
        tiny = EmbeddingFieldModel(preset("tiny", SOURCES)).train()
        tiny_batch = random_train_batch(tiny.cfg, 2, 32, 3, generator=torch.Generator().manual_seed(0))
        sec = _median_seconds(lambda: training_losses(tiny, tiny_batch).total.backward(), args.repeats)
        print(f"tiny training step (teacher + student forward, backward) on 2 x (L=32), 3 frames per source: {sec:.3f} s")

        train_model = EmbeddingFieldModel(cfg).train()
        train_batch = random_train_batch(cfg, args.batch, 64, 6, generator=torch.Generator().manual_seed(0))
        sec = _median_seconds(lambda: training_losses(train_model, train_batch).total.backward(), args.repeats)
        print(f"{args.preset} training step on {args.batch} x (L=64), 6 frames per source: {sec:.3f} s")

    print(f"\nper preset (sources {[s.name for s in SOURCES]}, {args.frames} frames each, L={args.size}):")
    for name in PRESETS:
        pcfg = preset(name, SOURCES)
        with torch.device("meta"):
            m = EmbeddingFieldModel(pcfg)
            v = random_video(pcfg, 1, args.size, frames)
        inference = count_parameters(m.encoder) + count_parameters(m.summary)
        fpp = count_flops(m, v) / args.size**2
        print(f"  {name:5s} params {count_parameters(m) / 1e6:8.2f} M (inference {inference / 1e6:.2f} M), "
              f"forward {fpp / 1e6:8.2f} MFLOP/px ({fpp / (2 * args.frames) / 1e6:.3f} per frame)")


if __name__ == "__main__":
    main()
