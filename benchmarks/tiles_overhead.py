"""Per-tile path vs one store for the same area: wall time overhead (goal <= 10 %).

    python benchmarks/tiles_overhead.py [--tile-px 256] [--grid 2] [--window 64] [--chunk 128] [--reps 2]

The area is a grid x grid block of global tiles (`--tile-px` pixels of 10 m,
EPSG:32631) on a synthetic cube with a margin round it; a tiny untrained model
(`tests/aefcli/embed_world.make_checkpoint`). Measured in the same run, each
repetition alternating the two so machine load hits both alike:

- one_store: `aef embed --bbox <the block>` in one process;
- per_tile: `aef embed --tile ID` once per tile, one process each, in sequence
  (what `aef tiles ... | xargs -P 1 -I{} aef embed --tile {} ...` does);
- per_tile_in_process: the same tile runs through `aefcli.embed.run` in one
  process, which separates the per-process start-up (imports, model load) from
  the pipeline's own per-tile cost (store template, lattice, completion).

The chunk size divides the tile, so both paths compute the same windows; what
remains is fixed cost per tile. Prints one JSON line per measurement, then the
summary (min over repetitions), with the fixed cost per tile projected onto the
default 2048 px tiles at the measured px/s of this model (a real model is
slower per pixel, so its projected overhead is smaller still).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "aefcli")]
PERIOD = "2024-01-01/2025-01-01"
X0, TOP = 499_200, 5_632_000  # on the tile grid for tile sizes dividing 1280 m and 2560 m


def _block(tile_m: int, grid: int):
    from aefcli.tiles import Tile

    x0, top = X0 - X0 % tile_m, TOP - TOP % tile_m
    return [Tile(32631, x0 + i * tile_m, top - (j + 1) * tile_m, tile_m) for j in range(grid) for i in range(grid)]


def _bbox(tiles, inset_m: float = 5.0) -> str:
    """WGS84 bbox half a pixel inside the block's UTM square (`aef embed --bbox` snaps out to whole pixels;
    the lon/lat box's corners land a little outside the UTM square, so a smaller inset adds a pixel column)."""
    from pyproj import Transformer

    tr = Transformer.from_crs(32631, 4326, always_xy=True)
    left, bottom = min(t.x0 for t in tiles), min(t.y0 for t in tiles)
    right, top = max(t.x0 + t.size_m for t in tiles), max(t.y0 + t.size_m for t in tiles)
    w, s = tr.transform(left + inset_m, bottom + inset_m)
    e, n = tr.transform(right - inset_m, top - inset_m)
    return f"{w},{s},{e},{n}"


def _common(args, work: Path) -> list[str]:
    return ["--checkpoint", str(work / "run"), "--cube", str(work / "cube.zarr"), "--period", PERIOD,
            "--window", str(args.window), "--overlap", str(args.window // 4), "--chunk", str(args.chunk),
            "--workers", str(args.workers), "--overwrite"]


def _timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _in_process(args, work: Path, tiles) -> float:
    """All tiles through aefcli.embed.run in this process (after one warm-up tile)."""
    from aefcli.embed import EmbedConfig, run

    def cfg(tid, out):
        return EmbedConfig(checkpoint=work / "run", cube=work / "cube.zarr", out=out, period=PERIOD, tile_id=tid,
                           window=args.window, overlap=args.window // 4, chunk=args.chunk, workers=args.workers,
                           overwrite=True)

    run(cfg(tiles[0].id, work / "warm"))  # imports and model load, as the separate processes each pay
    t0 = time.perf_counter()
    for t in tiles:
        run(cfg(t.id, work / "inproc"))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tile-px", type=int, default=256)
    ap.add_argument("--grid", type=int, default=2, help="tiles per side of the block")
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--chunk", type=int, default=128)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--work")
    args = ap.parse_args()
    if args.tile_px % args.chunk:
        sys.exit("--chunk must divide --tile-px (both paths then compute the same windows)")
    from embed_world import make_checkpoint, make_cube

    work = Path(args.work or tempfile.mkdtemp(prefix="aef-tiles-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    tiles = _block(args.tile_px * 10, args.grid)
    margin = args.window  # pixels of input read beyond the block's edge
    side = args.grid * args.tile_px + 2 * margin
    origin = (min(t.x0 for t in tiles) - margin * 10, max(t.y0 + t.size_m for t in tiles) + margin * 10)
    if not (work / "cube.zarr").exists():
        make_cube(work / "cube.zarr", size=side, frames=6, origin=origin)
    if not (work / "run").exists():
        make_checkpoint(work / "run", work / "cube.zarr")
    from aefcli.embed import EmbedConfig, plan, run

    one = plan(EmbedConfig(checkpoint=work / "run", cube=work / "cube.zarr", out=work / "one.zarr", period=PERIOD,
                           bbox=_bbox(tiles), window=args.window, overlap=args.window // 4, chunk=args.chunk))
    block = args.grid * args.tile_px
    if tuple(one.geobox.shape.yx) != (block, block):
        sys.exit(f"the one-store grid is {tuple(one.geobox.shape.yx)}, not the block's ({block}, {block}): not the same area")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    cli = [sys.executable, "-m", "aefcli", "-q", "embed"]
    one_cmd = cli + _common(args, work) + ["--bbox", _bbox(tiles), "--out", str(work / "one.zarr")]
    rows: dict[str, list[float]] = {"one_store": [], "per_tile": [], "per_tile_in_process": []}
    for rep in range(args.reps):
        for kind in (("one_store", "per_tile") if rep % 2 == 0 else ("per_tile", "one_store")):
            if kind == "one_store":
                wall = _timed(one_cmd, env)
            else:
                shutil.rmtree(work / "tiles", ignore_errors=True)
                wall = sum(_timed(cli + _common(args, work) + ["--tile", t.id, "--out", str(work / "tiles")], env) for t in tiles)
            rows[kind].append(wall)
            print(json.dumps({"rep": rep, "kind": kind, "wall_s": round(wall, 2)}), flush=True)
    for rep in range(args.reps):
        wall = _in_process(args, work, tiles)
        rows["per_tile_in_process"].append(wall)
        print(json.dumps({"rep": rep, "kind": "per_tile_in_process", "wall_s": round(wall, 2)}), flush=True)
    # one store in-process, same warm state, for the pipeline-only comparison
    one_in = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        run(EmbedConfig(checkpoint=work / "run", cube=work / "cube.zarr", out=work / "one-in.zarr", period=PERIOD,
                        bbox=_bbox(tiles), window=args.window, overlap=args.window // 4, chunk=args.chunk,
                        workers=args.workers, overwrite=True))
        one_in.append(time.perf_counter() - t0)
    best = {k: min(v) for k, v in rows.items()}
    summary = {
        "tiles": len(tiles), "tile_px": args.tile_px, "chunks_one_store": len(one.chunks), "area_px": (args.grid * args.tile_px) ** 2, "window": args.window,
        "chunk": args.chunk, "one_store_s": round(best["one_store"], 2), "per_tile_s": round(best["per_tile"], 2),
        "overhead": round(best["per_tile"] / best["one_store"] - 1, 3),
        "one_store_in_process_s": round(min(one_in), 2), "per_tile_in_process_s": round(best["per_tile_in_process"], 2),
        "overhead_in_process": round(best["per_tile_in_process"] / min(one_in) - 1, 3), "goal": "overhead <= 0.10",
    }
    # the per-tile cost is fixed (start-up, store template, completion): project it onto default 2048 px tiles
    fixed = (best["per_tile"] - best["one_store"]) / len(tiles)
    px_s = summary["area_px"] / best["one_store"]
    summary.update(fixed_cost_per_tile_s=round(fixed, 2), one_store_px_per_s=round(px_s, 1),
                   projected_overhead_2048px_tiles=round(fixed / (2048**2 / px_s), 4))
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
