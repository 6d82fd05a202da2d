"""The embedding cube on disk (docs/formats.md section 4): a Zarr v3 store.

Variable `embedding` (y, x, band), chunked (tile, tile, nbands), CRS + transform
as a CF `spatial_ref` grid mapping. Stored either as float32 (NaN = nodata) or
with the AlphaEarth int8 quantisation (-128 = nodata), which is a square-root
law, not a linear CF scale, so readers must call `open_embeddings` (or
`dequantise`) rather than rely on CF decoding.

Writing is resumable: `create_store` writes a template (metadata only), each
`write_block` writes whole chunks, `chunk_done` lists the chunks on disk and
`mark_complete` flips `complete` last.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from aefcli.errors import DataError, InputError

ATTR = "aef:embedding"
VAR = "embedding"
FORMAT = 1
INT8_NODATA = -128
DTYPES = ("int8", "float32")
DIRECT_WRITES = True  # chunk files written directly (benchmarks/embed_speed.py turns it off to compare)


def quantise(v: np.ndarray) -> np.ndarray:
    """AEF int8 quantisation of embedding values (..., C) in [-1, 1] -> int8.

    q = round(127.5 * sign(v) * sqrt(|v|)) clipped to [-127, 127]; NaN -> -128.
    """
    v = np.asarray(v, dtype=np.float32)
    nan = np.isnan(v)
    v = np.where(nan, np.float32(0), v)
    q = np.rint(127.5 * np.sign(v) * np.sqrt(np.abs(v)))
    q = np.clip(q, -127, 127).astype(np.int8)
    q[nan] = INT8_NODATA
    return q


def dequantise(q: np.ndarray) -> np.ndarray:
    """Inverse of `quantise`: int8 (..., C) -> float32, v = (q / 127.5)^2 * sign(q); -128 -> NaN."""
    q = np.asarray(q)
    f = q.astype(np.float32)
    v = np.square(f / np.float32(127.5)) * np.sign(f)
    return np.where(q == INT8_NODATA, np.float32(np.nan), v).astype(np.float32)


def _signature(geobox, bands: Sequence, dtype: str, chunk: int, attrs: dict) -> dict:
    """What must match for an existing store to be resumed instead of refused."""
    a = geobox.affine
    return {
        "crs": str(geobox.crs),
        "transform": [a.a, a.b, a.c, a.d, a.e, a.f],
        "shape": [int(s) for s in geobox.shape.yx],
        "bands": [b if isinstance(b, str) else int(b) for b in bands],
        "dtype": dtype,
        "chunk": int(chunk),
        "attrs": json.loads(json.dumps(attrs, default=str)),
    }


def _read_root_attrs(path: Path) -> dict:
    meta = path / "zarr.json"
    if not meta.is_file():
        raise DataError(f"{path} is not a Zarr v3 store (no zarr.json); give an embedding cube written by `aef embed` or `aef features`.")
    return json.loads(meta.read_text()).get("attributes", {})


def store_attrs(path: str | Path) -> dict:
    """The store's `aef:embedding` attributes (DataError if it is not an embedding store)."""
    attrs = _read_root_attrs(Path(path)).get(ATTR)
    if attrs is None:
        raise DataError(f"{path} has no `{ATTR}` attributes; it is not an aef embedding cube.")
    return attrs


def create_store(path: str | Path, geobox, bands: Sequence, dtype: str, chunk: int, attrs: dict, overwrite: bool = False) -> None:
    """Write the store template: coordinates, CRS, attributes, no chunk data.

    geobox: odc.geo GeoBox of the cube (y, x). bands: 0..63 for embeddings or
    feature names. dtype: "int8" (AEF quantisation) or "float32". chunk: tile
    size in pixels. attrs: extra root attributes (period, model, command ...).
    An existing store with the same geometry and attrs is kept (resume); one
    made differently is refused unless `overwrite`.
    """
    import dask.array as da
    import rioxarray  # noqa: F401  (registers .rio)
    import xarray as xr
    from odc.geo.xr import xr_coords

    if dtype not in DTYPES:
        raise InputError(f"embedding dtype must be one of {', '.join(DTYPES)}, not {dtype!r}.")
    if chunk < 1:
        raise InputError(f"chunk must be a positive number of pixels, not {chunk}.")
    path = Path(path)
    sig = _signature(geobox, bands, dtype, chunk, attrs)
    if path.exists():
        if overwrite:
            shutil.rmtree(path)
        else:
            try:
                old = store_attrs(path).get("signature")
            except DataError:
                old = None
            if old == sig:
                return
            raise InputError(f"{path} exists and was made with other settings; choose another --out or pass --overwrite.")

    ny, nx = (int(s) for s in geobox.shape.yx)
    nb = len(bands)
    fill = INT8_NODATA if dtype == "int8" else np.nan
    data = da.full((ny, nx, nb), fill, dtype=dtype, chunks=(chunk, chunk, nb))
    coords = xr_coords(geobox)
    band = np.array(list(bands), dtype=object) if isinstance(bands[0], str) else np.asarray(bands, dtype=np.int32)
    ds = xr.Dataset({VAR: (("y", "x", "band"), data)}, coords={"y": coords["y"], "x": coords["x"], "band": band})
    for c in ("x", "y"):
        ds[c].attrs.pop("crs", None)
    ds = ds.rio.write_crs(geobox.crs.to_wkt()).rio.write_transform(geobox.affine)
    ds[VAR].attrs["aef:quantisation"] = "aef-int8-sqrt" if dtype == "int8" else "none"
    ds.attrs[ATTR] = {**sig["attrs"], "format": FORMAT, "complete": False, "dtype": dtype, "signature": sig}
    # An explicit encoding replaces rioxarray's: repeat grid_mapping or the CRS is lost.
    # zarr's own fill_value (not a CF _FillValue) makes unwritten chunks read as nodata.
    enc = {VAR: {"chunks": (chunk, chunk, nb), "grid_mapping": "spatial_ref", "fill_value": fill}}
    if dtype == "float32":  # zstd saves ~7 % on float32 embeddings for ~8 % of a tiny model's run time
        enc[VAR]["compressors"] = None
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    ds.to_zarr(tmp, mode="w", zarr_format=3, encoding=enc, consolidated=False, compute=False)
    tmp.rename(path)


def _open_array(path: Path, mode: str = "r"):
    import zarr

    try:
        array = zarr.open_array(path / VAR, mode=mode)
    except (FileNotFoundError, ValueError) as err:
        raise DataError(f"{path} has no `{VAR}` array ({err}); it is not an aef embedding cube.") from None
    # An all-nodata chunk (ocean, no observations) must still land on disk, or resume and
    # completeness, which count chunk files, never see it done. (zarr 3.1 ignores `config=` here.)
    return array.with_config({"write_empty_chunks": True})


def write_block(path: str | Path, block: np.ndarray, row0: int, col0: int) -> None:
    """Write a (h, w, C) float32 block (NaN = nodata) at pixel (row0, col0).

    The block must start on a chunk boundary and cover whole chunks (or reach the
    cube's edge), so each chunk is written once and atomically (a `.partial` file
    renamed into place). int8 stores quantise here. aef's own layout is written
    straight to the chunk files (`aefcli.io.chunk_decode.ChunkWriter`: the bytes zarr
    would write, without reopening the array per block); any other through zarr.
    """
    path = Path(path)
    writer = _writer(path)
    arr = _open_array(path, "r+") if writer is None else None
    ny, nx, nb = writer.shape if writer is not None else arr.shape
    ch = writer.chunk_shape[0] if writer is not None else arr.chunks[0]
    h, w = block.shape[:2]
    if block.ndim != 3 or block.shape[2] != nb:
        raise ValueError(f"block shape {block.shape} does not match the store's {nb} bands")
    if row0 % ch or col0 % ch:
        raise ValueError(f"block origin ({row0}, {col0}) is not on the {ch}-pixel chunk grid")
    r1, c1 = row0 + h, col0 + w
    if r1 > ny or c1 > nx or (r1 % ch and r1 != ny) or (c1 % ch and c1 != nx):
        raise ValueError(f"block ({row0}:{r1}, {col0}:{c1}) does not end on a chunk boundary or the cube edge ({ny}, {nx})")
    dtype = writer.dtype if writer is not None else arr.dtype
    values = quantise(block) if dtype == np.int8 else np.asarray(block, dtype=np.float32)
    if writer is None:
        arr[row0:r1, col0:c1, :] = values
        return
    for r in range(row0, r1, ch):
        for c in range(col0, c1, ch):
            writer.write((r // ch, c // ch, 0), values[r - row0 : r - row0 + ch, c - col0 : c - col0 + ch])


_WRITERS: dict[Path, tuple] = {}  # store -> (its array's metadata document, ChunkWriter or None)
_WRITERS_LOCK = threading.Lock()


def _writer(path: Path):
    """The store's ChunkWriter (None: not the plain layout, write through zarr), made once per store
    and array metadata: a store re-created in place (--overwrite) with other settings gets a new one."""
    from aefcli.io.chunk_decode import chunk_writer

    if not DIRECT_WRITES:
        return None
    try:
        meta = (path / VAR / "zarr.json").read_bytes()  # a few hundred bytes: cheaper than any doubt
    except FileNotFoundError:
        raise DataError(f"{path} has no `{VAR}` array; it is not an aef embedding cube.") from None
    with _WRITERS_LOCK:
        held = _WRITERS.get(path)
    if held is not None and held[0] == meta:
        return held[1]
    writer = chunk_writer(_open_array(path, "r+"))
    with _WRITERS_LOCK:
        _WRITERS[path] = (meta, writer)
    return writer


def chunk_done(path: str | Path, clean: Iterable[tuple[int, int]] | None = None) -> set[tuple[int, int]]:
    """(chunk row, chunk col) indices already on disk, after deleting stray `*.partial` files.

    clean: only the partial files of these chunks are deleted (a share of a run must not
    delete the in-flight files of shares running beside it); None deletes all of them.
    """
    root = Path(path) / VAR
    base = root / "c"
    keep = None if clean is None else set(clean)
    for stray in root.rglob("*.partial"):
        parts = stray.relative_to(base).parts if stray.is_relative_to(base) else ()
        ij = tuple(int(p.split(".")[0]) for p in parts[:2]) if len(parts) >= 2 else None
        if keep is None or ij in keep:
            stray.unlink(missing_ok=True)
    done = set()
    if base.is_dir():
        for f in base.glob("*/*/*"):
            if f.is_file() and all(p.isdigit() for p in f.relative_to(base).parts):
                i, j, _ = (int(p) for p in f.relative_to(base).parts)
                done.add((i, j))
    return done


def chunk_written(path: str | Path, i: int, j: int) -> bool:
    """Chunk (i, j) is on disk (zarr renames a whole chunk file into place, so it is complete)."""
    return (Path(path) / VAR / "c" / str(i) / str(j) / "0").is_file()


def mark_complete(path: str | Path, extra_attrs: dict | None = None) -> None:
    """Set `complete: true` (and any extra attributes) last, atomically."""
    path = Path(path)
    meta = path / "zarr.json"
    doc = json.loads(meta.read_text())
    attrs = doc.setdefault("attributes", {}).setdefault(ATTR, {})
    attrs.update(json.loads(json.dumps(extra_attrs or {}, default=str)))
    attrs["complete"] = True
    tmp = meta.with_name("zarr.json.tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    tmp.replace(meta)


def open_embeddings(path: str | Path, allow_incomplete: bool = False):
    """The cube as a lazy (y, x, band) float32 xarray.DataArray, dequantised, `.rio.crs` set.

    Raises DataError when the store is missing, not an embedding cube, or not
    complete (unless `allow_incomplete`).
    """
    import dask.array as da
    import rioxarray  # noqa: F401  (registers .rio)
    import xarray as xr

    path = Path(path)
    if not path.exists():
        raise DataError(f"embedding cube {path} does not exist.")
    attrs = store_attrs(path)
    if not attrs.get("complete") and not allow_incomplete:
        raise DataError(f"embedding cube {path} is incomplete; re-run the command that writes it to finish it.")
    ds = xr.open_zarr(path, decode_coords="all", consolidated=False, mask_and_scale=False)
    arr = ds[VAR]
    if arr.dtype == np.int8:
        data = da.map_blocks(dequantise, arr.data, dtype=np.float32)
    else:
        data = arr.data.astype(np.float32)
    out = arr.copy(data=data)
    out.attrs = {k: v for k, v in arr.attrs.items() if k != "aef:quantisation"}
    out.attrs[ATTR] = attrs
    out.encoding = {}
    return out.rio.write_crs(ds.rio.crs)
