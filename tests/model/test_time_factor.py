"""ModelConfig.time_factor: the time path at L/8 (4, the default: old checkpoints unchanged) or L/4 (2)."""

import pytest
import torch

from model import EmbeddingFieldModel, ModelConfig, preset, training_losses
from model.synthetic import EXAMPLE_SOURCES as SOURCES
from model.synthetic import random_train_batch, random_video


def test_a_config_saved_before_time_factor_loads_with_the_old_time_path():
    old = preset("tiny", SOURCES).to_dict()
    del old["time_factor"]  # what every checkpoint written before the field stores
    cfg = ModelConfig.from_dict(old)
    assert cfg.time_factor == 4
    # the same parameter shapes as ever: an old state dict loads strictly
    shapes = {n: p.shape for n, p in EmbeddingFieldModel(cfg).state_dict().items()}
    assert shapes["encoder.stem_down8.residual"] == (16, 1, 4, 4)
    assert shapes["encoder.stem_down16.residual"] == (16, 1, 2, 2)


@pytest.mark.parametrize("bad", [1, 3, 8])
def test_only_time_factors_2_and_4(bad):
    with pytest.raises(ValueError, match="time_factor"):
        preset("tiny", SOURCES, time_factor=bad)


def _sequence_shapes(model, video):
    """(time attention input, space attention input) shapes of the first block."""
    seen = {}
    block = model.encoder.blocks[0]
    # (a forward hook that returns a value replaces the output: these return None)
    block.time.register_forward_hook(lambda m, args, out: seen.update(time=args[0].shape))
    block.space.register_forward_hook(lambda m, args, out: seen.update(space=args[0].shape))
    with torch.no_grad():
        model(video)
    return seen["time"], seen["space"]


@pytest.mark.parametrize("factor, cells", [(4, 8), (2, 16)])
def test_time_path_runs_at_its_resolution_and_space_path_stays_at_l16(factor, cells, gen):
    model = EmbeddingFieldModel(preset("tiny", SOURCES, time_factor=factor)).eval()
    video = random_video(model.cfg, 2, 64, {"s2": 3}, gen)
    time_in, space_in = _sequence_shapes(model, video)
    assert time_in[:3] == (2, cells * cells, 3)  # one sequence of T frames per time-path cell
    assert space_in[:2] == (2 * 3, 4 * 4)  # 64 px / 16 per side, per frame


def test_time_factor_2_masks_time_keys_per_4px_cell(gen):
    """A frame valid only inside one 4 x 4 px cell is a time key there and nowhere else."""
    model = EmbeddingFieldModel(preset("tiny", SOURCES, time_factor=2)).eval()
    video = random_video(model.cfg, 1, 32, {"s2": 3}, gen)
    video.sources["s2"].valid[:] = True
    video.sources["s2"].valid[0, 1] = False
    video.sources["s2"].valid[0, 1, 4:8, 8:12] = True  # cell (1, 2) of the 8 x 8 L/4 grid
    masks = []
    model.encoder.blocks[0].time.register_forward_hook(lambda m, args, out: masks.append(args[1]))
    with torch.no_grad():
        model(video)
    keys = (masks[0][0, :, 0, 0] == 0).view(8, 8, 3)  # (cell row, cell col, frame): query frame 0
    assert keys[..., 0].all() and keys[..., 2].all()
    assert keys[1, 2, 1] and keys[..., 1].sum() == 1


def test_time_factor_2_contract(gen):
    """Unit vectors, no NaN, every parameter trained, and the inference path equals autograd's."""
    model = EmbeddingFieldModel(preset("tiny", SOURCES, time_factor=2, summary_queries=3))
    model.train()
    training_losses(model, random_train_batch(model.cfg, 2, 32, 3, generator=gen)).total.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing
    model.eval()
    video = random_video(model.cfg, 2, 32, {"s2": 3, "s1": 2}, gen)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("residual"):  # as after training: the learned resampling is not the fixed one
                p.normal_(std=0.1)
    reference = model(video)
    with torch.inference_mode():
        fast = model(video)
    assert torch.isfinite(fast).all()
    torch.testing.assert_close(fast.norm(dim=-1), torch.ones(2, 32, 32), atol=1e-5, rtol=0)
    torch.testing.assert_close(fast, reference.detach(), atol=1e-5, rtol=0)
