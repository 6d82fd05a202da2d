"""2-process DistributedDataParallel on CPU (gloo): ranks see different windows, hold identical weights."""

import subprocess
import sys
from pathlib import Path

import torch
from train_cubes import make_cube

HERE = Path(__file__).resolve().parent


def test_two_ranks_hold_identical_weights_after_a_step(tmp_path):
    cube = make_cube(tmp_path / "c.zarr", size=32)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(HERE / "train_ddp_worker.py"), str(cube), str(tmp_path / "run")]
    env = {"PYTHONPATH": f"{HERE.parents[1]}:{HERE}", "OMP_NUM_THREADS": "1",
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / "run" / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert not torch.equal(r0["period"], r1["period"])  # each rank samples its own windows
    changed = 0
    for name, w in r0["after"].items():
        assert torch.equal(w, r1["after"][name]), name  # gradients were averaged across ranks
        changed += not torch.equal(w, r0["before"][name])
    assert changed > 10  # the step did update the weights
    assert (tmp_path / "run" / "checkpoint.safetensors").exists()  # written once, by rank 0
