"""Writing the ingested cube (docs/formats.md section 1): the store skeleton, frame by frame
writes that resume, statistics, and whole cubes from memory. Reading is `aefcli.io.cube`.

The skeleton is written to a temporary sibling and renamed into place, so a path either
holds a whole skeleton or nothing; the root ``complete`` flag turns true last
(`CubeWriter.finish`).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aefcli.errors import DataError, InputError
from aefcli.io.cube import (CUBE_ATTR, DEFAULT_CHUNK, FORMAT, NORM_ATTR, PENDING, SKIPPED, WRITTEN,
                            geobox_attrs)
from aefcli.normalise import NormStats, RunningStats


@dataclass(frozen=True)
class SourceLayout:
    """What a source group will hold: frame times (datetime64[ns]), band names, item ids per frame."""

    times: np.ndarray
    bands: tuple[str, ...]
    item_ids: tuple[str, ...]

    def __post_init__(self) -> None:
        times = np.asarray(self.times).astype("datetime64[ns]")
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "bands", tuple(str(b) for b in self.bands))
        object.__setattr__(self, "item_ids", tuple(str(i) for i in self.item_ids))
        if len(times) != len(self.item_ids):
            raise InputError("a source layout needs one item id per frame")
        if not self.bands:
            raise InputError("a source layout needs at least one band")


@dataclass(frozen=True)
class SourceArrays:
    """A whole source in memory, for `write_cube` (tests, small cubes).

    raw (T, C, y, x) float32 physical units, NaN = nodata; valid (T, y, x) bool;
    times (T,) datetime64[ns]; norm None -> computed from the data.
    """

    raw: np.ndarray
    valid: np.ndarray
    times: np.ndarray
    bands: tuple[str, ...]
    item_ids: tuple[str, ...] | None = None
    norm: NormStats | None = None

    def layout(self) -> SourceLayout:
        ids = self.item_ids or tuple(f"frame-{i}" for i in range(len(self.times)))
        return SourceLayout(np.asarray(self.times), tuple(self.bands), tuple(ids))


def _source_dataset(layout: SourceLayout, geobox, chunk: int):
    import dask.array as da
    import rioxarray  # noqa: F401  (registers the .rio accessor)
    import xarray as xr

    ny, nx = geobox.shape.y, geobox.shape.x
    nt, nc = len(layout.times), len(layout.bands)
    cy, cx = min(chunk, ny), min(chunk, nx)
    coords = geobox.coordinates  # pixel centres, metres
    ds = xr.Dataset(
        {
            "raw": (("time", "band", "y", "x"), da.full((nt, nc, ny, nx), np.nan, dtype="float32", chunks=(1, nc, cy, cx))),
            "valid": (("time", "y", "x"), da.zeros((nt, ny, nx), dtype=bool, chunks=(1, cy, cx))),
            "frame_state": (("time",), np.zeros(nt, dtype="int8")),
        },
        coords={
            "time": layout.times,
            "band": np.array(layout.bands, dtype=object),
            "y": coords["y"].values,
            "x": coords["x"].values,
            "item_id": ("time", np.array(layout.item_ids, dtype=object)),
        },
    )
    ds = ds.rio.write_crs(geobox.crs.to_wkt()).rio.write_transform(geobox.affine)
    # An explicit encoding replaces rioxarray's: repeat grid_mapping or the CRS is lost.
    enc = {
        "raw": {"chunks": (1, nc, cy, cx), "grid_mapping": "spatial_ref"},
        "valid": {"chunks": (1, cy, cx), "grid_mapping": "spatial_ref"},
        "time": {"units": "nanoseconds since 1970-01-01", "dtype": "int64", "calendar": "proleptic_gregorian"},
    }
    return ds, enc


def create_cube(path: str | Path, layouts: dict[str, SourceLayout], geobox, attrs: dict[str, Any] | None = None,
                chunk: int = DEFAULT_CHUNK) -> "CubeWriter":
    """Write an empty cube skeleton (all frames pending, complete=false) and return its writer.

    The skeleton is built in a temporary sibling and renamed into place. InputError
    when `path` exists or its parent cannot be written.
    """
    import zarr

    path = Path(path)
    if path.exists():
        raise InputError(f"{path} already exists; remove it or choose another --out")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        cube_attrs = {"format": FORMAT, "complete": False, "sources": list(layouts), **geobox_attrs(geobox), **(attrs or {})}
        root.attrs[CUBE_ATTR] = json.loads(json.dumps(cube_attrs, default=str))
        for name, layout in layouts.items():
            ds, enc = _source_dataset(layout, geobox, chunk)
            ds.to_zarr(str(tmp), group=name, mode="w", zarr_format=3, compute=False, consolidated=False, encoding=enc)
        os.replace(tmp, path)
    except PermissionError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise InputError(f"cannot write {path}: {err.strerror}; choose a writable --out") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return CubeWriter(path)


class CubeWriter:
    """Frame-by-frame writes into an existing (possibly half-written) cube skeleton."""

    def __init__(self, path: str | Path) -> None:
        import zarr

        self.path = Path(path)
        # zarr writes chunks to *.partial then renames; a kill can leave one behind.
        for stray in self.path.rglob("*.partial"):
            stray.unlink(missing_ok=True)
        self.root = zarr.open_group(str(self.path), mode="r+")
        self.attrs: dict[str, Any] = dict(self.root.attrs.get(CUBE_ATTR) or {})
        if not self.attrs:
            raise DataError(f"{self.path} is not an aef cube (no {CUBE_ATTR} attribute)")

    def frame_state(self, source: str) -> np.ndarray:
        """(T,) int8: 0 pending, 1 written, 2 skipped."""
        return np.asarray(self.root[source]["frame_state"][:])

    def write_frame(self, source: str, t: int, raw, valid) -> None:
        """Store frame t: raw (C, y, x) float32 and valid (y, x) bool, numpy or dask (computed chunk by chunk).

        Dask chunks must match the store's chunks (all bands in one chunk): concurrent writes of
        parts of one zarr chunk would lose data.
        """
        group = self.root[source]
        if hasattr(raw, "dask") or hasattr(valid, "dask"):
            import dask.array as da

            da.store([raw, valid], [_Frame(group["raw"], t), _Frame(group["valid"], t)], lock=False)
        else:
            group["raw"][t] = np.asarray(raw, dtype=np.float32)
            group["valid"][t] = np.asarray(valid, dtype=bool)

    def mark(self, source: str, t: int, state: int) -> None:
        """Record frame t as WRITTEN or SKIPPED; done after its data, so a kill re-does it."""
        self.root[source]["frame_state"][t] = state

    def skip_frame(self, source: str, t: int) -> None:
        """A broken frame: all nodata, invalid, marked skipped."""
        group = self.root[source]
        group["raw"][t] = np.nan
        group["valid"][t] = False
        self.mark(source, t, SKIPPED)

    def set_norm(self, source: str, stats: NormStats) -> None:
        self.root[source].attrs[NORM_ATTR] = stats.to_dict()

    def update_attrs(self, **extra: Any) -> None:
        self.attrs.update(json.loads(json.dumps(extra, default=str)))
        self.root.attrs[CUBE_ATTR] = self.attrs

    def finish(self, **extra: Any) -> None:
        """Set `complete` true (last write), with any final attributes."""
        if any((self.frame_state(s) == PENDING).any() for s in self.attrs["sources"]):
            raise DataError(f"{self.path}: some frames are still pending; cannot mark the cube complete")
        self.update_attrs(**extra, complete=True)


class _Frame:
    """A dask.store target that writes into time index t of a zarr array."""

    def __init__(self, array, t: int) -> None:
        self.array, self.t = array, t

    def __setitem__(self, key, value) -> None:
        self.array[(self.t,) + tuple(key)] = value


def source_stats(path: str | Path, source: str, transform: str, block: int = DEFAULT_CHUNK) -> NormStats:
    """Per-band statistics of T(raw) over valid pixels of one source, read block by block (bounded memory)."""
    import zarr

    group = zarr.open_group(str(path), mode="r")[source]
    raw, valid = group["raw"], group["valid"]
    bands = tuple(str(b) for b in group["band"][:])
    state = np.asarray(group["frame_state"][:])
    acc = RunningStats(bands, transform)
    _, _, ny, nx = raw.shape
    for t in np.flatnonzero(state == WRITTEN):
        for y0 in range(0, ny, block):
            for x0 in range(0, nx, block):
                ys, xs = slice(y0, y0 + block), slice(x0, x0 + block)
                acc.add(raw[t, :, ys, xs], valid[t, ys, xs])
    return acc.result()


def write_cube(path: str | Path, sources: dict[str, SourceArrays], geobox, attrs: dict[str, Any] | None = None,
               chunk: int = DEFAULT_CHUNK) -> Path:
    """Write a complete cube from in-memory arrays (statistics computed where `norm` is None)."""
    from aefcli.bands import transform_for

    writer = create_cube(path, {name: arr.layout() for name, arr in sources.items()}, geobox, attrs, chunk)
    for name, arr in sources.items():
        for t in range(len(arr.times)):
            writer.write_frame(name, t, arr.raw[t], arr.valid[t])
            writer.mark(name, t, WRITTEN)
        writer.set_norm(name, arr.norm or source_stats(path, name, transform_for(name)))
    writer.finish()
    return Path(path)
