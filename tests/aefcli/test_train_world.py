"""`aef train` on the sample world (STAC -> ingest -> cube): loss falls, text term on, probe hook runs."""

import csv
import math

import pytest
import torch

from aefcli.checkpoint import load_checkpoint
from aefcli.ingest import IngestConfig
from aefcli.ingest import run as ingest
from aefcli.sampleworld import write_sample_world
from aefcli.text import encoder_available
from aefcli.train import TrainConfig, run

TERMS = ("total", "reconstruction", "uniformity", "consistency", "text")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    w = write_sample_world(root / "world", size=64, dates=12, seed=0)
    ingest(IngestConfig(stac=str(w.catalog), collections=("s2", "s1"), bbox=",".join(map(str, w.bbox_wgs84)),
                        period=f"{w.config.year}-01-01/{w.config.year + 1}-01-01", out=root / "cube.zarr",
                        max_cloud=None))
    return w, root / "cube.zarr"


def test_tiny_on_sample_world_learns(world, tmp_path):
    w, cube = world
    text = w.text if encoder_available() else None
    before = torch.get_num_threads()
    try:
        result = run(TrainConfig(cubes=(cube,), out=tmp_path / "run", preset="tiny", steps=36, batch_size=4, window=32,
                                 max_frames=6, lr=3e-3, workers=1, threads=1, checkpoint_every=12, text=text,
                                 eval_labels=w.labels, eval_field="class", eval_every=18))
    finally:
        torch.set_num_threads(before)
    with open(tmp_path / "run" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 36
    assert all(math.isfinite(float(r[k])) for r in rows for k in TERMS)
    first = sum(float(r["total"]) for r in rows[:6]) / 6
    last = sum(float(r["total"]) for r in rows[-6:]) / 6
    assert last < first, (first, last)
    probes = [float(r["probe_balanced_accuracy"]) for r in rows if r["probe_balanced_accuracy"]]
    assert len(probes) == 2 and all(0 <= p <= 1 for p in probes)
    assert result["probe_balanced_accuracy"] == probes[-1]
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt.step == 36 and set(ckpt.bands) == {"s1", "s2"} and len(ckpt.bands["s2"]) == 10
    if text is not None:
        assert result["text"] and ckpt.extra["text"]
        assert any(float(r["text"]) > 0 for r in rows)  # windows met geotagged text
        assert (tmp_path / "run" / "text-embeddings.npz").exists()
