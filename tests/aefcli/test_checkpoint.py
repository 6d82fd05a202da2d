"""Checkpoints: safetensors weights + metadata, atomic, corrupt files are one-line errors."""

import json

import pytest
import torch

from aefcli.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from aefcli.errors import DataError
from aefcli.normalise import NormStats
from model.config import SourceSpec, preset

NORM = {"s2": NormStats("log", ("B04", "B08"), (-2.0, -1.5), (0.5, 0.4))}
BANDS = {"s2": ("B04", "B08")}


def model_and_cfg():
    try:
        from model import EmbeddingFieldModel
    except ImportError:  # the model package lands separately; a plain module exercises the file format
        EmbeddingFieldModel = None
    cfg = preset("tiny", (SourceSpec("s2", 2),))
    torch.manual_seed(0)
    model = EmbeddingFieldModel(cfg) if EmbeddingFieldModel else torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    return model, cfg, EmbeddingFieldModel is not None


def save(path, model, cfg, **kw):
    return save_checkpoint(path, model, cfg, NORM, BANDS, {"steps": 10, "seed": 0}, step=kw.pop("step", 10), **kw)


def test_roundtrip_metadata_and_weights(tmp_path):
    model, cfg, real = model_and_cfg()
    path = save(tmp_path / "run", model, cfg)
    assert path == tmp_path / "run" / CHECKPOINT_NAME
    ckpt = load_checkpoint(tmp_path / "run")  # a run directory works as well as the file
    assert ckpt.step == 10 and ckpt.train_args == {"steps": 10, "seed": 0}
    assert ckpt.norm == NORM and ckpt.bands == BANDS and ckpt.sources == ("s2",)
    assert ckpt.model_cfg() == cfg and len(ckpt.model_hash) == 64
    state = ckpt.state_dict()
    for name, tensor in model.state_dict().items():
        assert torch.equal(state[name], tensor), name
    if real:
        rebuilt = ckpt.build_model()
        assert not rebuilt.training
        for name, tensor in model.state_dict().items():
            assert torch.equal(rebuilt.state_dict()[name], tensor), name


def test_file_holds_no_pickle(tmp_path):
    model, cfg, _ = model_and_cfg()
    path = save(tmp_path, model, cfg)
    head = path.read_bytes()
    n = int.from_bytes(head[:8], "little")
    header = json.loads(head[8 : 8 + n])  # safetensors: a JSON header, then raw tensor bytes
    meta = json.loads(header["__metadata__"]["aef:checkpoint"])
    assert meta["bands"] == {"s2": ["B04", "B08"]} and meta["model_config"]["sources"][0]["name"] == "s2"
    assert b"\x80\x04" not in head[:16]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "flip"])
def test_damaged_checkpoint_is_a_one_line_data_error(tmp_path, damage):
    model, cfg, real = model_and_cfg()
    path = save(tmp_path, model, cfg)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint at all" * 10)
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # one flipped byte in the weights: only the hash can tell
        data[-5] ^= 0xFF
        path.write_bytes(bytes(data))
    with pytest.raises(DataError) as err:
        ckpt = load_checkpoint(path)
        if damage == "flip":
            ckpt.build_model() if real else pytest.skip("hash check needs the model package")
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(DataError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nothing")


def test_train_state_beside_weights_and_paired_by_hash(tmp_path):
    model, cfg, _ = model_and_cfg()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sum(p.sum() for p in model.parameters()).backward()
    opt.step()
    state = {"optimizer": opt.state_dict(), "rng": torch.get_rng_state(), "step": 3}
    save(tmp_path, model, cfg, step=3, train_state=state)
    save(tmp_path, model, cfg, step=5, train_state={**state, "step": 5})
    states = sorted(p.name for p in tmp_path.glob("*.pt"))
    assert states == ["checkpoint.state-000000005.pt"]  # older states are removed
    back = load_checkpoint(tmp_path).load_train_state()
    assert back["step"] == 5 and torch.equal(back["rng"], state["rng"])
    opt2 = torch.optim.AdamW(model.parameters(), lr=1e-3)
    opt2.load_state_dict(back["optimizer"])
    (tmp_path / states[0]).write_bytes(b"corrupt")
    with pytest.raises(DataError, match="corrupt"):
        load_checkpoint(tmp_path).load_train_state()


def test_no_temp_files_left(tmp_path):
    model, cfg, _ = model_and_cfg()
    save(tmp_path, model, cfg, train_state={"step": 1})
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
