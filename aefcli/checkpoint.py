"""Model checkpoints: one safetensors file that `aef embed` needs nothing beside.

Layout of `checkpoint.safetensors`:
- tensors: the model's state dict (no pickled code anywhere);
- header metadata `aef:checkpoint`: JSON with the model config, the band/source
  table, the normalisation statistics of the training cubes, the aef version,
  the training arguments, the step and a sha256 of the weights (`model_hash`).

Resume state (optimiser, scheduler, RNG) is training-only and large, so it sits
beside the weights in `<name>.state-<step>.pt`, read back with
`torch.load(weights_only=True)`; the checkpoint names that file and its sha256,
so a run killed between the two writes never pairs weights with a foreign state.
Both files are written to a temporary name and renamed (atomic on POSIX).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from aefcli import __version__
from aefcli.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from aefcli.normalise import NormStats

CHECKPOINT_NAME = "checkpoint.safetensors"
META_KEY = "aef:checkpoint"
FORMAT = 1


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint holds, besides the weights (loaded on `build_model`)."""

    path: Path
    model_config: dict[str, Any]
    norm: dict[str, "NormStats"]
    bands: dict[str, tuple[str, ...]]
    train_args: dict[str, Any]
    step: int
    model_hash: str
    aef_version: str
    train_state_file: str | None = None
    train_state_sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def sources(self) -> tuple[str, ...]:
        """Source names the model was trained on, e.g. ("s1", "s2")."""
        return tuple(self.bands)

    def model_cfg(self):
        """The `model.ModelConfig` of the checkpoint."""
        from model.config import ModelConfig

        return ModelConfig.from_dict(self.model_config)

    def state_dict(self) -> dict[str, "torch.Tensor"]:
        """The weights as a CPU state dict (safetensors: no code is unpickled)."""
        from safetensors.torch import load_file

        try:
            return load_file(str(self.path))
        except Exception as err:  # noqa: BLE001 - any decode failure means a damaged file
            raise _corrupt(self.path, err) from None

    def build_model(self, device: "torch.device | str" = "cpu"):
        """The `EmbeddingFieldModel` with the checkpoint's weights, in eval mode, on `device`."""
        from model import EmbeddingFieldModel

        model = EmbeddingFieldModel(self.model_cfg())
        state = self.state_dict()
        if _weights_hash(state) != self.model_hash:
            raise DataError(f"checkpoint {self.path} is corrupt (weights do not match their hash); re-train or re-copy it")
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise DataError(
                f"checkpoint {self.path} does not fit this aef version's model "
                f"(missing {len(missing)}, unexpected {len(unexpected)} tensors, e.g. {(missing + unexpected)[:2]}); "
                f"use the aef version that wrote it ({self.aef_version})"
            )
        return model.to(device).eval()

    def load_train_state(self) -> dict[str, Any] | None:
        """The optimiser / scheduler / RNG state saved with this step, or None if there is none."""
        import torch

        if not self.train_state_file:
            return None
        path = self.path.parent / self.train_state_file
        if not path.exists():
            raise DataError(f"training state {path} is missing; delete {self.path.parent} to start over")
        if _file_sha256(path) != self.train_state_sha256:
            raise DataError(f"training state {path} is corrupt (hash mismatch); delete {self.path.parent} to start over")
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001
            raise _corrupt(path, err) from None


def checkpoint_path(path: str | os.PathLike) -> Path:
    """A run directory (existing, or a new path without suffix) or a checkpoint file -> the file."""
    p = Path(path)
    return p / CHECKPOINT_NAME if p.is_dir() or (not p.exists() and not p.suffix) else p


def save_checkpoint(
    path: str | os.PathLike,
    model: "torch.nn.Module",
    model_cfg: Any,
    norm: Mapping[str, "NormStats"],
    bands: Mapping[str, tuple[str, ...]],
    train_args: Mapping[str, Any],
    step: int,
    train_state: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write the model's weights + metadata atomically to `path` (a file or a run directory).

    model: the bare module (unwrap DDP / torch.compile first or pass the wrapper: both work).
    model_cfg: a `model.ModelConfig` (anything with `to_dict()`) or its dict.
    norm: source -> NormStats of the training cubes; bands: source -> band names.
    train_state: optional resume state (tensors, numbers, lists, dicts only), written to
        `<stem>.state-<step>.pt` before the weights; older state files are removed after.
    Returns the checkpoint file's path.
    """
    import torch
    from safetensors.torch import save_file

    path = checkpoint_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = _unwrap(model)
    state = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    meta: dict[str, Any] = {
        "format": FORMAT,
        "aef_version": __version__,
        "model_config": model_cfg if isinstance(model_cfg, dict) else model_cfg.to_dict(),
        "bands": {k: list(v) for k, v in bands.items()},
        "norm": {k: (v if isinstance(v, dict) else v.to_dict()) for k, v in norm.items()},
        "train_args": dict(train_args),
        "step": int(step),
        "model_hash": _weights_hash(state),
        "extra": dict(extra or {}),
    }
    if train_state is not None:
        state_name = f"{path.stem}.state-{int(step):09d}.pt"
        with _atomic(path.parent / state_name) as tmp:
            torch.save(dict(train_state), tmp)
        meta["train_state_file"] = state_name
        meta["train_state_sha256"] = _file_sha256(path.parent / state_name)
    with _atomic(path) as tmp:
        save_file(_untie(state), tmp, metadata={META_KEY: json.dumps(meta, default=_json_default)})
    keep = meta.get("train_state_file")
    for old in path.parent.glob(f"{path.stem}.state-*.pt"):
        if old.name != keep:
            old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint's metadata (a file or a run directory); weights load on `build_model()`.

    Raises DataError (one line) when the file is missing, truncated, corrupt or not an aef checkpoint.
    """
    from safetensors import safe_open

    from aefcli.normalise import NormStats

    path = checkpoint_path(path)
    if not path.exists():
        raise DataError(f"no checkpoint at {path}; train one with `aef train --out DIR`")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            names = list(f.keys())
        meta = json.loads(header[META_KEY])
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')!r}")
        norm = {k: NormStats.from_dict(v) for k, v in meta["norm"].items()}
        ckpt = Checkpoint(
            path=path,
            model_config=meta["model_config"],
            norm=norm,
            bands={k: tuple(v) for k, v in meta["bands"].items()},
            train_args=meta.get("train_args", {}),
            step=int(meta["step"]),
            model_hash=str(meta["model_hash"]),
            aef_version=str(meta.get("aef_version", "?")),
            train_state_file=meta.get("train_state_file"),
            train_state_sha256=meta.get("train_state_sha256"),
            extra=meta.get("extra", {}),
        )
    except KeyError as err:
        raise DataError(f"{path} is not an aef checkpoint (no {err} in its metadata)") from None
    except Exception as err:  # noqa: BLE001 - safetensors/json raise many types on damaged files
        raise _corrupt(path, err) from None
    if not names:
        raise DataError(f"{path} holds no weights; re-train or re-copy it")
    return ckpt


def _corrupt(path: Path, err: Exception) -> DataError:
    reason = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
    return DataError(f"checkpoint {path} is truncated or corrupt ({reason}); re-copy it, or delete it to train from scratch")


def _unwrap(model: "torch.nn.Module") -> "torch.nn.Module":
    while True:
        for attr in ("module", "_orig_mod"):  # DDP, torch.compile wrappers
            inner = getattr(model, attr, None)
            if inner is not None:
                model = inner
                break
        else:
            return model


def _untie(state: dict[str, "torch.Tensor"]) -> dict[str, "torch.Tensor"]:
    """safetensors refuses tensors sharing memory: give each its own storage."""
    seen: set[int] = set()
    out = {}
    for k, v in state.items():
        ptr = v.untyped_storage().data_ptr() if v.numel() else -id(v)
        out[k] = v.clone() if ptr in seen else v
        seen.add(ptr)
    return out


def _weights_hash(state: Mapping[str, "torch.Tensor"]) -> str:
    """sha256 over names, dtypes, shapes and bytes of the weights, in name order."""
    import torch

    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (Path, tuple, set)):
        return str(obj) if isinstance(obj, Path) else list(obj)
    return str(obj)


class _atomic:
    """Context manager yielding a temp path in the target's directory, renamed onto it on success."""

    def __init__(self, target: Path):
        self.target = target

    def __enter__(self) -> str:
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.target.name}.", suffix=".tmp", dir=self.target.parent)
        os.close(fd)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            with open(self.tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(self.tmp, self.target)
        else:
            Path(self.tmp).unlink(missing_ok=True)
