"""`aef preprocess`: compute (or copy in) the standardisation statistics of a cube.

The cube keeps its raw values; this stage only writes each source group's
``aef:norm`` attribute (transform + per-band mean/std of T(raw) over valid
pixels, see aefcli/normalise.py). With ``stats`` it applies the statistics of
another cube or of a model checkpoint instead, so a new area is normalised like
the training data.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from aefcli.errors import DataError, InputError
from aefcli.normalise import NormStats


@dataclass(frozen=True)
class PreprocessConfig:
    """cube: ingested store; stats: a cube or checkpoint to take statistics from (None = compute);
    out: write a normalised copy there instead of updating `cube` in place."""

    cube: Path
    stats: Path | None = None
    out: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "cube", Path(self.cube))
        if self.stats is not None:
            object.__setattr__(self, "stats", Path(self.stats))
            if not self.stats.exists():
                raise InputError(f"--stats {self.stats} does not exist; give a cube or a checkpoint")
        if self.out is not None:
            object.__setattr__(self, "out", Path(self.out))
            if self.out.exists():
                raise InputError(f"{self.out} already exists; remove it or choose another --out")
            parent = self.out.absolute().parent
            if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
                raise InputError(f"cannot write {self.out}: {parent} is missing or not writable")


def load_stats(path: Path) -> dict[str, NormStats]:
    """Statistics per source from a cube (aef:norm attributes) or a checkpoint's metadata."""
    from aefcli.io.cube import open_cube, read_cube_attrs

    if read_cube_attrs(path) is not None:
        cube = open_cube(path)
        found = {s: n for s, n in cube.norm.items() if n is not None}
    elif path.is_dir() and (path / "zarr.json").is_file():
        raise InputError(f"--stats {path} is a Zarr store but not an aef cube; give a cube or a checkpoint")
    else:
        from aefcli.checkpoint import load_checkpoint

        found = dict(load_checkpoint(path).norm)
    if not found:
        raise DataError(f"{path} holds no normalisation statistics; run `aef preprocess {path}` first")
    return found


def compute_norms(path: Path, sources: list[str]) -> dict[str, NormStats]:
    """Per-source statistics of the cube at `path`, streamed block by block."""
    from aefcli.bands import transform_for
    from aefcli.io.cube_writer import source_stats

    return {s: source_stats(path, s, transform_for(s)) for s in sources}


def run(cfg: PreprocessConfig, require_complete: bool = True) -> dict:
    """Write `aef:norm` for every source of the cube (in place or into a copy at cfg.out).

    Returns {"cube": path, "sources": {source: NormStats.to_dict()}}.
    """
    from aefcli.io.cube import open_cube
    from aefcli.io.cube_writer import CubeWriter

    cube = open_cube(cfg.cube, require_complete=require_complete)
    norms = _given_norms(cfg.stats, cube) if cfg.stats is not None else compute_norms(cfg.cube, list(cube.sources))
    if cfg.out is None:
        writer = CubeWriter(cfg.cube)
        for source, stats in norms.items():
            writer.set_norm(source, stats)
        return {"cube": str(cfg.cube), "sources": {s: n.to_dict() for s, n in norms.items()}}
    # A copy built beside --out and renamed into place: a failure never leaves a half-written store there.
    tmp = cfg.out.with_name(f".{cfg.out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(cfg.cube, tmp)
        writer = CubeWriter(tmp)
        for source, stats in norms.items():
            writer.set_norm(source, stats)
        os.replace(tmp, cfg.out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"cube": str(cfg.out), "sources": {s: n.to_dict() for s, n in norms.items()}}


def _given_norms(path: Path, cube) -> dict[str, NormStats]:
    """The statistics at `path` for every source and band of `cube`; one-line DataError otherwise."""
    from aefcli.bands import transform_for

    given = load_stats(path)
    missing = [s for s in cube.sources if s not in given]
    if missing:
        raise DataError(f"{path} has no statistics for source(s) {missing} of {cube.path}; it covers {sorted(given)}")
    norms = {}
    for s in cube.sources:
        lacking = [b for b in cube.bands[s] if b not in given[s].bands]
        if lacking:
            raise DataError(f"{path} has no {s} statistics for band(s) {lacking} of {cube.path}; "
                            f"it covers {list(given[s].bands)}")
        if given[s].transform != transform_for(s):
            raise DataError(f"{path} holds {s} statistics of the {given[s].transform!r} transform; "
                            f"aef uses {transform_for(s)!r} for {s}")
        norms[s] = given[s].select(cube.bands[s])
    return norms
