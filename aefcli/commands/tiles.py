"""List the global UTM tiles covering an area (one JSON object per line with --json).

Tiles are squares of --tile-size metres at 10 m pixels, aligned to a fixed
origin in each UTM zone, so the same area always gives the same tile ids; an
area across zones, the equator or the antimeridian (bbox with W > E) is split
into the tiles of each zone. Feed the ids to per-tile jobs.

Example: aef tiles --bbox 3.0,51.0,3.5,51.3 --json
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from aefcli import console
from aefcli.commands.options import JSON, use_json
from aefcli.errors import InputError, NotBuiltYet

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
    estimate: bool = typer.Option(False, "--estimate", help="Print one summary: km2, tiles, output bytes (float32, int8)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="With --estimate: time a short calibration run of this model."),
    json: bool = JSON,
) -> None:
    from aefcli import tiles as grid

    use_json(json)
    if (bbox is None) == (geojson is None):
        raise InputError("give exactly one of --bbox W,S,E,N or --geojson AREA.geojson.")
    geom = grid.bbox_geometry(_parse_bbox(bbox)) if bbox else grid.load_geojson(geojson)
    found = grid.tiles_for_geometry(geom, tile_size)
    if estimate:
        if checkpoint is not None:
            raise NotBuiltYet("`aef tiles --estimate --checkpoint` (measured compute time) is not built yet; time one tile with `aef embed --tile ID --dry-run ...` and multiply by the tile count.")
        est = grid.estimate(geom, found)
        console.report(est, human="\n".join(f"{k:>14}: {v:,}" if isinstance(v, int) else f"{k:>14}: {v}" for k, v in est.items()))
        return
    if not console.state.json:
        console.say(f"{'id':<32} {'epsg':>5}  {'W':>11} {'S':>11} {'E':>11} {'N':>11}")
    for t in found:
        w, s, e, n = t.bounds_wgs84
        console.report(t.to_dict(), human=f"{t.id:<32} {t.epsg:>5}  {w:11.6f} {s:11.6f} {e:11.6f} {n:11.6f}")
    console.say(f"{len(found)} tiles of {tile_size} m")
