"""`aef train --ema`: the checkpoint holds the moving average of the weights, and a resumed run continues it
(kill-and-resume equality with --ema: tests/aefcli/test_train.py)."""

import pytest
import torch
from train_cubes import make_cube

from aefcli.checkpoint import load_checkpoint
from aefcli.errors import InputError
from aefcli.train import TrainConfig, run

FAST = dict(preset="tiny", batch_size=2, window=16, max_frames=4, workers=0, threads=1, lr=3e-3, seed=1)


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    return make_cube(tmp_path_factory.mktemp("cube") / "c.zarr", size=32)


def _float_weights(ckpt) -> dict:
    return {k: v for k, v in ckpt.state_dict().items() if v.is_floating_point()}


def test_checkpoint_holds_the_average_and_a_resumed_run_continues_it(cube, tmp_path):
    decay = 0.5
    run(TrainConfig(cubes=(cube,), out=tmp_path / "run", steps=3, checkpoint_every=3, ema=decay, **FAST))
    third = load_checkpoint(tmp_path / "run")
    avg3 = _float_weights(third)
    live3 = third.load_train_state()["live_weights"]
    assert any(not torch.equal(avg3[k], live3[k]) for k in avg3)  # the checkpoint is not the live model

    run(TrainConfig(cubes=(cube,), out=tmp_path / "run", steps=4, checkpoint_every=3, ema=decay, **FAST))
    fourth = load_checkpoint(tmp_path / "run")
    avg4, live4 = _float_weights(fourth), fourth.load_train_state()["live_weights"]
    assert fourth.step == 4
    for k in avg4:  # one more step of the average: decay * average + (1 - decay) * new live weights
        torch.testing.assert_close(avg4[k], decay * avg3[k] + (1 - decay) * live4[k], msg=k)


def test_ema_belongs_to_the_run_and_is_checked(cube, tmp_path):
    run(TrainConfig(cubes=(cube,), out=tmp_path / "run", steps=2, checkpoint_every=2, **FAST))
    with pytest.raises(InputError, match="ema"):
        run(TrainConfig(cubes=(cube,), out=tmp_path / "run", steps=3, checkpoint_every=2, ema=0.9, **FAST))
    with pytest.raises(InputError, match="--ema"):
        TrainConfig(cubes=(cube,), out=tmp_path / "x", ema=1.0, **FAST)
