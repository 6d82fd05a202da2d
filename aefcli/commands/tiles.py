"""List the global UTM tiles covering an area (one JSON object per line with --json).

Tiles are squares of --tile-size metres at 10 m pixels, aligned to a fixed
origin in each UTM zone, so the same area always gives the same tile ids; an
area across zones, the equator or the antimeridian (bbox with W > E) is split
into the tiles of each zone. Feed the ids to per-tile jobs. --estimate prints
km2, tiles and output bytes; with --checkpoint also a compute time measured by
timing one model batch of that checkpoint on this machine.

Example: aef tiles --bbox 3.0,51.0,3.5,51.3 --json
Example: aef tiles --bbox 3.0,51.0,3.5,51.3 --ids | aef embed --tiles-from - --checkpoint runs/tiny --cube cube.zarr --period 2024-01-01/2025-01-01 --out emb
Example: aef tiles --bbox 3.0,51.0,3.5,51.3 --estimate --checkpoint runs/tiny
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from aefcli import console
from aefcli.commands.options import JSON, use_json
from aefcli.errors import InputError

NO_ARGS_IS_HELP = True


def _parse_bbox(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"--bbox must be four numbers W,S,E,N in degrees, not {text!r}.") from None


def command(
    bbox: Optional[str] = typer.Option(None, "--bbox", help="Area as W,S,E,N in WGS84 degrees (W > E crosses the antimeridian)."),
    geojson: Optional[Path] = typer.Option(None, "--geojson", help="Area as a GeoJSON file (WGS84)."),
    tile_size: int = typer.Option(20480, "--tile-size", help="Tile edge in metres (a multiple of 10)."),
    ids: bool = typer.Option(False, "--ids", help="Print only the tile ids, one per line (for `aef embed --tiles-from -`, SLURM arrays)."),
    estimate: bool = typer.Option(False, "--estimate", help="Print one summary: km2, tiles, output bytes (float32, int8)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="With --estimate: time one model batch of this checkpoint here -> compute time."),
    window: int = typer.Option(128, "--window", help="With --checkpoint: model window in pixels, as `aef embed --window`."),
    overlap: int = typer.Option(32, "--overlap", help="With --checkpoint: window overlap in pixels, as `aef embed --overlap`."),
    chunk: int = typer.Option(512, "--chunk", help="With --checkpoint: output chunk (task) size in pixels, as `aef embed --chunk`."),
    frames: int = typer.Option(24, "--frames", help="With --checkpoint: observations per source in the period (cloud-free dates)."),
    batch_size: int = typer.Option(8, "--batch-size", help="With --checkpoint: windows per model call."),
    device: str = typer.Option("auto", "--device", help="With --checkpoint: auto, cpu or cuda."),
    json: bool = JSON,
) -> None:
    from aefcli import tiles as grid

    use_json(json)
    if (bbox is None) == (geojson is None):
        raise InputError("give exactly one of --bbox W,S,E,N or --geojson AREA.geojson.")
    geom = grid.bbox_geometry(_parse_bbox(bbox)) if bbox else grid.load_geojson(geojson)
    found = grid.tiles_for_geometry(geom, tile_size)
    if estimate:
        from aefcli.embed import estimate_tiles

        est = estimate_tiles(geom, found, checkpoint, window, overlap, chunk, frames, batch_size, device)
        console.report(est, human="\n".join(f"{k:>18}: {v:,}" if isinstance(v, int) else f"{k:>18}: {v}" for k, v in est.items()))
        return
    if checkpoint is not None:
        raise InputError("--checkpoint times a calibration run for --estimate; add --estimate.")
    if not (console.state.json or ids):
        console.say(f"{'id':<32} {'epsg':>5}  {'W':>11} {'S':>11} {'E':>11} {'N':>11}")
    if ids and not console.state.json:  # ids only: no projection at all
        for t in found:
            console.report({}, human=t.id)
    else:
        for t, (w, s, e, n) in zip(found, grid.wgs84_bounds(found).tolist()):
            console.report(t.to_dict((w, s, e, n)), human=f"{t.id:<32} {t.epsg:>5}  {w:11.6f} {s:11.6f} {e:11.6f} {n:11.6f}")
    console.say(f"{len(found)} tiles of {tile_size} m")
