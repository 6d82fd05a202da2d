"""Train the embedding model self-supervised on ingested cubes.

Draws random windows, support and valid periods from the cubes, holds frames out
as reconstruction targets and perturbs a student view (AEF objectives). Writes
runs/NAME/checkpoint.safetensors every --checkpoint-every steps and at the end,
plus metrics.csv. Re-running the same command resumes from the last checkpoint.
Scale out with `torchrun --nproc-per-node N -m aefcli train ...`.

Example: aef train --cube cube.zarr --out runs/tiny --preset tiny --steps 200
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from aefcli import console
from aefcli.commands.options import JSON, use_json

NO_ARGS_IS_HELP = True


def command(
    cube: List[Path] = typer.Option(..., "--cube", help="Ingested cube (repeat for several)."),
    out: Path = typer.Option(..., "--out", help="Run directory: checkpoint, metrics.csv."),
    preset: str = typer.Option("tiny", "--preset", help="Model size: tiny | small | base."),
    steps: int = typer.Option(1000, "--steps", help="Optimiser steps in all (a resumed run continues to this)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Windows per step (per process under torchrun)."),
    window: int = typer.Option(64, "--window", help="Window side L in pixels (10 m)."),
    sources: Optional[str] = typer.Option(None, "--sources", help="Comma-separated model sources (default: all in the cubes)."),
    source_weights: Optional[str] = typer.Option(None, "--source-weights", help="Reconstruction weight per source, e.g. s1=0.25 (default 1 each)."),
    text: Optional[Path] = typer.Option(None, "--text", help="GeoJSON of geotagged text (points/polygons, `text` property)."),
    lr: float = typer.Option(1e-3, "--lr", help="Peak learning rate (AdamW)."),
    warmup: Optional[int] = typer.Option(None, "--warmup", help="Warm-up steps (default 5 % of --steps)."),
    checkpoint_every: int = typer.Option(100, "--checkpoint-every", help="Steps between checkpoints."),
    max_frames: int = typer.Option(16, "--max-frames", help="Most input frames per source and window."),
    max_targets: int = typer.Option(2, "--max-targets", help="Held-out frames per source and window."),
    profile_targets: int = typer.Option(0, "--profile-targets", help="Also decode the valid period's profile: N bins, each the median of its clear observations (0: off)."),
    support_days: str = typer.Option("180,365", "--support-days", help="Shortest,longest support period in days."),
    drop_frame_p: float = typer.Option(0.5, "--drop-frame-p", help="Student's chance to lose each frame (frame dropout)."),
    min_valid: float = typer.Option(0.3, "--min-valid", help="Share of a window's pixels that need a valid observation."),
    workers: int = typer.Option(1, "--workers", help="Data-loading worker processes (0: load in the main process)."),
    cache_mb: int = typer.Option(2048, "--cache-mb", help="RAM per cube for holding it in memory while it fits (0: off)."),
    threads: int = typer.Option(0, "--threads", help="torch threads for training (0: torch's default; 1 helps on a busy machine)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (runs on CPU are deterministic for a seed)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    compile_: bool = typer.Option(False, "--compile", help="torch.compile the model."),
    eval_labels: Optional[Path] = typer.Option(None, "--eval-labels", help="GeoJSON labels for a probe during training."),
    eval_field: str = typer.Option("label", "--eval-field", help="Property of --eval-labels holding the class."),
    eval_every: int = typer.Option(0, "--eval-every", help="Steps between probe evaluations (0: only at the end)."),
    resume: bool = typer.Option(False, "--resume", help="Require a checkpoint in --out and continue it."),
    ema: float = typer.Option(0.0, "--ema", help="Checkpoint a moving average of the weights with this decay, e.g. 0.995 (0: the live weights)."),
    json: bool = JSON,
) -> None:
    use_json(json)
    from aefcli.errors import InputError
    from aefcli.parse import parse_weights
    from aefcli.train import TrainConfig, run

    try:
        lo, hi = (float(v) for v in support_days.split(","))
    except ValueError:
        raise InputError(f"--support-days takes two numbers such as 180,365, got {support_days!r}") from None

    cfg = TrainConfig(
        cubes=tuple(cube), out=out, preset=preset, steps=steps, batch_size=batch_size, window=window,
        sources=tuple(s.strip() for s in sources.split(",") if s.strip()) if sources else None,
        source_weights=parse_weights(source_weights), text=text, lr=lr, warmup=warmup, checkpoint_every=checkpoint_every, max_frames=max_frames,
        max_targets=max_targets, profile_targets=profile_targets, support_days=(lo, hi), drop_frame_p=drop_frame_p, min_valid=min_valid,
        workers=workers, threads=threads, cache_mb=cache_mb, seed=seed, device=device, compile=compile_, eval_labels=eval_labels,
        eval_field=eval_field, eval_every=eval_every if eval_every else (steps if eval_labels else 0),
        resume=resume, ema=ema,
    )
    result = run(cfg)
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        loss = result.get("loss")
        human = f"checkpoint: {result['checkpoint']} (step {result['step']}" + (f", loss {loss:.4f})" if loss is not None else ")")
        console.report(result, human)
