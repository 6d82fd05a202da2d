"""Per-tile path vs one store for the same area: wall time overhead (goal <= 10 %).

    python benchmarks/tiles_overhead.py --work /tmp/tb --setup-only            # cube + checkpoint, once
    python benchmarks/tiles_overhead.py --work /tmp/tb [--reps 1]              # 2 x 1 tiles of 2048 px, `small`
    python benchmarks/tiles_overhead.py --work /tmp/tb256 --tile-px 256 --grid-x 2 --grid-y 2 \\
        --preset tiny --window 64 --chunk 128 --reps 2                         # the start-up-bound case

The area is a grid-x by grid-y block of global tiles (`--tile-px` pixels of 10 m,
EPSG:32631) on a synthetic cube (`--frames` S2 dates, parcels + noise + 10 % invalid
pixels) with a window's margin round it, and an untrained model of `--preset`
(`small` by default: weights do not change the cost). Every mode is the real CLI in
a fresh process (`python -m aefcli embed ... --overwrite`), alternated within each
repetition so machine load hits all alike:

- one_store: `aef embed --bbox <the block>`: one process, one store;
- per_tile: `aef embed --tile ID` once per tile, one process each, in sequence
  (`aef tiles ... --ids | xargs -I{} aef embed --tile {} ...`, a SLURM array of 1 tile per task);
- tiles_from: `aef embed --tiles-from LIST`: all tiles in one process, each its own store
  (tiles overlap: the next starts while the previous one's last chunks finish);
- tiles_from_noshare (optional): the same with `--no-share-edges`: each tile runs the windows
  crossing its edges itself, as every tile did before edge sharing;
- in_process (optional, --modes): `aefcli.embed.run` per tile vs one store inside this
  process after a warm-up: the pipeline's own per-tile cost without any start-up.

The chunk size divides the tile. Every mode prints the model windows its processes ran
(`windows_run`, from the `--json` lines): with edge sharing the tile modes run exactly the
one store's windows, so what remains is fixed cost per tile; `windows` gives the counts
tiles embedded independently would run (the edge windows twice). The summary (min over repetitions) gives each overhead, the
fixed cost of one more process, and the overhead of one process per tile for a region
of many tiles (that fixed cost over one tile's compute time; with few tiles the
measured ratio understates it by (N - 1) / N).
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
X0, TOP = 499_200, 5_632_000  # near zone 31's central meridian; snapped down to the tile grid
MODES = ("one_store", "per_tile", "tiles_from", "tiles_from_noshare", "in_process")


def _block(tile_m: int, gx: int, gy: int):
    from aefcli.tiles import Tile

    x0, top = X0 - X0 % tile_m, TOP - TOP % tile_m
    return [Tile(32631, x0 + i * tile_m, top - (j + 1) * tile_m, tile_m) for j in range(gy) for i in range(gx)]


def _bbox(tiles) -> str:
    """A WGS84 bbox whose UTM bounding box (what `aef embed --bbox` snaps out to whole pixels) is the block.

    A lon/lat box is not a UTM square (meridians converge): its corners are moved
    until each side of their UTM bounding box lies half a pixel inside the block's.
    """
    import math

    from pyproj import Transformer

    to_ll = Transformer.from_crs(32631, 4326, always_xy=True)
    to_utm = Transformer.from_crs(4326, 32631, always_xy=True)
    left, bottom = min(t.x0 for t in tiles) + 5, min(t.y0 for t in tiles) + 5
    right, top = max(t.x0 + t.size_m for t in tiles) - 5, max(t.y0 + t.size_m for t in tiles) - 5
    (w, e), (s, n) = to_ll.transform([left, right], [bottom, top])
    for _ in range(30):
        xs, ys = to_utm.transform([w, w, e, e], [s, n, s, n])
        errs = (min(xs[:2]) - left, min(ys[0], ys[2]) - bottom, max(xs[2:]) - right, max(ys[1], ys[3]) - top)
        deg_x = 1 / (111_320 * math.cos(math.radians((s + n) / 2)))
        w, s, e, n = w - errs[0] * deg_x, s - errs[1] / 110_574, e - errs[2] * deg_x, n - errs[3] / 110_574
    return f"{w},{s},{e},{n}"


def _write_cube(path: Path, ny: int, nx: int, frames: int, origin: tuple[float, float], seed: int = 0) -> None:
    """A synthetic S2 cube written frame by frame (a 2048 px block does not fit in RAM at once)."""
    import numpy as np
    from affine import Affine
    from odc.geo.geobox import GeoBox

    from aefcli.bands import transform_for
    from aefcli.io.cube import WRITTEN
    from aefcli.io.cube_writer import SourceLayout, create_cube, source_stats
    from embed_world import S2_BANDS

    rng = np.random.default_rng(seed)
    gbox = GeoBox((ny, nx), Affine(10, 0, origin[0], 0, -10, origin[1]), "EPSG:32631")
    parcels = np.zeros((ny, nx), np.int16)
    for k in range(1, 200):  # overlapping rectangles of 10..60 px -> a parcel map
        r, c, h, w = rng.integers(0, ny), rng.integers(0, nx), *rng.integers(10, 60, 2)
        parcels[r : r + h, c : c + w] = k
    spectra = rng.uniform(0.02, 0.4, (200, len(S2_BANDS))).astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, 200)
    times = np.array([f"2024-{m:02d}-15" for m in np.linspace(2, 11, frames).astype(int)], dtype="datetime64[ns]")
    layout = SourceLayout(times, S2_BANDS, tuple(f"S2_{str(t)[:10]}_{i}" for i, t in enumerate(times)))
    writer = create_cube(path, {"s2": layout}, gbox, {"period": PERIOD})
    for t in range(frames):
        season = (1 + 0.5 * np.sin(2 * np.pi * t / frames + phase)).astype(np.float32)
        raw = np.moveaxis((spectra * season[:, None])[parcels], -1, 0)  # (C, y, x)
        raw += rng.normal(0, 0.01, raw.shape).astype(np.float32)
        writer.write_frame("s2", t, raw, rng.random((ny, nx)) > 0.1)
        writer.mark("s2", t, WRITTEN)
        del raw
    writer.set_norm("s2", source_stats(path, "s2", transform_for("s2")))
    writer.finish()


def _checkpoint(path: Path, cube: Path, preset_name: str) -> None:
    """An untrained model of the preset with the cube's statistics (the cost does not depend on the weights)."""
    import torch

    from aefcli.checkpoint import save_checkpoint
    from aefcli.io.cube import open_cube
    from model import EmbeddingFieldModel, SourceSpec, preset

    torch.manual_seed(0)
    norm = open_cube(cube).norm["s2"]
    cfg = preset(preset_name, (SourceSpec("s2", len(norm.bands)),))
    save_checkpoint(path, EmbeddingFieldModel(cfg), cfg, {"s2": norm}, {"s2": norm.bands}, {"preset": preset_name}, step=1)


def _common(args, work: Path) -> list[str]:
    return ["--checkpoint", str(work / "run"), "--cube", str(work / "cube.zarr"), "--period", PERIOD,
            "--window", str(args.window), "--overlap", str(args.overlap), "--chunk", str(args.chunk),
            "--workers", str(args.workers), "--overwrite"]


def _timed(cmd: list[str], env: dict) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds user + system, model windows run) of one CLI process (`--json` lines).

    CPU time is what the path costs the machine, and barely moves with other jobs' load,
    where wall time on a shared 2-core machine swings by tens of per cent.
    """
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=True, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    windows = sum(int(json.loads(line).get("windows", 0)) for line in proc.stdout.splitlines() if line.startswith("{"))
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), windows


def _in_process(args, work: Path, tiles, bbox: str) -> tuple[float, float]:
    """(all tiles one by one, one store) through aefcli.embed.run in this process, after a warm-up tile."""
    from aefcli import console
    from aefcli.embed import EmbedConfig, run

    console.configure(quiet=True)  # no progress bars: the CLI modes run with -q too

    def cfg(out, **kw):
        return EmbedConfig(checkpoint=work / "run", cube=work / "cube.zarr", out=out, period=PERIOD, window=args.window,
                           overlap=args.overlap, chunk=args.chunk, workers=args.workers, overwrite=True, **kw)

    run(cfg(work / "warm", tile_id=tiles[0].id))  # imports and model load, as every process pays
    t0 = time.perf_counter()
    for t in tiles:
        run(cfg(work / "inproc", tile_id=t.id))
    t1 = time.perf_counter()
    run(cfg(work / "one-in.zarr", bbox=bbox))
    return t1 - t0, time.perf_counter() - t1


def _setup(args, work: Path, tiles) -> None:
    margin = args.window  # pixels of input read beyond the block's edge
    ny, nx = args.grid_y * args.tile_px + 2 * margin, args.grid_x * args.tile_px + 2 * margin
    origin = (min(t.x0 for t in tiles) - margin * 10, max(t.y0 + t.size_m for t in tiles) + margin * 10)
    if not (work / "cube.zarr").exists():
        _write_cube(work / "cube.zarr", ny, nx, args.frames, origin)
    if not (work / "run").exists():
        _checkpoint(work / "run", work / "cube.zarr", args.preset)
    (work / "tiles.txt").write_text("".join(f"{t.id}\n" for t in tiles))


def _window_counts(args, gx: int, gy: int) -> dict:
    """Model windows of a gx x gy block of tiles: one store vs the sum over its tiles embedded independently (each
    tile also runs the windows straddling its edges, which a neighbour runs again; edge sharing removes them)."""
    from aefcli.tiling import Layout

    tiles = _block(args.tile_px * 10, gx, gy)

    def count(top: int, left: int, ny: int, nx: int) -> int:
        return len(Layout(args.window, args.overlap, args.chunk, origin=(top // -10, left // 10)).windows((0, ny), (0, nx)))

    one = count(max(t.y0 + t.size_m for t in tiles), min(t.x0 for t in tiles), gy * args.tile_px, gx * args.tile_px)
    per_tile = sum(count(t.y0 + t.size_m, t.x0, args.tile_px, args.tile_px) for t in tiles)
    return {"block": [gx, gy], "one_store": one, "per_tile": per_tile, "extra": round(per_tile / one - 1, 4)}


def _summary(args, rows: dict[str, list[float]], n: int) -> dict:
    best = {k: min(v) for k, v in rows.items() if v}
    one = best["one_store"]
    area_px = n * args.tile_px**2
    out = {"tiles": n, "tile_px": args.tile_px, "preset": args.preset, "frames": args.frames, "window": args.window,
           "chunk": args.chunk, "one_store_s": round(one, 2), "px_per_s": round(area_px / one, 1),
           "seconds_per_tile": round(one / n, 2), "goal": "overhead <= 0.10"}
    if "per_tile" in best:
        fixed = (best["per_tile"] - one) / max(n - 1, 1)  # each tile beyond the first pays one more start-up
        out.update(per_tile_s=round(best["per_tile"], 2), overhead_per_tile=round(best["per_tile"] / one - 1, 4),
                   fixed_cost_per_process_s=round(fixed, 2), overhead_per_tile_many_tiles=round(fixed / (one / n), 4))
    if "tiles_from" in best:
        out.update(tiles_from_s=round(best["tiles_from"], 2), overhead_tiles_from=round(best["tiles_from"] / one - 1, 4))
    out["wall_overhead"] = {k: round(v / one - 1, 4) for k, v in best.items() if k not in ("one_store", "in_process", "in_process_one")}
    if "in_process" in best:
        out.update(in_process_tiles_s=round(best["in_process"], 2), in_process_one_store_s=round(min(rows["in_process_one"]), 2),
                   overhead_in_process=round(best["in_process"] / min(rows["in_process_one"]) - 1, 4))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tile-px", type=int, default=2048)
    ap.add_argument("--grid-x", type=int, default=2, help="tiles west to east")
    ap.add_argument("--grid-y", type=int, default=1, help="tiles north to south")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--window", type=int, default=128)
    ap.add_argument("--overlap", type=int)
    ap.add_argument("--chunk", type=int, default=512)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--modes", default="one_store,per_tile,tiles_from")
    ap.add_argument("--setup-only", action="store_true")
    ap.add_argument("--work")
    args = ap.parse_args()
    args.overlap = args.window // 4 if args.overlap is None else args.overlap
    modes = args.modes.split(",")
    if set(modes) - set(MODES) or "one_store" not in modes:
        sys.exit(f"--modes: one_store plus any of {MODES[1:]}")
    if args.tile_px % args.chunk:
        sys.exit("--chunk must divide --tile-px (all modes then compute the same windows)")
    work = Path(args.work or tempfile.mkdtemp(prefix="aef-tiles-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    tiles = _block(args.tile_px * 10, args.grid_x, args.grid_y)
    _setup(args, work, tiles)
    if args.setup_only:
        return
    from aefcli.embed import EmbedConfig, plan

    bbox = _bbox(tiles)
    one = plan(EmbedConfig(checkpoint=work / "run", cube=work / "cube.zarr", out=work / "one.zarr", period=PERIOD,
                           bbox=bbox, window=args.window, overlap=args.overlap, chunk=args.chunk))
    block = (args.grid_y * args.tile_px, args.grid_x * args.tile_px)
    if tuple(one.geobox.shape.yx) != block:
        sys.exit(f"the one-store grid is {tuple(one.geobox.shape.yx)}, not the block's {block}: not the same area")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    cli = [sys.executable, "-m", "aefcli", "-q", "--json", "embed", *_common(args, work)]
    commands = {
        "one_store": [cli + ["--bbox", bbox, "--out", str(work / "one.zarr")]],
        "per_tile": [cli + ["--tile", t.id, "--out", str(work / "tiles")] for t in tiles],
        "tiles_from": [cli + ["--tiles-from", str(work / "tiles.txt"), "--out", str(work / "tiles")]],
        "tiles_from_noshare": [cli + ["--tiles-from", str(work / "tiles.txt"), "--out", str(work / "tiles"), "--no-share-edges"]],
    }
    rows: dict[str, list[float]] = {m: [] for m in (*modes, "in_process_one")}
    cpu_rows: dict[str, list[float]] = {}
    window_rows: dict[str, int] = {}
    print(json.dumps({"load_avg": os.getloadavg(), "block_px": block, "tiles": [t.id for t in tiles]}), flush=True)
    for rep in range(args.reps):
        order = [m for m in modes if m != "in_process"]
        for kind in order if rep % 2 == 0 else order[::-1]:
            shutil.rmtree(work / "tiles", ignore_errors=True)
            times = [_timed(cmd, env) for cmd in commands[kind]]
            wall, cpu, windows = (sum(t[k] for t in times) for k in range(3))
            rows[kind].append(wall)
            cpu_rows.setdefault(kind, []).append(cpu)
            window_rows[kind] = windows
            print(json.dumps({"rep": rep, "kind": kind, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "windows_run": windows,
                              "load_avg": os.getloadavg()}), flush=True)
        if rep == 0:
            print(json.dumps({"rep": 0, "window_ratio_vs_one_store": {k: round(v / window_rows["one_store"], 4) for k, v in window_rows.items()}}),
                  flush=True)
        if "in_process" in modes:
            tiles_s, one_s = _in_process(args, work, tiles, bbox)
            rows["in_process"].append(tiles_s)
            rows["in_process_one"].append(one_s)
            print(json.dumps({"rep": rep, "kind": "in_process", "tiles_s": round(tiles_s, 2), "one_store_s": round(one_s, 2)}), flush=True)
    summary = _summary(args, rows, len(tiles))
    cpu = {k: min(v) for k, v in cpu_rows.items()}
    summary["cpu_s"] = {k: round(v, 2) for k, v in cpu.items()}
    summary["cpu_overhead"] = {k: round(v / cpu["one_store"] - 1, 4) for k, v in cpu.items() if k != "one_store"}
    if "per_tile" in cpu:  # one process per tile, for a region of many tiles: the extra start-up over one tile's CPU time
        fixed = (cpu["per_tile"] - cpu["one_store"]) / max(len(tiles) - 1, 1)
        summary.update(cpu_fixed_cost_per_process_s=round(fixed, 2),
                       cpu_overhead_per_tile_many_tiles=round(fixed / (cpu["one_store"] / len(tiles)), 4))
    summary["windows_run"] = window_rows
    summary["windows"] = _window_counts(args, args.grid_x, args.grid_y)
    summary["windows_8x8_region"] = _window_counts(args, 8, 8)
    summary["load_avg_end"] = os.getloadavg()
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
