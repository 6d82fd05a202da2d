"""Shared fixtures for the model tests: tiny configs, seeded generators."""

import pytest
import torch

from model import EmbeddingFieldModel, preset
from model.synthetic import EXAMPLE_SOURCES as SOURCES


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    torch.set_num_threads(2)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1)


@pytest.fixture
def tiny_cfg():
    return preset("tiny", SOURCES)


@pytest.fixture
def tiny_model(tiny_cfg):
    return EmbeddingFieldModel(tiny_cfg).eval()
