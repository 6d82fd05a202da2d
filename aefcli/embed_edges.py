"""Windows on a global tile's edge, computed once for all the tiles they reach.

A window whose weighted support crosses a tile edge contributes to two tiles (four
at a corner). Tile stores embedded independently used to run it in each of them.
Here the edge windows of a tile store are grouped into segments named by absolute
position (`aefcli.tiling.TileEdges`); the first tile to need a segment runs all its
windows in one fixed batch order, blends them into one set of weighted sums over
the segment's whole support, and saves the part lying in each tile it reaches as a
file under the output folder:

    OUT/.aef-edges/<epsg>-<signature>/<tile row>_<tile col>/<segment>.npy

(the tile's absolute index on the tile grid; the signature hashes the model (weights and
config: `aefcli.embed_task.inference_hash`), cube,
period, lattice, batch and thread settings, so a run never picks up sums made
otherwise). A tile then blends each chunk from its interior owners' parts and the
segments reaching it, in one fixed order, whoever computed them: stores are
bitwise the same whichever tile ran first, and whether or not the neighbour ran.
A tile's folder is deleted when the tile is marked complete. Sums are written only
for neighbours that lie inside the cube (and, in a tile list, are on the list) and
are not complete yet.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from aefcli.tiling import Blender, Chunk, Segment, TileEdges, owner, targets

if TYPE_CHECKING:
    from aefcli.embed_task import EmbedJob

EDGES = ".aef-edges"  # in OUT, beside the tile stores; `aef index` lists only *.zarr
_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


@dataclass(frozen=True)
class EdgeSpec:
    """A tile store's share of the edge sums.

    root: OUT/.aef-edges/<epsg>-<signature>. grid: the tile grid in store pixels.
    tile: this tile's absolute (row, col) index on the grid (its store's layout origin // size).
    share: (dy, dx, neighbour store path) of the neighbour tiles this run writes sums for.
    """

    root: str
    grid: TileEdges
    tile: tuple[int, int]
    share: tuple[tuple[int, int, str], ...] = ()


def signature(job: EmbedJob, grid: TileEdges, cube=None) -> str:
    """A short hash of everything that changes an edge window's output bits or its segment.

    cube: the opened input cube; its grid and item ids count too (a cube re-ingested in place with other scenes).
    """
    lay = job.layout
    key = [job.model_hash, job.config_hash, job.cube, list(job.period), {s: list(b) for s, b in sorted(job.bands.items())},
           job.batch_size, lay.window, lay.overlap, lay.trim, grid.size, grid.per_segment, job.device, job.torch_threads]
    if cube is not None:
        key += [cube.attrs.get("transform"), cube.attrs.get("shape"), {s: list(cube.item_ids[s]) for s in sorted(job.bands)}]
    return hashlib.sha1(json.dumps(key).encode()).hexdigest()[:16]


def edge_path(spec: EdgeSpec, tile: tuple[int, int], key: Segment) -> Path:
    """The file holding segment `key`'s sums over tile `tile` (absolute tile index)."""
    return Path(spec.root) / f"{tile[0]}_{tile[1]}" / ("_".join(str(v) for v in key) + ".npy")


def segments(job: EmbedJob) -> dict[Segment, list[tuple[int, int]]]:
    """Segment -> its windows (row0, col0 in store pixels), for the whole store (cached per process)."""
    from aefcli.embed_task import _cached

    grid = job.edges.grid
    return _cached(("segments", job.out, job.layout, job.shape, grid), lambda: grid.segments(job.layout, job.shape))


def reaching(job: EmbedJob, chunk: Chunk) -> list[Segment]:
    """The segments whose windows reach `chunk`, in their fixed (sorted) blending order."""
    grid = job.edges.grid
    keys = {grid.segment(job.layout, r, c) for r, c in job.layout.windows(chunk.rows, chunk.cols)}
    return sorted(k for k in keys if k is not None)


def owned(job: EmbedJob, chunk: Chunk, wanted: set[tuple[int, int]]) -> list[Segment]:
    """Segments `chunk` computes (it owns their first window) that reach a chunk of `wanted`."""
    lay, shape = job.layout, job.shape
    out = []
    for key, wins in segments(job).items():
        if owner(lay, shape, *wins[0]) == (chunk.i, chunk.j) and any(t in wanted for w in wins for t in targets(lay, shape, *w)):
            out.append(key)
    return out


def _lock(path: Path) -> threading.Lock:
    with _LOCKS_LOCK:
        return _LOCKS.setdefault(path, threading.Lock())


def _complete(store: str) -> bool:
    try:
        return json.loads((Path(store) / "zarr.json").read_text())["attributes"]["aef:embedding"].get("complete") is True
    except (OSError, ValueError, KeyError, TypeError):
        return False


def compute_segment(job: EmbedJob, key: Segment) -> dict[str, float]:
    """Run segment `key`'s windows and save its sums for this tile and the shared neighbours; stats.

    A no-op when this tile's file exists (a neighbour or a killed run made it). Concurrent
    tasks of one process asking for the same segment wait for the first one.
    """
    from aefcli.embed_task import EMBED_DIM, _set_threads, add_weighted, load_model, run_windows, window_inputs

    spec, lay = job.edges, job.layout
    mine = edge_path(spec, spec.tile, key)
    stats = {"windows": 0, "model_seconds": 0.0}
    with _lock(mine):
        if mine.exists():
            return stats
        wins = segments(job)[key]
        members = set(wins)
        rows, cols = sorted({r for r, _ in wins}), sorted({c for _, c in wins})
        blend = Blender(lay, (rows[0] + lay.trim, rows[-1] + lay.window - lay.trim),
                        (cols[0] + lay.trim, cols[-1] + lay.window - lay.trim), EMBED_DIM)
        _set_threads(job.torch_threads)
        _, model = load_model(job)
        weight = lay.weights()
        batch: list = []

        def flush() -> None:
            t0 = time.perf_counter()
            mu = run_windows(model, job, [b[2] for b in batch])
            stats["model_seconds"] += time.perf_counter() - t0
            stats["windows"] += len(batch)
            for (r0, c0, _, has), vec in zip(batch, mu):
                add_weighted([blend], weight, r0, c0, vec, has)
            batch.clear()

        for item in window_inputs(job, rows, cols):  # row-major, windows with data only: one fixed batch order
            if (item[0], item[1]) in members:
                batch.append(item)
                if len(batch) == job.batch_size:
                    flush()
        if batch:
            flush()
        shared = {(dy, dx): store for dy, dx, store in spec.share}
        ty, tx, h, w, _ = key
        for dy in range(ty - spec.tile[0], ty - spec.tile[0] + h):
            for dx in range(tx - spec.tile[1], tx - spec.tile[1] + w):
                if (dy, dx) != (0, 0) and (dy, dx) in shared and not _complete(shared[dy, dx]):
                    _save_tile(job, blend, key, dy, dx)
        _save_tile(job, blend, key, 0, 0)  # last: this file says the segment is done here
    return stats


def _save_tile(job: EmbedJob, blend: Blender, key: Segment, dy: int, dx: int) -> None:
    """Save the part of the segment's sums lying in tile (dy, dx) from this one, origin in absolute pixels."""
    spec, lay, size = job.edges, job.layout, job.edges.grid.size
    r0, r1 = max(blend.rows[0], dy * size), min(blend.rows[1], (dy + 1) * size)
    c0, c1 = max(blend.cols[0], dx * size), min(blend.cols[1], (dx + 1) * size)
    if r0 >= r1 or c0 >= c1:
        return
    a, b = r0 - blend.rows[0], c0 - blend.cols[0]
    cut = (slice(a, a + r1 - r0), slice(b, b + c1 - c0))
    from aefcli.embed_parts import save_sums

    save_sums(edge_path(spec, (spec.tile[0] + dy, spec.tile[1] + dx), key), r0 + lay.origin[0], c0 + lay.origin[1],
              blend.acc[cut], blend.wsum[cut], blend.has_data[cut])


def load_segment(job: EmbedJob, key: Segment) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray]:
    """(row0, col0 in store pixels, acc (h, w, 64), wsum, has_data) of segment `key` over this tile (`compute_segment` first)."""
    from aefcli.embed_parts import load_sums

    r0, c0, acc, wsum, has = load_sums(edge_path(job.edges, job.edges.tile, key))
    return r0 - job.layout.origin[0], c0 - job.layout.origin[1], acc, wsum, has


def release(job: EmbedJob) -> None:
    """Delete this tile's edge sums (the tile is complete), and the signature folder once empty."""
    spec = job.edges
    if spec is None:
        return
    root = Path(spec.root)
    shutil.rmtree(root / f"{spec.tile[0]}_{spec.tile[1]}", ignore_errors=True)
    for folder in (root, root.parent):
        try:
            folder.rmdir()
        except OSError:
            break


def edge_spec(cfg, job: EmbedJob, cube) -> EdgeSpec | None:
    """The EdgeSpec of global tile `cfg.tile_id`'s store, or None when a window's support spans more than 2 tiles.

    cfg: aefcli.embed.EmbedConfig; job: its EmbedJob (without edges); cube: the opened input cube.
    """
    from aefcli.errors import InputError
    from aefcli.tiles import RESOLUTION_M, Tile, tile_from_id

    tile = tile_from_id(cfg.tile_id)
    size = tile.size_m // RESOLUTION_M
    grid = TileEdges(size, max(1, cfg.chunk // job.layout.stride))  # segments about a chunk long
    if not grid.fits(job.layout) or job.shape != (size, size):
        return None
    share = []
    ny, nx = cube.geobox.shape.yx
    for dy, dx in ((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)):
        if not cfg.share_edges or cfg.stac is not None:  # --stac: one cube per tile, never the neighbour's input
            break
        try:
            near = Tile(tile.epsg, tile.x0 + dx * tile.size_m, tile.y0 - dy * tile.size_m, tile.size_m)
        except InputError:  # beyond the zone's grid (the equator in the south frame)
            continue
        r, c = job.offset[0] + dy * size, job.offset[1] + dx * size
        inside = r >= 0 and c >= 0 and r + size <= ny and c + size <= nx  # else never embedded from this cube
        if inside and (cfg.edge_tiles is None or near.id in cfg.edge_tiles):
            share.append((dy, dx, str((cfg.out / f"{near.id}.zarr").resolve())))
    root = cfg.out.resolve() / EDGES / f"{tile.epsg}-{signature(job, grid, cube)}"
    origin = job.layout.origin
    return EdgeSpec(str(root), grid, (origin[0] // size, origin[1] // size), tuple(share))
