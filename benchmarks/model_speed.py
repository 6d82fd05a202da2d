"""CPU speed of the embedding field model, and its size per preset.

Prints, in one run: a large fp32 matmul's FLOP/s (the CPU's practical ceiling),
measured alternately with every model timing it is compared with (so both
sides see the same machine load); `small` forward throughput at L=128
(pixels/s, FLOP/s and the fraction of the matmul's) eagerly in fp32, over a
batch-size sweep, under bf16 autocast (with its agreement with fp32) and,
with --compile, through torch.compile (compile time, steady state, agreement);
then training-step times and parameters / forward FLOPs per pixel of every
preset (counted on the meta device, so `base` costs nothing to count).

Run from the repository root (on a shared machine, under the benchmark lock):
    flock /tmp/aef-bench.lock python -m benchmarks.model_speed [--threads 2] [--size 128] [--batch 2]
        [--frames 12] [--sweep 1,2,4,8] [--compile] [--repeats 5]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time

import torch

from model import PRESETS, EmbeddingFieldModel, preset, training_losses
from model.compiled import compile_for_inference
from model.flops import count_flops, count_parameters
from model.synthetic import EXAMPLE_SOURCES, random_train_batch, random_video

SOURCES = EXAMPLE_SOURCES[:2]  # s2 (10 bands) + s1 (VV, VH)
MATMUL_N = 2048


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up (allocator, oneDNN primitives)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def alternate(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each function, run in turn once per round (after one warm-up each),
    so that load changes on a shared machine fall on every function alike."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def matmul_fn(dtype: torch.dtype):
    a, b = torch.randn(MATMUL_N, MATMUL_N, dtype=dtype), torch.randn(MATMUL_N, MATMUL_N, dtype=dtype)
    return lambda: a @ b


def _line(label: str, sec: float, pixels: int, flops: int, mm_sec: float) -> str:
    mm = 2 * MATMUL_N**3 / mm_sec
    return (f"{label}: {sec:.3f} s/batch, {pixels / sec:,.0f} px/s, {flops / sec / 1e9:.1f} GFLOP/s "
            f"= {flops / sec / mm:.2f} of fp32 matmul ({mm / 1e9:.1f} GFLOP/s, same rounds)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=128, help="tile side L in pixels")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--frames", type=int, default=12, help="frames per source (s2 and s1)")
    ap.add_argument("--sweep", default="1,2,4,8", help="batch sizes of the sweep ('' skips it)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (minutes to compile)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--skip-training", action="store_true", help="skip the training-step timings")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"threads={args.threads}  load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

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
    sec = alternate({"mm32": mm32, "mm16": mm16, "bf16": forward("bf16", ctx=bf16)}, args.repeats)
    print(_line(f"{name} eager bf16-autocast", sec["bf16"], pixels, flops, sec["mm32"])
          + f"; {flops / sec['bf16'] / (2 * MATMUL_N**3 / sec['mm16']):.2f} of bf16 matmul")
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
