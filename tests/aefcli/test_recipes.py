"""Every named recipe gives a valid training config and model (a typo fails here, not after an hour)."""

import pytest

from aefcli.errors import InputError
from aefcli.recipes import recipe_names, train_config
from model import EmbeddingFieldModel, SourceSpec, preset


@pytest.mark.parametrize("name", recipe_names())
def test_recipe_builds_its_model(name, tmp_path):
    cfg = train_config(name, [tmp_path], tmp_path / "run", steps=7)
    assert cfg.steps == 7  # keyword overrides win
    model = EmbeddingFieldModel(preset(cfg.preset, (SourceSpec("s2", 10),), **cfg.model_overrides))
    wide = cfg.model_overrides.get("summary_width", 0) > 0
    assert (model.summary.value_time is not None) == wide


def test_unknown_recipe_is_one_line_error(tmp_path):
    with pytest.raises(InputError, match="unknown recipe"):
        train_config("gpu-huge", [tmp_path], tmp_path / "run")
