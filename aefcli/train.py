"""`aef train`: self-supervised training of the embedding field model on ingested cubes.

run(cfg) builds the model from a preset and the cubes' band table, draws batches
with `aefcli.sampling.WindowSampler` in DataLoader workers (data loading overlaps
compute; each batch is a pure function of seed, rank and step), optimises the AEF
objectives (`model.training_losses`) with AdamW, warm-up + cosine decay and
gradient clipping (bf16 autocast on CUDA), and writes `checkpoint.safetensors`
every `checkpoint_every` steps and at the end. Re-running the same command (or
`--resume`) continues from the last checkpoint with optimiser, scheduler and RNG
state, so a killed run ends with the same weights as an uninterrupted one.
Under `torchrun --nproc-per-node N` it trains with DistributedDataParallel.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aefcli import console
from aefcli.errors import InputError

log = logging.getLogger(__name__)
PRESETS = ("tiny", "small", "base")
# Arguments a resumed run may change; any other difference means another run.
RESUMABLE = ("steps", "checkpoint_every", "workers", "threads", "device", "compile", "eval_labels", "eval_every",
             "resume", "cache_mb")


@dataclass(frozen=True)
class TrainConfig:
    """Everything `aef train` needs; validated at construction (InputError, one line).

    cubes: ingested cube paths; out: run directory; sources: model sources (None: every
    source of the cubes); source_weights: reconstruction weight per source (default 1);
    window: L in pixels; batch_size: windows per step per process;
    lr: peak learning rate; warmup: warm-up steps (None: 5 % of steps, at most 500);
    checkpoint_every: steps between checkpoints; workers: DataLoader worker processes;
    max_frames / max_targets: input / held-out frames per source and window; profile_targets: 0 or
    N whole-period profile bins decoded as extra targets (`aefcli.sampling.profile`); support_days:
    (shortest, longest) support period; drop_frame_p: the student's frame dropout; min_valid:
    share of a window's pixels that need a valid observation (see `aefcli.sampling`);
    threads: torch intra-op threads of the training process (0: torch's default);
    cache_mb: RAM per cube for holding its sources in memory (0: read every window from the store);
    ema: 0 (off) or the decay of an exponential moving average of the weights, which the checkpoint
    then holds (what `aef embed` and the eval hook use; training continues on the live weights).
    """

    cubes: tuple[Path, ...]
    out: Path
    preset: str = "tiny"
    sources: tuple[str, ...] | None = None
    source_weights: dict[str, float] = field(default_factory=dict)
    steps: int = 1000
    batch_size: int = 8
    window: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: int | None = None
    grad_clip: float = 1.0
    checkpoint_every: int = 100
    seed: int = 0
    device: str = "auto"
    workers: int = 1
    threads: int = 0
    compile: bool = False
    text: Path | None = None
    eval_labels: Path | None = None
    eval_field: str = "label"
    eval_every: int = 0
    max_frames: int = 16
    max_targets: int = 2
    profile_targets: int = 0
    support_days: tuple[float, float] = (180.0, 365.0)
    drop_frame_p: float = 0.5
    min_valid: float = 0.3
    cache_mb: int = 2048
    resume: bool = False
    ema: float = 0.0
    model_overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cubes", tuple(Path(c) for c in self.cubes))
        object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "support_days", tuple(float(d) for d in self.support_days))
        if not self.cubes:
            raise InputError("give at least one --cube")
        if self.preset not in PRESETS:
            raise InputError(f"--preset must be one of {PRESETS}, got {self.preset!r}")
        if self.steps < 1:
            raise InputError(f"--steps must be at least 1, got {self.steps}")
        if self.checkpoint_every < 1:
            raise InputError(f"--checkpoint-every must be at least 1, got {self.checkpoint_every}")
        if self.lr <= 0 or self.weight_decay < 0 or self.grad_clip <= 0:
            raise InputError("--lr and --grad-clip must be > 0 and --weight-decay >= 0")
        bad = [f"{k}={w}" for k, w in self.source_weights.items() if not w > 0 or (self.sources and k not in self.sources)]
        if bad:
            raise InputError(f"--source-weights {', '.join(bad)}: weights must be > 0 and name model sources")
        if not 0.0 <= self.ema < 1.0:
            raise InputError(f"--ema must be 0 (off) or a decay in (0, 1), e.g. 0.995; got {self.ema}")
        if self.workers < 0 or self.threads < 0:
            raise InputError(f"--workers and --threads must be >= 0, got {self.workers} and {self.threads}")
        for p in self.cubes:
            if not p.exists():
                raise InputError(f"cube {p} does not exist; create it with `aef ingest`")
        for name, p in (("--text", self.text), ("--eval-labels", self.eval_labels)):
            if p is not None and not Path(p).exists():
                raise InputError(f"{name} file {p} does not exist")
        self.sampling()  # validates window, batch size, frames

    def sampling(self):
        from aefcli.sampling import SamplingConfig

        return SamplingConfig(window=self.window, batch_size=self.batch_size, max_frames=self.max_frames,
                              max_targets=self.max_targets, profile_targets=self.profile_targets, period_days=tuple(self.support_days),
                              drop_frame_p=self.drop_frame_p, min_valid=self.min_valid, cache_mb=self.cache_mb)

    @property
    def warmup_steps(self) -> int:
        return self.warmup if self.warmup is not None else max(1, min(500, self.steps // 20))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return json.loads(json.dumps(d, default=str))


def _field_defaults() -> dict[str, Any]:
    """TrainConfig's field defaults in `to_dict` form."""
    from dataclasses import MISSING, fields

    d = {f.name: f.default if f.default is not MISSING else f.default_factory()
         for f in fields(TrainConfig) if f.default is not MISSING or f.default_factory is not MISSING}
    return json.loads(json.dumps(d, default=str))


def _check_resume(cfg: TrainConfig, ckpt) -> None:
    """A checkpoint in --out belongs to this run only if the non-resumable arguments agree."""
    saved, now = ckpt.train_args, cfg.to_dict()
    defaults = _field_defaults()  # a run saved before a field existed had that field's default
    diff = sorted(k for k in now if k not in RESUMABLE and saved.get(k, defaults.get(k)) != now[k])
    if diff:
        raise InputError(
            f"{cfg.out} holds a run with other arguments ({', '.join(diff)} differ); "
            f"re-run with the same arguments to resume, or choose another --out"
        )


def run(cfg: TrainConfig) -> dict[str, Any]:
    """Train; returns {"checkpoint", "step", "steps", "loss", "samples_per_s", ...} (on every rank)."""
    import torch

    from aefcli.checkpoint import CHECKPOINT_NAME, load_checkpoint
    from aefcli.train_loop import Trainer
    from aefcli.train_support import init_dist, pick_device

    device = pick_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
    dist = init_dist(device)
    ckpt = None
    if (cfg.out / CHECKPOINT_NAME).exists():
        ckpt = load_checkpoint(cfg.out)  # a damaged checkpoint stops here: never a silent restart
        _check_resume(cfg, ckpt)
        if dist.main:
            console.say(f"resuming {cfg.out} from step {ckpt.step}")
    elif cfg.resume:
        raise InputError(f"--resume: no checkpoint in {cfg.out}; drop --resume to start a new run")
    if ckpt is not None and ckpt.step >= cfg.steps:
        if dist.main:
            console.say(f"{cfg.out} already trained for {ckpt.step} steps (>= --steps {cfg.steps}); nothing to do")
        return {"checkpoint": str(ckpt.path), "step": ckpt.step, "steps": cfg.steps, "already_done": True,
                "model_hash": ckpt.model_hash}
    torch.manual_seed(cfg.seed)
    trainer = Trainer(cfg, device, dist, ckpt)
    try:
        return trainer.fit()
    finally:
        trainer.close()
