"""CPU speed of the embedding field model, and its size per preset.

Prints, in one run: a large matmul's FLOP/s (the CPU's practical ceiling, fp32
and bf16), then `small` forward throughput at L=128 (pixels/s, FLOP/s and
its fraction of the matmul's), fp32 and under bf16 autocast with the
agreement between the two, then parameters and forward FLOPs/pixel of every
preset (counted on the meta device, so `base` costs nothing to count).

Run from the repository root: python -m benchmarks.model_speed [--threads 2] [--size 128] [--batch 2] [--frames 12]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

from model import PRESETS, EmbeddingFieldModel, preset, training_losses
from model.flops import count_flops, count_parameters
from model.synthetic import EXAMPLE_SOURCES, random_train_batch, random_video

SOURCES = EXAMPLE_SOURCES[:2]  # s2 (10 bands) + s1 (VV, VH)


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up (allocator, oneDNN primitives)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_flops(n: int, dtype: torch.dtype, repeats: int) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    return 2 * n**3 / _median_seconds(lambda: a @ b, repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=128, help="tile side L in pixels")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--frames", type=int, default=12, help="frames per source (s2 and s1)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--preset", default="small")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    mm32 = matmul_flops(2048, torch.float32, args.repeats)
    mm16 = matmul_flops(2048, torch.bfloat16, args.repeats)
    print(f"threads={args.threads}  matmul 2048^3: fp32 {mm32 / 1e9:.1f} GFLOP/s, bf16 {mm16 / 1e9:.1f} GFLOP/s")

    cfg = preset(args.preset, SOURCES)
    model = EmbeddingFieldModel(cfg).eval()
    frames = {s.name: args.frames for s in SOURCES}
    video = random_video(cfg, args.batch, args.size, frames, torch.Generator().manual_seed(0))
    flops = count_flops(model, video)
    pixels = args.batch * args.size**2
    outputs = {}
    for label, ctx, ceiling in (("fp32", contextlib.nullcontext, mm32),
                                ("bf16-autocast", lambda: torch.autocast("cpu", dtype=torch.bfloat16), mm16)):
        def run(ctx=ctx, label=label):
            with torch.no_grad(), ctx():
                outputs[label] = model(video)
        sec = _median_seconds(run, args.repeats)
        print(f"{args.preset} L={args.size} B={args.batch} frames={frames} {label}: {sec:.3f} s/batch, "
              f"{pixels / sec:,.0f} px/s, {flops / sec / 1e9:.1f} GFLOP/s = {flops / sec / mm32:.2f} of fp32 matmul"
              + (f", {flops / sec / ceiling:.2f} of bf16 matmul" if ceiling is not mm32 else ""))
    cos = (outputs["fp32"] * outputs["bf16-autocast"].float()).sum(-1)
    print(f"bf16 vs fp32 agreement: mean cosine {cos.mean():.5f}, 0.1 % quantile {cos.flatten().quantile(0.001):.5f}, "
          f"min {cos.min():.5f}")

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
