"""`aef train` speed: samples/s of a preset end to end vs the bare training step, on CPU or GPU.

    python benchmarks/train_speed.py [--preset small] [--window 64] [--batch-size 8] [--threads 2]
                                     [--steps 12] [--workers 1] [--device auto]

Builds a sample world (size 128, 24 dates), ingests it (real STAC -> COG -> cube
path), then measures:
- train: `aefcli.train.run` for --steps steps (data loading in --workers processes,
  checkpoint at the end); median samples/s over the steps after the first;
- step: the bare forward + backward + AdamW step of the same model on one batch
  drawn once (no data loading), i.e. the ceiling `train` can reach;
- on CUDA: bf16 autocast, and the model FLOP utilisation (MFU) against the
  GPU's dense bf16 peak (--peak-tflops, default 989 for an H100 SXM) when
  `model.flops` can count the training step's FLOPs.
Prints one JSON line per measurement.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # after PYTHONPATH, so a checkout given there wins


def build_cube(tmp: Path, size: int, dates: int) -> Path:
    from aefcli.ingest import IngestConfig, run as ingest
    from aefcli.sampleworld import write_sample_world

    w = write_sample_world(tmp / "world", size=size, dates=dates, seed=0)
    ingest(IngestConfig(stac=str(w.catalog), collections=("s2", "s1"), bbox=",".join(map(str, w.bbox_wgs84)),
                        period=f"{w.config.year}-01-01/{w.config.year + 1}-01-01", out=tmp / "cube.zarr",
                        max_cloud=None))
    return tmp / "cube.zarr"


def bare_step(cube: Path, args, device: str) -> dict:
    """Samples/s of forward + backward + optimiser step on one fixed batch (no data loading)."""
    import torch

    from aefcli.io.cube import open_cube
    from aefcli.sampling import SamplingConfig, WindowSampler
    from model import EmbeddingFieldModel, SourceSpec, preset, training_losses

    c = open_cube(cube)
    sampler = WindowSampler([cube], c.sources, c.norm, SamplingConfig(window=args.window, batch_size=args.batch_size,
                                                                      max_frames=args.max_frames))
    batch = sampler.batch(0).to(device)
    cfg = preset(args.preset, tuple(SourceSpec(s, len(c.bands[s])) for s in c.sources))
    model = EmbeddingFieldModel(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda")
    times = []
    for i in range(args.steps):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        with autocast:
            loss = training_losses(model, batch).total
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    sec = statistics.median(times[1:] or times)
    out = {"measure": "step", "preset": args.preset, "device": device, "window": args.window,
           "batch_size": args.batch_size, "samples_per_s": round(args.batch_size / sec, 3),
           "step_s": round(sec, 4), "parameters": sum(p.numel() for p in model.parameters())}
    flops = _step_flops(model, batch)
    if flops:
        out["tflop_per_step"] = round(flops / 1e12, 4)
        out["achieved_tflops"] = round(flops / sec / 1e12, 3)
        if device == "cuda":
            out["mfu"] = round(flops / sec / (args.peak_tflops * 1e12), 4)
    return out


def _step_flops(model, batch) -> float | None:
    """FLOPs of one training step (forward + backward) counted by torch's FlopCounterMode."""
    try:
        from torch.utils.flop_counter import FlopCounterMode

        from model import training_losses

        with FlopCounterMode(display=False) as counter:
            training_losses(model, batch).total.backward()
        model.zero_grad(set_to_none=True)
        return float(counter.get_total_flops())
    except Exception:  # noqa: BLE001 - a counting failure must not hide the timing
        return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="small")
    p.add_argument("--window", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-frames", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--dates", type=int, default=24)
    p.add_argument("--device", default="auto")
    p.add_argument("--peak-tflops", type=float, default=989.0)
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device)
    from aefcli.train import TrainConfig, run

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cube = build_cube(tmp, args.size, args.dates)
        print(json.dumps(bare_step(cube, args, device)), flush=True)
        t = time.perf_counter()
        res = run(TrainConfig(cubes=(cube,), out=tmp / "run", preset=args.preset, steps=args.steps,
                              batch_size=args.batch_size, window=args.window, max_frames=args.max_frames,
                              workers=args.workers, threads=args.threads, device=device,
                              checkpoint_every=args.steps))
        print(json.dumps({"measure": "train", "preset": args.preset, "device": device, "window": args.window,
                          "batch_size": args.batch_size, "threads": args.threads, "workers": args.workers,
                          "samples_per_s": round(res["samples_per_s"], 3), "steps": args.steps,
                          "wall_s": round(time.perf_counter() - t, 1), "parameters": res["parameters"]}), flush=True)


if __name__ == "__main__":
    main()
