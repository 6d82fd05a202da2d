"""REAL data: WorldCereal Flanders 2018 -> COG/STAC (examples/worldcereal_to_stac.py) -> ingest -> aef train (tiny)."""

import csv
import math

import pytest
from scripts import load_script
import torch

from aefcli.checkpoint import load_checkpoint
from aefcli.ingest import IngestConfig
from aefcli.ingest import run as ingest
from aefcli.train import TrainConfig, run

pytestmark = pytest.mark.shared_data


def _converter():
    return load_script("examples/worldcereal_to_stac.py")


def test_tiny_trains_on_an_ingested_worldcereal_cube(shared_data, tmp_path):
    patch = shared_data / "worldcereal-flanders-2018"
    catalog = _converter().convert(patch, tmp_path / "stac", max_dates=16)
    ingest(IngestConfig(stac=str(catalog), collections=("s2", "s1"), bbox="3.0185,50.8115,3.0265,50.8155",
                        period="2017-08-01/2018-12-01", out=tmp_path / "cube.zarr", crs="EPSG:32631", max_cloud=None))
    before = torch.get_num_threads()
    try:
        result = run(TrainConfig(cubes=(tmp_path / "cube.zarr",), out=tmp_path / "run", preset="tiny", steps=12,
                                 batch_size=2, window=32, max_frames=6, workers=0, threads=1, checkpoint_every=6))
    finally:
        torch.set_num_threads(before)
    with open(tmp_path / "run" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12
    assert all(math.isfinite(float(r[k])) for r in rows for k in ("total", "reconstruction", "uniformity", "consistency"))
    assert float(rows[0]["reconstruction"]) > 0  # real held-out frames were decoded
    ckpt = load_checkpoint(result["checkpoint"])
    assert ckpt.step == 12 and ckpt.bands["s1"] == ("VV", "VH") and "B8A" in ckpt.bands["s2"]
    assert ckpt.norm["s2"].transform == "log" and ckpt.norm["s1"].transform == "identity"
