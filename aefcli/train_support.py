"""Pieces of the training loop that are not the loop: process group, schedule, RNG state, metrics.

Kept apart from `aefcli/train.py` so each stays a screen or two long.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

METRIC_FIELDS = ("step", "lr", "total", "reconstruction", "uniformity", "consistency", "text",
                 "grad_norm", "samples_per_s", "elapsed_s", "probe_balanced_accuracy")


@dataclass(frozen=True)
class Dist:
    """This process's place in a torchrun job (rank 0 of 1 when not under torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()


def init_dist(device: torch.device) -> Dist:
    """Join the torchrun process group (gloo on CPU, nccl on CUDA) when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as tdist

    if not tdist.is_initialized():
        tdist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(tdist.get_rank(), tdist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto' | 'cpu' | 'cuda' -> a torch device (one GPU per torchrun process)."""
    from aefcli.errors import InputError

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise InputError("--device cuda asked, but torch sees no CUDA GPU; use --device cpu")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    if name != "cpu":
        raise InputError(f"--device must be auto, cpu or cuda, got {name!r}")
    return torch.device("cpu")


def warmup_cosine(warmup: int, total: int, floor: float = 0.05):
    """LambdaLR factor: linear warm-up over `warmup` steps, cosine decay to `floor` at `total`."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: no decay on biases, norms, scales (tensors of rank < 2)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """This process's torch RNG state (CPU, and the current GPU's)."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def gather_objects(obj: Any, dist: Dist) -> list[Any]:
    """Every rank's `obj`, in rank order (a one-element list outside torchrun)."""
    if dist.world == 1:
        return [obj]
    out: list[Any] = [None] * dist.world
    torch.distributed.all_gather_object(out, obj)
    return out


def mean_over_ranks(values: torch.Tensor, dist: Dist) -> torch.Tensor:
    if dist.world > 1:
        values = values.clone()
        torch.distributed.all_reduce(values)
        values /= dist.world
    return values


class MetricsLog:
    """metrics.csv in the run directory: one row per step; a resume drops rows past its checkpoint."""

    def __init__(self, run_dir: Path, resume_step: int) -> None:
        self.path = run_dir / "metrics.csv"
        rows = []
        if self.path.exists() and resume_step > 0:
            with open(self.path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if r.get("step", "").isdigit() and int(r["step"]) <= resume_step]
        with open(self.path, "w", newline="") as f:
            writer = csv.DictWriter(f, METRIC_FIELDS)
            writer.writeheader()
            writer.writerows({k: r.get(k, "") for k in METRIC_FIELDS} for r in rows)
        self._file = open(self.path, "a", newline="")
        self._writer = csv.DictWriter(self._file, METRIC_FIELDS)
        self._tb = _tensorboard(run_dir)

    def write(self, row: dict[str, Any]) -> None:
        self._writer.writerow({k: row.get(k, "") for k in METRIC_FIELDS})
        self._file.flush()
        if self._tb is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)):
                    self._tb.add_scalar(k, v, row["step"])

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def _tensorboard(run_dir: Path):
    """A SummaryWriter when the tensorboard package is installed, else None."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(run_dir / "tensorboard"))
