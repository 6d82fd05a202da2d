"""Opt-in torch.compile (inductor) of the inference forward, with an eager fallback.

Compilation is slow (minutes on 2 CPU cores) and specialises on input shapes,
so it pays only for long runs with a fixed window size, frame count and batch
size; a new shape recompiles. Where inductor cannot run (no C++ compiler, an
unsupported platform) the first call warns once and the model runs eagerly:
the outputs are the same either way, only the speed differs.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Callable

import torch
from torch import nn

from model.batch import VideoBatch


class InferenceForward:
    """video -> mu (B, L, L, embed_dim), the model's forward under inference_mode,
    through torch.compile when it works, else eagerly (see `compile_for_inference`)."""

    def __init__(self, model: nn.Module, compiled: Callable[[VideoBatch], torch.Tensor] | None,
                 settings: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext) -> None:
        self.model, self.compiled, self.settings = model, compiled, settings
        self.fallback_reason: str | None = None if compiled is not None else "torch.compile unavailable"

    @property
    def is_compiled(self) -> bool:
        """True while the compiled forward is in use (False after a fallback)."""
        return self.compiled is not None

    def __call__(self, video: VideoBatch) -> torch.Tensor:
        with torch.inference_mode():
            if self.compiled is not None:
                try:
                    with self.settings():  # compilation happens lazily, inside this call
                        return self.compiled(video)
                except Exception as exc:  # inductor fails lazily, at the first call of a shape
                    self._fall_back(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            return self.model(video)

    def _fall_back(self, reason: str) -> None:
        self.compiled, self.fallback_reason = None, reason
        warnings.warn(f"torch.compile failed ({reason}); running the model eagerly (same outputs, slower)",
                      RuntimeWarning, stacklevel=3)


def compile_for_inference(model: nn.Module, freeze: bool = True) -> InferenceForward:
    """An inference forward of `model` (put in eval mode) compiled by inductor.

    freeze: let inductor treat the weights as constants (folds them, prepacks the
    oneDNN convolution and matmul weights, fuses pointwise ops into them); the
    weights must not change afterwards. Shapes are compiled statically, one
    compilation per distinct (batch, frames, L).
    """
    model.eval()
    try:
        import torch._inductor.config as inductor_config

        compiled = torch.compile(model, dynamic=False)
    except Exception as exc:  # e.g. torch.compile not supported on this Python / platform
        forward = InferenceForward(model, None)
        forward._fall_back(f"{type(exc).__name__}: {exc}")
        return forward
    # freezing is a process-wide inductor switch: set only while this forward compiles
    return InferenceForward(model, compiled, lambda: inductor_config.patch(freezing=freeze))
