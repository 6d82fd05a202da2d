"""compile_for_inference: the compiled forward computes the eager forward; failures fall back to eager."""

import pytest
import torch

from model.compiled import InferenceForward, compile_for_inference
from model.synthetic import random_video


def test_a_failing_compiled_forward_falls_back_to_eager_with_one_warning(tiny_model, tiny_cfg, gen):
    video = random_video(tiny_cfg, 1, 32, 2, gen)
    calls = []

    def broken(v):  # what inductor does when it cannot build: raise at the first call
        calls.append(v)
        raise RuntimeError("C++ compiler not found\nlong log")

    fwd = InferenceForward(tiny_model, broken)
    with pytest.warns(RuntimeWarning, match=r"C\+\+ compiler not found"):
        out = fwd(video)
    assert not fwd.is_compiled and "RuntimeError" in fwd.fallback_reason
    with torch.inference_mode():
        torch.testing.assert_close(out, tiny_model(video))
    fwd(video)  # no second attempt at compiling
    assert len(calls) == 1


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compiled_forward_agrees_with_eager(tiny_model, tiny_cfg, gen):
    video = random_video(tiny_cfg, 1, 32, {"s2": 3, "s1": 2}, gen)
    fwd = compile_for_inference(tiny_model)
    out = fwd(video)
    if not fwd.is_compiled:
        pytest.skip(f"inductor unavailable here: {fwd.fallback_reason}")
    with torch.inference_mode():
        ref = tiny_model(video)
    assert (out * ref).sum(-1).min() > 0.9999
    import torch._inductor.config as inductor_config
    assert not inductor_config.freezing  # the switch was set for this forward only
