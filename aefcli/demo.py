"""The main job end to end on the bundled sample world, through the stages' own functions.

sample world (COGs + STAC) -> ingest (UTM cube) -> train (tiny preset) ->
embed (Zarr embedding cube + PCA preview) -> features (designed baseline) ->
probe (both cubes scored on the same folds; map + preview of the embeddings').
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from aefcli import console
from aefcli.errors import InputError


@dataclass(frozen=True)
class DemoConfig:
    """out: folder for every output; size: world side in pixels (multiple of 16); steps: training steps."""

    out: Path
    size: int = 256
    dates: int = 24
    steps: int = 200
    seed: int = 0
    year: int = 2024

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        if self.size < 64 or self.size % 16:
            raise InputError(f"--size {self.size}: use a multiple of 16, at least 64")
        if self.steps < 1:
            raise InputError(f"--steps must be at least 1, got {self.steps}")


def _stage(name: str, outputs: dict[str, Any], fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    console.say(f"== {name}")
    t0 = time.perf_counter()
    result = fn()
    outputs[name] = {"seconds": round(time.perf_counter() - t0, 1), "result": result}
    return result


def run(cfg: DemoConfig) -> dict[str, Any]:
    """Run every stage into cfg.out; returns {stage: {seconds, result}, "outputs": {name: path}}."""
    from aefcli import embed, features, ingest, probe, train
    from aefcli.sampleworld import write_sample_world

    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    period = f"{cfg.year}-01-01/{cfg.year + 1}-01-01"
    done: dict[str, Any] = {}

    world = write_sample_world(out / "world", size=cfg.size, dates=cfg.dates, seed=cfg.seed, year=cfg.year)
    done["sample-world"] = {"result": {"catalog": str(world.catalog), "labels": str(world.labels), "truth": str(world.truth)}}
    bbox = ",".join(f"{v:.6f}" for v in world.bbox_wgs84)
    cube = out / "cube.zarr"
    _stage("ingest", done, lambda: ingest.run(ingest.IngestConfig(
        stac=str(world.catalog), collections=("sentinel-2-l2a", "sentinel-1-grd"), bbox=bbox, period=period,
        out=cube, command="aef demo")))
    trained = _stage("train", done, lambda: train.run(train.TrainConfig(
        cubes=(cube,), out=out / "run", preset="tiny", steps=cfg.steps, window=32, batch_size=8, seed=cfg.seed,
        workers=0, threads=1,  # one thread: tiny ops gain little from two, and lose 5x on a busy machine
        checkpoint_every=max(1, cfg.steps // 4))))
    emb = out / "embeddings.zarr"
    _stage("embed", done, lambda: embed.run(embed.EmbedConfig(
        checkpoint=Path(trained["checkpoint"]), out=emb, period=period, cube=cube, bbox=bbox,
        chunk=256, preview=out / "embeddings.png", command="aef demo")))
    feats = out / "features.zarr"
    _stage("features", done, lambda: features.run(features.FeaturesConfig(
        cube=cube, period=period, kind="monthly-smooth", out=feats)))
    result = _stage("probe", done, lambda: probe.run(probe.ProbeConfig(
        labels=world.labels, embeddings=(emb, feats), out=out / "map.tif", preview=out / "map.png", block=cfg.size * 10.0 / 4)))  # 16 CV blocks
    console.say(probe.format_table(result))
    done["outputs"] = {
        "world": str(world.catalog), "cube": str(cube), "checkpoint": trained["checkpoint"],
        "embeddings": str(emb), "embeddings_preview": str(out / "embeddings.png"), "features": str(feats),
        "map": str(out / "map.tif"), "map_preview": str(out / "map.png"),
    }
    return done
