"""AlphaEarth Foundations-style embedding field model (pure PyTorch + einops).

Never imports aefcli, does no I/O and chooses no device.
"""

from model.batch import SourceFrames, TrainBatch, VideoBatch
from model.config import PRESETS, ModelConfig, SourceSpec, preset
from model.embedding_field import EmbeddingFieldModel
from model.losses import LossTerms, training_losses
from model.vmf import sample_vmf

__all__ = [
    "EmbeddingFieldModel", "LossTerms", "ModelConfig", "PRESETS", "SourceFrames", "SourceSpec",
    "TrainBatch", "VideoBatch", "preset", "sample_vmf", "training_losses",
]
