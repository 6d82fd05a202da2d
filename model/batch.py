"""Typed batches: the model's only input types (docs/formats.md section 2).

Shapes: B batch, T frames (padded to the longest sample), C channels,
L x L pixels at 10 m. Times are float32 days since 1970-01-01 UTC.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class SourceFrames:
    """The frames of one source.

    values:  (B, T, C, L, L) float32, standardised; anything where not valid is ignored.
    valid:   (B, T, L, L) bool, pixel usable (not cloud / nodata).
    times:   (B, T) float32, acquisition time in days since 1970-01-01.
    present: (B, T) bool, False for padding or a missing frame.
    """

    values: torch.Tensor
    valid: torch.Tensor
    times: torch.Tensor
    present: torch.Tensor

    def __post_init__(self) -> None:
        if self.values.dim() != 5:
            raise ValueError(f"values must be (B,T,C,L,L), got {tuple(self.values.shape)}")
        b, t, _, h, w = self.values.shape
        if tuple(self.valid.shape) != (b, t, h, w):
            raise ValueError(f"valid must be {(b, t, h, w)}, got {tuple(self.valid.shape)}")
        for name in ("times", "present"):
            if tuple(getattr(self, name).shape) != (b, t):
                raise ValueError(f"{name} must be {(b, t)}, got {tuple(getattr(self, name).shape)}")

    @property
    def frame_ok(self) -> torch.Tensor:
        """(B, T) bool: the frame exists and has at least one valid pixel."""
        return self.present & self.valid.flatten(2).any(-1)

    def to(self, device: torch.device | str) -> "SourceFrames":
        return SourceFrames(*(x.to(device) for x in (self.values, self.valid, self.times, self.present)))

    def select(self, index: torch.Tensor) -> "SourceFrames":
        """Samples `index` of the batch (a 1-D index tensor)."""
        return SourceFrames(self.values[index], self.valid[index], self.times[index], self.present[index])


@dataclass
class VideoBatch:
    """A batch of multi-source videos and the period each embedding summarises.

    sources:   {name: SourceFrames}; a source the model knows may be absent.
    period:    (B, 2) float32 days [t_s, t_e), end exclusive.
    text:      (B, D) float32 frozen text embeddings, or None.
    text_mask: (B,) bool, which rows of `text` are real, or None (all real).
    """

    sources: dict[str, SourceFrames]
    period: torch.Tensor
    text: torch.Tensor | None = None
    text_mask: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.period.dim() != 2 or self.period.shape[1] != 2:
            raise ValueError(f"period must be (B, 2), got {tuple(self.period.shape)}")
        b = self.period.shape[0]
        sizes = set()
        for name, frames in self.sources.items():
            if frames.values.shape[0] != b:
                raise ValueError(f"source {name!r} has batch {frames.values.shape[0]}, period has {b}")
            sizes.add(tuple(frames.values.shape[-2:]))
        if len(sizes) > 1:
            raise ValueError(f"all sources must share one pixel grid, got sizes {sorted(sizes)}")
        if self.text is not None and (self.text.dim() != 2 or self.text.shape[0] != b):
            raise ValueError(f"text must be (B, D) with B={b}, got {tuple(self.text.shape)}")
        if self.text_mask is not None and tuple(self.text_mask.shape) != (b,):
            raise ValueError(f"text_mask must be ({b},), got {tuple(self.text_mask.shape)}")

    @property
    def batch_size(self) -> int:
        return int(self.period.shape[0])

    def to(self, device: torch.device | str) -> "VideoBatch":
        return VideoBatch(
            sources={k: v.to(device) for k, v in self.sources.items()},
            period=self.period.to(device),
            text=None if self.text is None else self.text.to(device),
            text_mask=None if self.text_mask is None else self.text_mask.to(device),
        )

    def select(self, index: torch.Tensor) -> "VideoBatch":
        """Samples `index` of the batch (a 1-D index tensor)."""
        return VideoBatch(
            sources={k: v.select(index) for k, v in self.sources.items()},
            period=self.period[index],
            text=None if self.text is None else self.text[index],
            text_mask=None if self.text_mask is None else self.text_mask[index],
        )

    def only(self, names: tuple[str, ...]) -> "VideoBatch":
        """The same batch with only the named sources (others dropped)."""
        return VideoBatch({k: v for k, v in self.sources.items() if k in names},
                          self.period, self.text, self.text_mask)


@dataclass
class TrainBatch:
    """One training step's data.

    teacher: the full video (held-out frames removed);
    student: a perturbed copy (frames / sources / half-years dropped);
    targets: held-out frames to reconstruct, per source, same L as the videos.
    """

    teacher: VideoBatch
    student: VideoBatch
    targets: dict[str, SourceFrames]

    def to(self, device: torch.device | str) -> "TrainBatch":
        return TrainBatch(self.teacher.to(device), self.student.to(device),
                          {k: v.to(device) for k, v in self.targets.items()})
