"""`aef embed`: the model over a bbox (or one global tile) and period -> a Zarr embedding cube.

Stage flow: `plan(cfg)` checks every input and fixes the output grid, the window
lattice and the store's identity; `run(cfg)` creates (or resumes) the store,
runs one dask task per missing output chunk of this run's share
(`aefcli.embed_task.embed_chunk`), marks the store complete when every chunk
exists and writes the optional preview. A re-run with the same arguments only
computes the chunks that are missing.
"""

from __future__ import annotations

import math
import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from aefcli import __version__
from aefcli.embed_estimate import calibrate, dummy_window, estimate_tiles, seconds_per_window  # noqa: F401 (public here too)
from aefcli.errors import DataError, InputError
from aefcli.tiling import Chunk, Layout, chunk_grid, share

DTYPE_BYTES = {"float32": 4, "int8": 1}


@dataclass(frozen=True)
class EmbedConfig:
    """What `aef embed` does; validated at construction.

    cube or (stac + collections) give the input; bbox (WGS84 W,S,E,N) or tile_id
    the output area; period the valid period "start/end" (end exclusive).
    window: model window L (pixels); overlap: pixels shared by neighbouring windows;
    chunk: output chunk = task size (pixels); shares: (I, N) of `--tiles I/N`.
    scheduler: "threads", "processes" or a dask.distributed address "tcp://HOST:PORT".
    workers: concurrent tasks for threads/processes (0: automatic).
    share_edges (tile_id only): save the sums of the windows crossing the tile's edges for the
    neighbour tiles (OUT/.aef-edges), so each is computed once; edge_tiles: the neighbours that
    may use them (None: any neighbour inside the cube).
    """

    checkpoint: Path
    out: Path
    period: str
    cube: Path | None = None
    stac: str | None = None
    collections: tuple[str, ...] = ()
    bbox: str | None = None
    tile_id: str | None = None
    dtype: str = "float32"
    window: int = 128
    overlap: int = 32
    chunk: int = 512
    batch_size: int = 8
    scheduler: str = "threads"
    workers: int = 0
    shares: tuple[int, int] = (0, 1)
    preview: Path | None = None
    dry_run: bool = False
    overwrite: bool = False
    device: str = "auto"
    command: str = ""
    share_edges: bool = True
    edge_tiles: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if (self.cube is None) == (self.stac is None):
            raise InputError("give exactly one input: --cube CUBE.zarr or --stac URL --collections ...")
        if self.stac is not None and not self.collections:
            raise InputError("--stac needs --collections (e.g. --collections sentinel-2-l2a)")
        if (self.bbox is None) == (self.tile_id is None):
            raise InputError("give exactly one area: --bbox W,S,E,N or --tile ID")
        if self.dtype not in DTYPE_BYTES:
            raise InputError(f"--dtype must be float32 or int8, not {self.dtype!r}")
        if self.window % 16:
            raise InputError(f"--tile {self.window}: the model window must be a multiple of 16 pixels")
        if self.batch_size < 1:
            raise InputError(f"--batch-size must be >= 1, not {self.batch_size}")
        if not (self.scheduler in ("threads", "processes") or self.scheduler.startswith("tcp://")):
            raise InputError(f"--scheduler must be threads, processes or tcp://HOST:PORT, not {self.scheduler!r}")
        Layout(self.window, self.overlap, self.chunk)  # raises InputError on a bad layout

    @property
    def store(self) -> Path:
        """The output store: `out` itself, or `out/ID.zarr` for one global tile."""
        return self.out / f"{self.tile_id}.zarr" if self.tile_id else self.out


@dataclass(frozen=True)
class Plan:
    """The checked run: output grid, lattice, chunks of this share, store identity."""

    cfg: EmbedConfig
    geobox: Any  # odc.geo GeoBox of the output
    job: Any  # aefcli.embed_task.EmbedJob
    chunks: list[Chunk]  # all chunks of the store
    mine: list[Chunk]  # this run's share
    attrs: dict[str, Any]  # store identity attributes

    @property
    def km2(self) -> float:
        a = self.geobox.affine
        return float(self.geobox.shape.y * self.geobox.shape.x * abs(a.a * a.e)) / 1e6

    @property
    def windows(self) -> int:
        """Model windows this share runs: each once, however many of its chunks it reaches."""
        return len({w for c in self.mine for w in self.job.layout.windows(c.rows, c.cols)})


def _check_bands(ckpt, cube) -> dict[str, tuple[str, ...]]:
    """source -> checkpoint bands, for the sources both have; InputError when the tables disagree."""
    shared = [s for s in ckpt.sources if s in cube.sources]
    if not shared:
        raise InputError(
            f"checkpoint {ckpt.path} was trained on sources {list(ckpt.sources)} but cube {cube.path} has "
            f"{list(cube.sources)}; ingest those sources or use a matching checkpoint")
    for s in shared:
        missing = [b for b in ckpt.bands[s] if b not in cube.bands[s]]
        if missing or len(cube.bands[s]) != len(ckpt.bands[s]):
            raise InputError(
                f"checkpoint {ckpt.path} expects {s} bands {list(ckpt.bands[s])} but cube {cube.path} has "
                f"{list(cube.bands[s])}; use a checkpoint of this band table or re-ingest")
    return {s: tuple(ckpt.bands[s]) for s in shared}


def _output_grid(cfg: EmbedConfig, cube) -> tuple[Any, tuple[int, int]]:
    """(output GeoBox, cube pixel (row, col) of its pixel (0, 0))."""
    from odc.geo import geom

    from aefcli.parse import parse_bbox

    cg = cube.geobox
    if cfg.tile_id:
        from aefcli.tiles import tile_from_id

        gbox = tile_from_id(cfg.tile_id).geobox
        if gbox.crs != cg.crs or not np.allclose([gbox.affine.a, gbox.affine.e], [cg.affine.a, cg.affine.e]):
            raise InputError(f"tile {cfg.tile_id} is in {gbox.crs} at {gbox.affine.a} m but cube {cube.path} is in "
                             f"{cg.crs} at {cg.affine.a} m; ingest the tile with `aef ingest --tile {cfg.tile_id}`")
        col, row = ~cg.affine @ (gbox.affine.c, gbox.affine.f)
        if abs(row - round(row)) > 1e-6 or abs(col - round(col)) > 1e-6:
            raise InputError(f"cube {cube.path} is not on the 10 m grid of tile {cfg.tile_id}; re-ingest it for the tile")
        row, col = int(round(row)), int(round(col))
        ny, nx = cg.shape.yx
        if row >= ny or col >= nx or row + gbox.shape.y <= 0 or col + gbox.shape.x <= 0:
            raise InputError(f"tile {cfg.tile_id} does not overlap cube {cube.path}")
        return gbox, (row, col)
    bbox = parse_bbox(cfg.bbox)
    poly = geom.box(*bbox.as_list(), "EPSG:4326").to_crs(cg.crs, resolution=math.inf)
    left, bottom, right, top = poly.boundingbox
    inv = ~cg.affine
    c0, r0 = inv @ (left, top)
    c1, r1 = inv @ (right, bottom)
    r0, r1 = sorted((r0, r1))
    c0, c1 = sorted((c0, c1))
    ny, nx = cg.shape.yx
    r0, c0 = max(0, math.floor(r0 + 1e-9)), max(0, math.floor(c0 + 1e-9))
    r1, c1 = min(ny, math.ceil(r1 - 1e-9)), min(nx, math.ceil(c1 - 1e-9))
    if r1 <= r0 or c1 <= c0:
        raise InputError(f"bbox {cfg.bbox} lies outside cube {cube.path} (which covers {cube.attrs.get('bbox')}); "
                         "give a bbox inside the cube or ingest this area")
    return cg[r0:r1, c0:c1], (r0, c0)


def trained_period_days(ckpt) -> float | None:
    """The longest valid period (days) the checkpoint was trained to summarise, or None when unrecorded.

    `aef train` records `support_days` = (shortest, longest) in the checkpoint's training arguments.
    """
    support = ckpt.train_args.get("support_days")
    if support is None:
        return None
    values = [float(v) for v in (support if isinstance(support, (list, tuple)) else [support])]
    return max(values) if values else None


def _check_period(cfg: EmbedConfig, ckpt, cube, bands) -> tuple[Any, tuple[float, float]]:
    """The parsed period; DataError when no frame of a usable source falls in it."""
    from aefcli.parse import parse_period
    from aefcli.video import to_days

    period = parse_period(cfg.period)
    frames = {s: len(cube.frame_indices(s, (period.start, period.end))) for s in bands}
    if not any(frames.values()):
        spans = {s: f"{str(cube.times[s].min())[:10]}..{str(cube.times[s].max())[:10]}" for s in bands if len(cube.times[s])}
        raise DataError(f"no {'/'.join(bands)} observation of cube {cube.path} falls in period {period}; "
                        f"the cube holds {spans}: choose a period inside it")
    days = (float(to_days(period.start)), float(to_days(period.end)))
    trained = trained_period_days(ckpt)
    if trained:  # the model learnt summaries over periods up to this length: refuse far longer ones
        if days[1] - days[0] > 2 * trained:
            raise InputError(f"period {period} spans {days[1] - days[0]:.0f} days but checkpoint {ckpt.path} was trained "
                             f"on periods of at most {trained:.0f} days; embed at most {2 * trained:.0f} days at once")
    return period, days


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def plan(cfg: EmbedConfig, cube_path: Path | None = None) -> Plan:
    """Check the inputs and lay out the run (no model weights are loaded, nothing is written)."""
    from aefcli.checkpoint import load_checkpoint
    from aefcli.embed_task import EmbedJob, inference_hash
    from aefcli.io.cube import open_cube

    ckpt = load_checkpoint(cfg.checkpoint)
    cube = open_cube(cube_path or cfg.cube)
    bands = _check_bands(ckpt, cube)
    gbox, offset = _output_grid(cfg, cube)
    period, days = _check_period(cfg, ckpt, cube, bands)
    a = gbox.affine
    origin = (int(round(a.f / a.e)), int(round(a.c / a.a)))  # absolute pixel index: anchors the lattice
    layout = Layout(cfg.window, cfg.overlap, cfg.chunk, origin=origin)
    n_workers = workers(cfg)
    # one torch thread pool per task, cores shared among concurrent tasks (no oversubscription);
    # dask.distributed workers keep their own setting (their nanny sets OMP_NUM_THREADS)
    threads = 0 if cfg.scheduler.startswith("tcp://") else max(1, (os.cpu_count() or 1) // n_workers)
    job = EmbedJob(
        checkpoint=str(Path(ckpt.path).resolve()), model_hash=ckpt.model_hash, cube=str(Path(cube.path).resolve()),
        out=str(cfg.store.resolve()), layout=layout, offset=offset, period=(str(period.start), str(period.end)),
        period_days=days, bands=bands, batch_size=cfg.batch_size, torch_threads=threads, device=_device(cfg.device),
        shape=tuple(int(v) for v in gbox.shape.yx), config_hash=inference_hash(ckpt))
    if cfg.tile_id:
        from aefcli.embed_edges import edge_spec

        job = replace(job, edges=edge_spec(cfg, job, cube))
    chunks = chunk_grid(tuple(gbox.shape.yx), cfg.chunk)
    items = {s: sorted({cube.item_ids[s][i] for i in cube.frame_indices(s, (period.start, period.end))}) for s in bands}
    attrs = {
        "kind": "embedding",
        "period": str(period),
        "model": {"hash": ckpt.model_hash, "config": ckpt.model_config, "bands": {s: list(b) for s, b in bands.items()},
                  "step": ckpt.step},
        "tiling": {"window": layout.window, "overlap": layout.overlap, "trim": layout.trim, "blend": "cosine-tapered"},
        "source_items": items,
        "tile": cfg.tile_id,
        "aef_version": __version__,
    }
    return Plan(cfg, gbox, job, chunks, share(chunks, *cfg.shares), attrs)


def _ingest_on_the_fly(cfg: EmbedConfig) -> Path:
    """--stac: ingest the area plus the windows' read margin into `<store>.cube.zarr` (resumable)."""
    from aefcli import console
    from aefcli.errors import PartialFailure
    from aefcli.grid import target_geobox
    from aefcli.ingest import IngestConfig
    from aefcli.ingest import run as ingest
    from aefcli.parse import parse_bbox

    if cfg.tile_id:
        from aefcli.tiles import tile_from_id

        tile = tile_from_id(cfg.tile_id)
        gbox, crs = tile.geobox_with_margin(cfg.window), tile.crs
    else:
        gbox = target_geobox(parse_bbox(cfg.bbox)).pad(cfg.window)
        crs = f"EPSG:{gbox.crs.epsg}"
    w, s, e, n = gbox.extent.to_crs("EPSG:4326").boundingbox
    cube = cfg.store.with_name(cfg.store.name.removesuffix(".zarr") + ".cube.zarr")
    cube.parent.mkdir(parents=True, exist_ok=True)
    icfg = IngestConfig(stac=cfg.stac, collections=cfg.collections, bbox=f"{w},{s},{e},{n}", period=cfg.period,
                        out=cube, crs=crs, command=cfg.command)
    try:
        ingest(icfg)
    except PartialFailure as err:  # the cube is complete without the broken frames: embed what exists
        console.say(f"warning: {err}")
    return cube


def dry_run(p: Plan) -> dict[str, Any]:
    """What a run would do: area, tiles, bytes and a time estimate from one timed model batch."""
    out_bytes = int(p.geobox.shape.y * p.geobox.shape.x * 64 * DTYPE_BYTES[p.cfg.dtype])
    job = p.job
    sec_per_window = seconds_per_window(job, dummy_window(job, job.layout.window))
    return {"km2": round(p.km2, 4), "shape": list(p.geobox.shape.yx), "tiles": len(p.chunks), "tiles_this_run": len(p.mine),
            "windows": p.windows, "output_bytes": out_bytes, "dtype": p.cfg.dtype,
            "estimate_s": round(p.windows * sec_per_window, 1), "store": str(p.cfg.store)}


def start(cfg: EmbedConfig) -> tuple[Plan, list[Chunk]] | dict[str, Any]:
    """Plan the run and create (or resume) its store: (plan, chunks still to compute), or the
    final result when there is nothing to compute (a dry run, a complete store)."""
    from aefcli import console, heap

    heap.configure()  # first: glibc fixes its heap count when a second thread first allocates (zarr's, torch's)
    from aefcli.io.embedding_store import chunk_done, create_store, store_attrs

    cube_path = _ingest_on_the_fly(cfg) if cfg.stac else None
    p = plan(cfg, cube_path)
    if cfg.dry_run:
        return {"dry_run": True, **dry_run(p)}
    store = cfg.store
    store.parent.mkdir(parents=True, exist_ok=True)
    if cfg.overwrite and cfg.shares[0] > 0:
        raise InputError("--overwrite with --tiles I/N would wipe other shares' work: overwrite only with share 0 or alone")
    create_store(store, p.geobox, list(range(64)), cfg.dtype, cfg.chunk, p.attrs, overwrite=cfg.overwrite)
    if store_attrs(store).get("complete"):
        console.say(f"{store} is already complete; nothing to do")
        return {"store": str(store), "complete": True, "tiles_done": 0, "tiles_total": len(p.chunks)}
    done = chunk_done(store, clean=[(c.i, c.j) for c in p.mine])  # stray `.partial` files of this share's chunks
    todo = [c for c in p.mine if (c.i, c.j) not in done]
    console.say(f"embedding {len(todo)} of {len(p.chunks)} tiles ({p.km2:.2f} km2) into {store}")
    return p, todo


def finish(p: Plan, stats: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    """After the tasks: mark the store complete when every chunk exists, write the preview; the summary.

    stats: the tasks' stats (`aefcli.embed_task`); wall: seconds the tasks took.
    """
    from aefcli.embed_edges import release
    from aefcli.embed_parts import PARTS
    from aefcli.io.embedding_store import mark_complete

    cfg, store = p.cfg, p.cfg.store
    complete = _all_chunks_written(store, len(p.chunks))
    if complete:
        shutil.rmtree(store / PARTS, ignore_errors=True)  # parts left by killed runs or other shares
        mark_complete(store, {"command": cfg.command or shlex.join(sys.argv), "aef_version": __version__})
        release(p.job)  # this tile's edge sums (after `complete`: neighbours no longer write for it)
    pixels = sum(s["pixels"] for s in stats)
    result = {"store": str(store), "complete": complete, "tiles_done": sum(s["kind"] == "chunk" for s in stats),
              "tiles_total": len(p.chunks), "pixels": pixels, "windows": sum(s["windows"] for s in stats),
              "seconds": round(wall, 3), "px_per_s": round(pixels / wall, 1) if wall > 0 else None,
              "model_seconds": round(sum(s["model_seconds"] for s in stats), 3)}
    if cfg.preview is not None:
        from aefcli.preview import write_pca_preview

        result["preview"] = [str(x) for x in write_pca_preview(store, cfg.preview, allow_incomplete=not complete)]
    return result


def run(cfg: EmbedConfig) -> dict[str, Any]:
    """Embed the area into the store (resuming it), this run's share only. Returns a summary."""
    from aefcli.embed_dask import run_tasks

    started = start(cfg)
    if isinstance(started, dict):
        return started
    p, todo = started
    t0 = time.perf_counter()
    stats = run_tasks(p.job, todo, cfg.scheduler, workers=workers(cfg))
    return finish(p, stats, time.perf_counter() - t0)


def workers(cfg: EmbedConfig) -> int:
    """Concurrent tasks of a local scheduler."""
    return cfg.workers or min(2, os.cpu_count() or 1)


def _all_chunks_written(store: Path, total: int) -> bool:
    """Every chunk is on disk (read-only listing: shares running beside us keep their `.partial` files)."""
    import zarr

    from aefcli.io.embedding_store import VAR

    return zarr.open_array(store / VAR, mode="r").nchunks_initialized == total
