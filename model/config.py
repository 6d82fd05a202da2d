"""Model configuration: frozen, validated dataclasses and the named presets.

The config is JSON-serialisable (`to_dict` / `from_dict`) because every
checkpoint stores the exact config it was trained with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

_LOSS_KINDS = ("l1", "l2")
_POSITIONS = ("alibi", "learned")
_TIME_FACTORS = (2, 4)  # time path at L/4 or L/8; the space path (L/16) must stay coarser


@dataclass(frozen=True)
class SourceSpec:
    """One input source (e.g. "s2", "s1", "landsat").

    name: key used in `VideoBatch.sources`; channels: bands per frame (C_m);
    loss: reconstruction loss for this source ("l1" | "l2"); weight: its share in the
    reconstruction objective (a weighted mean over sources; e.g. 0.25 keeps S1 speckle from
    dominating it).
    """

    name: str
    channels: int
    loss: str = "l1"
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not self.name or not self.name.isidentifier():
            raise ValueError(f"source name must be an identifier, got {self.name!r}")
        if self.channels < 1:
            raise ValueError(f"source {self.name!r}: channels must be >= 1, got {self.channels}")
        if self.loss not in _LOSS_KINDS:
            raise ValueError(f"source {self.name!r}: loss must be one of {_LOSS_KINDS}, got {self.loss!r}")
        if not self.weight > 0:
            raise ValueError(f"source {self.name!r}: weight must be > 0, got {self.weight}")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and objective settings of the embedding field model.

    Widths are channels of the three STP paths: precision (3x3 convs at L/2),
    time (time-axial attention at L/8) and space (2D-ALiBi attention at L/16).
    summary_width: channels of the period-conditioned summary (0: precision_width, the
    narrow head); a wider head (e.g. 128 with 16 heads) pools more distinct frame
    selections, and its values carry the frames' timecodes (the profile's timing).
    summary_queries: K > 1 cuts the valid period into K equal sub-periods, one query each
    (from its own timecodes); their summaries go side by side into the head's output
    projection, so the summary says when something was seen (1: the single period query).
    profile_skip: K > 0 gives the head each pixel's own period profile (its mean valid input
    in K equal sub-periods, `model.profile`) through a learned linear map at full resolution,
    beside the cell summaries: small parcels keep their own phenology (0: off).
    time_factor: the time path's cell in precision cells: 4 (L/8, cells of 8 x 8 px, the
    default) or 2 (L/4, 4 x 4 px, for small parcels; about 4x the time path's work). The
    space path stays at L/16 either way, so the two coarse paths never share a resolution
    and the space attention's cost and ALiBi grid are unchanged.
    smooth_radius / smooth_tau / smooth_passes / smooth_step: the inference field's edge-aware smoothing
    (`model.smoothing.edge_aware_smooth`; radius 0, the default, is off). It has no weights and
    training learns the unsmoothed field; every no-grad forward (`aef embed`, the training
    probe) returns the smoothed one. smooth_train: training smooths too (the losses see the
    field inference returns, so the model learns what survives the filter).
    kappa is the fixed vMF concentration of the training bottleneck.
    a, b, c, d weight reconstruction, batch uniformity, consistency and text.
    contrast weighs an InfoNCE term between the teacher's and the student's views
    (`model.losses.view_contrast_loss`; 0: off): temperature contrast_tau, one pixel per
    contrast_cell x contrast_cell block, the positive moved by up to contrast_shift px.
    """

    sources: tuple[SourceSpec, ...]
    embed_dim: int = 64
    precision_width: int = 32
    time_width: int = 64
    space_width: int = 128
    depth: int = 4
    time_heads: int = 4
    space_heads: int = 4
    summary_heads: int = 4
    summary_width: int = 0
    summary_queries: int = 1
    profile_skip: int = 0
    mlp_ratio: float = 4.0
    time_factor: int = 4
    smooth_radius: int = 0
    smooth_tau: float = 0.3
    smooth_passes: int = 2
    smooth_step: int = 2
    smooth_train: bool = False
    timecode_dim: int = 32
    decoder_width: int = 64
    kappa: float = 8192.0
    a: float = 1.0
    b: float = 0.05
    c: float = 0.02
    d: float = 0.001
    radar_optical_weight: float = 0.0
    contrast: float = 0.0
    contrast_tau: float = 0.1
    contrast_cell: int = 8
    contrast_shift: int = 0
    radar_optical_pair: tuple[str, str] = ("s2", "s1")
    text_dim: int = 384
    position: str = "alibi"
    position_grid: int = 8  # patches per side of the learned table (position="learned" only)

    def __post_init__(self) -> None:
        srcs = tuple(self.sources)
        if not srcs:
            raise ValueError("ModelConfig needs at least one source")
        if not all(isinstance(s, SourceSpec) for s in srcs):
            raise ValueError("sources must be SourceSpec instances")
        names = [s.name for s in srcs]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate source names: {names}")
        object.__setattr__(self, "sources", srcs)
        object.__setattr__(self, "radar_optical_pair", tuple(self.radar_optical_pair))
        for name, heads in (("time", self.time_heads), ("space", self.space_heads)):
            width = getattr(self, f"{name}_width")
            if width % heads:
                raise ValueError(f"{name}_width {width} is not divisible by {name}_heads {heads}")
        if self.time_factor not in _TIME_FACTORS:
            raise ValueError(f"time_factor must be one of {_TIME_FACTORS}, got {self.time_factor}")
        if self.smooth_radius < 0 or self.smooth_passes < 1 or self.smooth_step < 1 or not self.smooth_tau > 0:
            raise ValueError("smooth_radius must be >= 0 (0: off), smooth_passes and smooth_step >= 1, smooth_tau > 0")
        if self.summary_queries < 1:
            raise ValueError(f"summary_queries must be >= 1, got {self.summary_queries}")
        if self.profile_skip < 0:
            raise ValueError(f"profile_skip must be >= 0 (0: off), got {self.profile_skip}")
        if self.summary_width < 0:
            raise ValueError(f"summary_width must be >= 0 (0: precision_width), got {self.summary_width}")
        if (self.summary_width or self.precision_width) % self.summary_heads:
            raise ValueError("the summary width (summary_width, or precision_width when 0) must be divisible by summary_heads")
        positive = ("embed_dim", "precision_width", "time_width", "space_width", "depth",
                    "timecode_dim", "decoder_width", "text_dim", "position_grid")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.timecode_dim % 2:
            raise ValueError("timecode_dim must be even (sin/cos pairs)")
        if self.kappa <= 0:
            raise ValueError(f"kappa must be > 0, got {self.kappa}")
        if not self.contrast_tau > 0 or self.contrast_cell < 1 or self.contrast_shift < 0:
            raise ValueError("contrast_tau must be > 0, contrast_cell >= 1, contrast_shift >= 0")
        for name in ("a", "b", "c", "d", "radar_optical_weight", "contrast"):
            if getattr(self, name) < 0:
                raise ValueError(f"loss weight {name} must be >= 0")
        if self.position not in _POSITIONS:
            raise ValueError(f"position must be one of {_POSITIONS}, got {self.position!r}")
        if len(self.radar_optical_pair) != 2:
            raise ValueError("radar_optical_pair must name two sources")

    @property
    def source_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.sources)

    def source(self, name: str) -> SourceSpec:
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(f"unknown source {name!r}; the model knows {self.source_names}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (lists instead of tuples)."""
        d = asdict(self)
        d["sources"] = [asdict(s) for s in self.sources]
        d["radar_optical_pair"] = list(self.radar_optical_pair)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        """Inverse of `to_dict`; unknown keys raise ValueError."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown ModelConfig keys: {sorted(unknown)}")
        kw = dict(d)
        kw["sources"] = tuple(SourceSpec(**s) for s in d["sources"])
        if "radar_optical_pair" in kw:
            kw["radar_optical_pair"] = tuple(kw["radar_optical_pair"])
        return cls(**kw)


_PRESETS: dict[str, dict[str, Any]] = {
    # unit tests: forward+backward on 2 x (L=32) well under a second on CPU
    "tiny": dict(precision_width=16, time_width=32, space_width=32, depth=1, time_heads=2,
                 space_heads=2, summary_heads=2, mlp_ratio=2.0, timecode_dim=16, decoder_width=32),
    # trainable on CPU
    "small": dict(precision_width=32, time_width=64, space_width=128, depth=4, time_heads=4,
                  space_heads=4, summary_heads=4, timecode_dim=32, decoder_width=64),
    # the paper's scale as far as it is known (15 blocks, 128 / 512 / 1024); for GPUs
    "base": dict(precision_width=128, time_width=512, space_width=1024, depth=15, time_heads=8,
                 space_heads=16, summary_heads=8, timecode_dim=64, decoder_width=128),
}


def preset(name: str, sources: tuple[SourceSpec, ...], **overrides: Any) -> ModelConfig:
    """The named preset ('tiny' | 'small' | 'base') for these sources, with optional overrides."""
    if name not in _PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(_PRESETS)}")
    return replace(ModelConfig(sources=tuple(sources), **_PRESETS[name]), **overrides)


PRESETS = tuple(_PRESETS)
