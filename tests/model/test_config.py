import json

import pytest

from model import PRESETS, ModelConfig, SourceSpec, preset
from model.synthetic import EXAMPLE_SOURCES as SOURCES


@pytest.mark.parametrize("name", PRESETS)
def test_preset_round_trips_through_json(name):
    cfg = preset(name, SOURCES, kappa=100.0)
    back = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg
    assert back.sources[1] == SourceSpec("s1", 2, loss="l2")


def test_base_preset_has_the_papers_widths():
    cfg = preset("base", SOURCES)
    assert (cfg.depth, cfg.precision_width, cfg.time_width, cfg.space_width) == (15, 128, 512, 1024)
    assert (cfg.a, cfg.b, cfg.c, cfg.d) == (1.0, 0.05, 0.02, 0.001)


@pytest.mark.parametrize("bad", [
    dict(time_width=30, time_heads=4),  # not divisible by heads
    dict(summary_width=60, summary_heads=8),
    dict(summary_width=-1),
    dict(kappa=0.0),
    dict(b=-1.0),
    dict(position="sinusoidal"),
])
def test_invalid_config_fails_at_construction(bad):
    with pytest.raises(ValueError):
        preset("tiny", SOURCES, **bad)


def test_unknown_keys_and_bad_sources_are_rejected():
    d = preset("tiny", SOURCES).to_dict()
    d["depht"] = 3
    with pytest.raises(ValueError, match="depht"):
        ModelConfig.from_dict(d)
    with pytest.raises(ValueError):
        SourceSpec("s2", 0)
    with pytest.raises(ValueError):
        SourceSpec("s2", 3, loss="huber")
    with pytest.raises(ValueError):
        preset("huge", SOURCES)
    with pytest.raises(ValueError):
        ModelConfig(sources=())
    with pytest.raises(ValueError, match="duplicate"):
        ModelConfig(sources=(SourceSpec("s2", 10), SourceSpec("s2", 4)))
