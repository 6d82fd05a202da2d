"""Named training recipes: label-free `aef train` settings measured on real crop patches.

A recipe is a set of `TrainConfig` arguments (model preset + overrides, window,
batch, frames, schedule). `benchmarks/quality.py --recipe NAME` and
`examples/quality_recipe.sh` train with them, so the checkpoint a figure in
`benchmarks/README.md` came from is reproduced by one command. No recipe uses
labels: the probe labels only ever score the finished embeddings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from aefcli.errors import InputError
from aefcli.train import TrainConfig


# Each entry: TrainConfig keyword arguments. Measured figures: benchmarks/README.md.
RECIPES: dict[str, dict[str, Any]] = {
    # the plumbing check: a few steps of the tiny model (seconds)
    "smoke": dict(preset="tiny", steps=4, window=32, batch_size=2, max_frames=6, lr=1e-3, checkpoint_every=1000),
    # 2-core CPU default: tiny STP model, small windows, many windows per batch (uniformity across
    # windows), 8 held-out frames per source to decode from each embedding (the whole period's
    # profile, not 2 dates), teacher-student consistency weighted up (c 0.02 -> 0.2) so the
    # embedding ignores which frames it saw; one torch thread (far faster on a busy 2-core box);
    # S2 only: with S1 the per-source mean gives S1 speckle half the reconstruction loss, and
    # 1000 steps scored 0.479 max-shot with S1 vs 0.575 without (benchmarks/README.md)
    "cpu": dict(preset="tiny", steps=1000, window=32, batch_size=8, max_frames=16, max_targets=8, lr=2e-3,
                workers=0, threads=1, checkpoint_every=50, sources=("s2",), model_overrides=dict(c=0.2)),
}
# `cpu` with the wide summary head (128 channels, 16 heads, time-coded values): max-shot 0.649 vs
# 0.575 at 1000 steps, level with `cpu` at 2000 (benchmarks/README.md, "Session-2 ablations")
RECIPES["cpu-wide"] = {**RECIPES["cpu"], "model_overrides": dict(c=0.2, summary_width=128, summary_heads=16)}
# `cpu-wide` with S1 back, its speckle kept from dominating the reconstruction by a 0.25 weight:
# 0.369 / 0.526 / 0.601 (1 / 10 / max shot) at 1000 steps; session 1's S2 + S1 at full weight: 0.319 / 0.494 / 0.479
RECIPES["cpu-s1"] = {**RECIPES["cpu-wide"], "sources": ("s1", "s2"), "source_weights": {"s1": 0.25}}


# `cpu` with one summary query per twelfth of the valid period: 0.378 / 0.537 / 0.630 (1 / 10 / max
# shot) at 1000 steps vs 0.354 / 0.485 / 0.575 for `cpu`; both plateau near 0.63-0.65 max-shot by
# 3000 steps (benchmarks/README.md, "Session-3")
RECIPES["cpu-q12"] = {**RECIPES["cpu"], "model_overrides": dict(c=0.2, summary_queries=12)}
# `cpu-q12` with the time path at L/4 (4 x 4 px cells instead of 8 x 8), so that small parcels are
# not averaged with their neighbours before time attention: 0.351 / 0.506 / 0.616 at 1000 steps,
# no better than `cpu-q12` (benchmarks/README.md, "Session-4/5")
RECIPES["cpu-q12-t2"] = {**RECIPES["cpu-q12"], "model_overrides": dict(c=0.2, summary_queries=12, time_factor=2)}
# `cpu-q12` whose inference field is edge-aware smoothed (model.smoothing: radius 6 px every 2nd
# offset, tau 0.3, 2 passes; training is unchanged): 0.365 / 0.584 / 0.702 at 1000 steps vs 0.378 /
# 0.537 / 0.630 unsmoothed; resumed to 3000 steps (`--steps 3000`) 0.399 / 0.600 / 0.733 (best baseline 0.385 / 0.649 /
# 0.722; benchmarks/README.md, "Sessions 4-5"); to 5000 steps worse (0.391 / 0.597 / 0.659: "Sessions 6-7").
# The default recipe of benchmarks/quality.py.
RECIPES["cpu-q12-s"] = {**RECIPES["cpu-q12"], "model_overrides": dict(c=0.2, summary_queries=12, smooth_radius=6)}
# `cpu-q12-s` whose head also takes each pixel's own period profile (12 sub-period means of its
# valid inputs, `model.profile`) at full resolution, so small parcels could keep their own
# phenology instead of their 8 x 8 px cell's. Worse: 0.334 / 0.525 / 0.559 at 1000 steps vs
# 0.365 / 0.584 / 0.702 for `cpu-q12-s`, and below its own random-weights control (0.350 / 0.584
# / 0.647): training moves the embedding away from what the linear probe reads in the profile
# (benchmarks/README.md, "Session 8")
RECIPES["cpu-q12-sp"] = {**RECIPES["cpu-q12-s"],
                         "model_overrides": dict(c=0.2, summary_queries=12, smooth_radius=6, profile_skip=12)}
# `cpu-q12-s` whose checkpoint holds an exponential moving average of the weights (decay 0.995,
# ~200 steps), tried because the probe fell from 3000 to 5000 steps while the loss kept falling.
# No better: 0.372 / 0.574 / 0.656 at 1000 steps vs 0.365 / 0.584 / 0.702 (benchmarks/README.md, "Sessions 6-7")
RECIPES["cpu-q12-se"] = {**RECIPES["cpu-q12-s"], "ema": 0.995}
# `cpu-q12-s` whose training smooths the field too (ModelConfig.smooth_train): the losses see the
# field inference returns. Worse: 0.364 / 0.521 / 0.559 at 1000 steps vs 0.365 / 0.584 / 0.702 for
# `cpu-q12-s` (below the random control at max-shot; benchmarks/README.md, "Sessions 6-7")
RECIPES["cpu-q12-st"] = {**RECIPES["cpu-q12"],
                         "model_overrides": dict(c=0.2, summary_queries=12, smooth_radius=6, smooth_train=True)}
# `cpu-q12` that also decodes the valid period's profile (12 bins, each the median of its clear
# observations) from every embedding, beside the 8 held-out frames: 0.369 / 0.528 / 0.662 at 1000
# steps (+0.03 max-shot over `cpu-q12`, inside the fold noise; not kept in `cpu-q12-s`)
RECIPES["cpu-q12-p12"] = {**RECIPES["cpu-q12"], "profile_targets": 12}
# `cpu-q12-s` with S1 back in inputs and targets, its reconstruction weighted 0.25 as in `cpu-s1`
# (radar sees the crops through clouds). Worse: 0.307 / 0.515 / 0.600 at 1000 steps vs 0.365 / 0.584 /
# 0.702 (benchmarks/README.md, "Session 9")
RECIPES["cpu-q12-s1"] = {**RECIPES["cpu-q12-s"], "sources": ("s1", "s2"), "source_weights": {"s1": 0.25}}
# `cpu-q12-s` decoding 16 held-out frames per source and window instead of 8 (more of the period's
# profile from each embedding): 0.364 / 0.581 / 0.665 at 1000 steps; and the same with 8 input frames
# instead of 16 (a masked-autoencoder ratio): 0.390 / 0.557 / 0.636. Neither beats `cpu-q12-s`
# (0.365 / 0.584 / 0.702) beyond the fold spread (benchmarks/README.md, "Session 9")
RECIPES["cpu-q12-s-t16"] = {**RECIPES["cpu-q12-s"], "max_targets": 16}
RECIPES["cpu-q12-s-f8t16"] = {**RECIPES["cpu-q12-s"], "max_frames": 8, "max_targets": 16}

# `cpu-q12-s` with an InfoNCE term between the teacher's and the student's views
# (ModelConfig.contrast 0.1, tau 0.1, one pixel per 8 x 8 px block): each sampled pixel must find
# its own other view among the batch's pixels, so the field ignores the frames seen AND spreads
# places apart. Far worse: 0.253 / 0.483 / 0.573 at 1000 steps vs 0.365 / 0.584 / 0.702, below the
# random-weights control (0.302 / 0.475 / 0.590): telling 4096 pixels apart splits parcels of one
# crop as much as parcels of two (benchmarks/README.md, "Session 12")
_Q12S = RECIPES["cpu-q12-s"]["model_overrides"]
RECIPES["cpu-q12-s-nce"] = {**RECIPES["cpu-q12-s"], "model_overrides": {**_Q12S, "contrast": 0.1}}
# the same with the positive moved by up to 3 px (neighbours alike, as within a parcel): 0.287 / 0.492 / 0.553
RECIPES["cpu-q12-s-nce3"] = {**RECIPES["cpu-q12-s"], "model_overrides": {**_Q12S, "contrast": 0.1, "contrast_shift": 3}}

# `cpu-q12-s` without the batch uniformity term (b 0.05 -> 0), and with it 10x stronger (b 0.5),
# tried because the contrastive term above says that spreading places apart hurts this probe.
# Both worse at 1000 steps: b 0 0.294 / 0.556 / 0.592, b 0.5 0.317 / 0.458 / 0.545, vs 0.365 / 0.584
# / 0.702 at b 0.05 (benchmarks/README.md, "Session 12")
RECIPES["cpu-q12-s-b0"] = {**RECIPES["cpu-q12-s"], "model_overrides": {**_Q12S, "b": 0.0}}
RECIPES["cpu-q12-s-b05"] = {**RECIPES["cpu-q12-s"], "model_overrides": {**_Q12S, "b": 0.5}}

def recipe_names() -> tuple[str, ...]:
    return tuple(RECIPES)


def train_config(name: str, cubes: Sequence[str | Path], out: str | Path, **overrides: Any) -> TrainConfig:
    """The training config of recipe `name` for these cubes; keyword overrides win (e.g. steps=100)."""
    if name not in RECIPES:
        raise InputError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    kwargs = {**RECIPES[name], **{k: v for k, v in overrides.items() if v is not None}}
    kwargs["model_overrides"] = dict(kwargs.get("model_overrides", {}))
    return TrainConfig(cubes=tuple(Path(c) for c in cubes), out=Path(out), **kwargs)


def train(cfg: TrainConfig) -> dict[str, Any]:
    """`aefcli.train.run(cfg)`: the trainer holds cubes that fit `cfg.cache_mb` in RAM itself."""
    from aefcli import train as stage

    return stage.run(cfg)
