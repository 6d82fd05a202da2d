"""Random batches with the right shapes, for tests, benchmarks and smoke runs (no data needed)."""

from __future__ import annotations

import torch

from model.batch import SourceFrames, TrainBatch, VideoBatch
from model.config import ModelConfig, SourceSpec

DAY0 = 19358.0  # 2023-01-01 in days since 1970-01-01
# channel counts of the usual sources, for synthetic batches only (the real table is aefcli's)
EXAMPLE_SOURCES = (SourceSpec("s2", 10), SourceSpec("s1", 2, loss="l2"), SourceSpec("landsat", 7))


def random_frames(channels: int, batch: int, frames: int, size: int,
                  generator: torch.Generator | None = None, p_invalid: float = 0.2) -> SourceFrames:
    """Standard-normal values, ~p_invalid invalid pixels, times spread over 2023 (sorted)."""
    g = generator
    values = torch.randn(batch, frames, channels, size, size, generator=g)
    valid = torch.rand(batch, frames, size, size, generator=g) >= p_invalid
    times = DAY0 + torch.sort(torch.rand(batch, frames, generator=g) * 365.0, dim=1).values
    present = torch.ones(batch, frames, dtype=torch.bool)
    return SourceFrames(values, valid, times, present)


def random_video(cfg: ModelConfig, batch: int = 2, size: int = 32, frames: int | dict[str, int] = 3,
                 generator: torch.Generator | None = None, text: bool = False) -> VideoBatch:
    """A VideoBatch over every source of cfg (or those named in `frames`), period = 2023."""
    counts = frames if isinstance(frames, dict) else {s.name: frames for s in cfg.sources}
    sources = {name: random_frames(cfg.source(name).channels, batch, n, size, generator)
               for name, n in counts.items()}
    period = torch.tensor([[DAY0, DAY0 + 365.0]]).repeat(batch, 1)
    txt = torch.randn(batch, cfg.text_dim, generator=generator) if text else None
    return VideoBatch(sources, period, txt, None)


def random_train_batch(cfg: ModelConfig, batch: int = 2, size: int = 32, frames: int = 3,
                       targets: int = 1, generator: torch.Generator | None = None,
                       text: bool = True) -> TrainBatch:
    """Teacher = a random video; student = the teacher with its last source and every other frame dropped."""
    teacher = random_video(cfg, batch, size, frames, generator, text)
    student_sources = {}
    names = list(teacher.sources)
    for name, f in teacher.sources.items():
        if len(names) > 1 and name == names[-1]:
            continue
        present = f.present.clone()
        present[:, 1::2] = False
        student_sources[name] = SourceFrames(f.values, f.valid, f.times, present)
    student = VideoBatch(student_sources, teacher.period, teacher.text, teacher.text_mask)
    held_out = {s.name: random_frames(s.channels, batch, targets, size, generator) for s in cfg.sources}
    return TrainBatch(teacher, student, held_out)
