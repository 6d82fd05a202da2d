"""Parameter and FLOP counts (torch.utils.flop_counter: matmuls, convolutions, attention)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from model.batch import VideoBatch


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# the CPU attention kernel has no formula in torch's registry (CUDA kernels do)
_CUSTOM = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops}


def count_flops(model: nn.Module, video: VideoBatch) -> int:
    """Forward FLOPs (multiply-add = 2) of model(video); elementwise ops are not counted.

    Counted on the model's autograd formulas (grad mode on, parameters detached so nothing
    is recorded): the inference path computes the same function with rewritten kernels, one
    of which multiplies by structural zeros (the upsampling's phase form), and those
    products are no useful work.
    """
    tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    detached = {name: t.detach() for name, t in tensors.items()}
    with torch.enable_grad(), FlopCounterMode(display=False, custom_mapping=_CUSTOM) as counter:
        torch.func.functional_call(model, detached, (video,))
    return int(counter.get_total_flops())


def flops_per_pixel(model: nn.Module, video: VideoBatch) -> float:
    """Forward FLOPs per output pixel (B * L * L of them)."""
    b, _, _, h, w = next(iter(video.sources.values())).values.shape
    return count_flops(model, video) / (b * h * w)
