"""`aef train`: loss falls, checkpoints, kill-and-resume equality, bad inputs as one-line errors."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from train_cubes import make_cube

from aefcli.checkpoint import load_checkpoint
from aefcli.errors import DataError, InputError
from aefcli.train import TrainConfig, run

ROOT = Path(__file__).resolve().parents[2]
FAST = dict(preset="tiny", batch_size=2, window=16, max_frames=4, workers=0, threads=1)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """On a shared 2-core machine, OpenMP threads spin against each other: one thread is ~10x faster."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    return make_cube(tmp_path_factory.mktemp("cube") / "c.zarr", size=32)


def metrics(run_dir):
    with open(Path(run_dir) / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def aef_train(*args, **popen):
    cmd = [sys.executable, "-m", "aefcli", "train", *map(str, args)]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def test_tiny_trains_loss_falls_and_checkpoint_written(cube, tmp_path):
    result = run(TrainConfig(cubes=(cube,), out=tmp_path / "run", steps=30, lr=3e-3, checkpoint_every=10, **FAST))
    rows = metrics(tmp_path / "run")
    assert [int(r["step"]) for r in rows] == list(range(1, 31))
    for r in rows:
        for k in ("total", "reconstruction", "uniformity", "consistency", "text"):
            assert torch.isfinite(torch.tensor(float(r[k]))), (k, r)
    first = sum(float(r["total"]) for r in rows[:5]) / 5
    last = sum(float(r["total"]) for r in rows[-5:]) / 5
    assert last < first, (first, last)
    ckpt = load_checkpoint(result["checkpoint"])
    assert ckpt.step == 30 and ckpt.bands == {"s1": ("VV", "VH"), "s2": ("B02", "B03", "B04", "B08")}
    assert ckpt.train_args["steps"] == 30 and set(ckpt.norm) == {"s1", "s2"}
    model = ckpt.build_model()
    assert not model.training and result["samples_per_s"] > 0
    again = run(TrainConfig(cubes=(cube,), out=tmp_path / "run", steps=30, lr=3e-3, checkpoint_every=10, **FAST))
    assert again["already_done"] and load_checkpoint(tmp_path / "run").model_hash == ckpt.model_hash


@pytest.mark.parametrize("extra", [[], ["--ema", "0.9"]], ids=["live", "ema"])
def test_killed_run_resumes_to_the_same_weights(cube, tmp_path, extra):
    args = ["--cube", cube, "--preset", "tiny", "--steps", 8, "--batch-size", 2, "--window", 16, "--max-frames", 4,
            "--checkpoint-every", 2, "--workers", 1, "--threads", 1, "--seed", 3, "--json", *extra]
    straight = aef_train(*args, "--out", tmp_path / "straight")
    killed = aef_train(*args, "--out", tmp_path / "killed")
    ckpt = tmp_path / "killed" / "checkpoint.safetensors"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and killed.poll() is None:
        time.sleep(0.02)
    if killed.poll() is not None:
        pytest.fail(f"training ended (rc {killed.returncode}) before it could be killed: {killed.stderr.read()[-2000:]}")
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL
    step_at_kill = load_checkpoint(tmp_path / "killed").step
    assert step_at_kill < 8
    resumed = aef_train(*args, "--out", tmp_path / "killed")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert f"resuming {tmp_path / 'killed'} from step {step_at_kill}" in err
    straight.communicate(timeout=300)
    assert straight.returncode == 0
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "killed")
    assert a.step == b.step == 8
    wa, wb = a.state_dict(), b.state_dict()
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], rtol=1e-5, atol=1e-6, msg=name)
    assert [r["step"] for r in metrics(tmp_path / "killed")] == [str(s) for s in range(1, 9)]


def test_corrupt_checkpoint_is_an_error_not_a_restart(cube, tmp_path):
    cfg = TrainConfig(cubes=(cube,), out=tmp_path, steps=2, checkpoint_every=1, **FAST)
    run(cfg)
    path = tmp_path / "checkpoint.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="truncated or corrupt") as err:
        run(TrainConfig(cubes=(cube,), out=tmp_path, steps=4, checkpoint_every=1, **FAST))
    assert "\n" not in str(err.value)
    assert path.stat().st_size == 100  # nothing overwrote it


def test_other_arguments_in_the_same_out_are_refused(cube, tmp_path):
    run(TrainConfig(cubes=(cube,), out=tmp_path, steps=1, **FAST))
    with pytest.raises(InputError, match="seed"):
        run(TrainConfig(cubes=(cube,), out=tmp_path, steps=2, seed=5, **FAST))
    with pytest.raises(InputError, match="no checkpoint"):
        run(TrainConfig(cubes=(cube,), out=tmp_path / "new", steps=2, resume=True, **FAST))


def test_bad_inputs_are_one_line_errors(cube, tmp_path):
    from aefcli.normalise import NormStats

    with pytest.raises(InputError, match="landsat"):
        run(TrainConfig(cubes=(cube,), out=tmp_path / "a", steps=1, sources=("s2", "landsat"), **FAST))
    with pytest.raises(InputError, match="larger than cube"):
        run(TrainConfig(cubes=(cube,), out=tmp_path / "b", steps=1, **{**FAST, "window": 64}))
    norm = NormStats("log", ("B02", "B03", "B04", "B08"), (-2.0,) * 4, (1.0,) * 4)
    empty = make_cube(tmp_path / "empty.zarr", size=24, s2_frames=0, sources=("s2",), s2_norm=norm)
    with pytest.raises(DataError, match="no frames"):
        run(TrainConfig(cubes=(empty,), out=tmp_path / "c", steps=1, **FAST))
    with pytest.raises(InputError, match="does not exist"):
        TrainConfig(cubes=(tmp_path / "nope.zarr",), out=tmp_path / "d")


def test_source_weights_reach_the_model_and_belong_to_the_run(cube, tmp_path):
    run(TrainConfig(cubes=(cube,), out=tmp_path, steps=1, source_weights={"s1": 0.25}, **FAST))
    model = load_checkpoint(tmp_path).build_model()
    assert {s.name: s.weight for s in model.cfg.sources} == {"s1": 0.25, "s2": 1.0}
    with pytest.raises(InputError, match="source_weights"):
        run(TrainConfig(cubes=(cube,), out=tmp_path, steps=2, **FAST))
    with pytest.raises(InputError, match="weights must be > 0"):
        TrainConfig(cubes=(cube,), out=tmp_path / "x", sources=("s2",), source_weights={"s1": 0.5})


@pytest.mark.parametrize("extra", [["--steps", "0"], ["--window", "64"], ["--source-weights", "s1=-1"]])
def test_cli_bad_input_exit_1_one_line(cube, tmp_path, extra):
    proc = aef_train("--cube", cube, "--out", tmp_path / "r", "--window", 16, *extra)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and err.startswith("aef: error:")


def test_a_run_saved_before_a_field_existed_still_resumes(cube, tmp_path):
    from types import SimpleNamespace

    from aefcli.train import _check_resume

    cfg = TrainConfig(cubes=(cube,), out=tmp_path, steps=2, **FAST)
    legacy = {k: v for k, v in cfg.to_dict().items() if k != "source_weights"}
    _check_resume(cfg, SimpleNamespace(train_args=legacy))  # the missing field had its default
    weighted = TrainConfig(cubes=(cube,), out=tmp_path, steps=2, source_weights={"s1": 0.5}, **FAST)
    with pytest.raises(InputError, match="source_weights"):
        _check_resume(weighted, SimpleNamespace(train_args=legacy))
