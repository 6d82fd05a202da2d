import torch

from model import EmbeddingFieldModel, preset
from model.flops import count_flops, count_parameters
from model.synthetic import EXAMPLE_SOURCES, random_video


def test_flops_counted_on_meta_equal_real_and_include_attention():
    cfg = preset("tiny", EXAMPLE_SOURCES[:2])
    model = EmbeddingFieldModel(cfg)
    real = count_flops(model, random_video(cfg, 1, 32, 4))
    with torch.device("meta"):
        meta_model = EmbeddingFieldModel(cfg)
        meta = count_flops(meta_model, random_video(cfg, 1, 32, 4))
    assert real == meta > 0
    assert count_parameters(meta_model) == count_parameters(model)
    # twice the frames, nearly twice the work (the per-pixel head is a fixed cost)
    assert count_flops(model, random_video(cfg, 1, 32, 8)) > 1.5 * real
    # the CPU attention kernel, absent from torch's own table, is counted
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as plain:  # the autograd formulas, as count_flops counts
        model(random_video(cfg, 1, 32, 4))
    assert real > plain.get_total_flops()


def test_flops_count_useful_work_not_the_phase_forms_zero_taps():
    """The count is that of the autograd formulas (transposed convolutions): the inference
    path's phase-form upsampling runs a 3x3 kernel that is mostly structural zeros."""
    from torch.utils.flop_counter import FlopCounterMode

    from model.flops import _CUSTOM
    cfg = preset("tiny", EXAMPLE_SOURCES[:2])
    model = EmbeddingFieldModel(cfg)
    video = random_video(cfg, 1, 32, 4)
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_CUSTOM) as inference:
        model(video)
    with FlopCounterMode(display=False, custom_mapping=_CUSTOM) as autograd:
        model(video)
    assert count_flops(model, video) == autograd.get_total_flops() < inference.get_total_flops()
    assert all(p.grad is None for p in model.parameters())  # counting records no graph
