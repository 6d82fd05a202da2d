"""Run the model over a bbox (or global tiles) and period into a Zarr embedding cube.

Windows overlap and are blended with smooth weights (no seams); one dask task per
output chunk; re-running the same command resumes; --tiles I/N runs one share.
Global tiles (--tile ID, repeatable, or --tiles-from FILE|-) each go into OUT/ID.zarr;
several tiles in one process pay the start-up (imports, model load) once and overlap
(the next tile starts while the previous one's last chunks finish). Windows crossing
a tile edge are computed once: their sums wait in OUT/.aef-edges for the neighbour tile.

Example: aef embed --checkpoint runs/tiny --cube cube.zarr --bbox 3.0,51.0,3.1,51.05 --period 2024-01-01/2025-01-01 --out emb.zarr --dtype int8
Example: aef tiles --bbox 3.0,51.0,3.5,51.3 --ids | aef embed --tiles-from - --checkpoint runs/tiny --cube cube.zarr --period 2024-01-01/2025-01-01 --out emb
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import List, Optional

import typer

from aefcli import console
from aefcli.commands.options import JSON, use_json
from aefcli.errors import InputError

NO_ARGS_IS_HELP = True


def command(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Checkpoint file or training run directory."),
    period: str = typer.Option(..., "--period", help="Valid period start/end (ISO, end exclusive) the embeddings summarise."),
    out: Path = typer.Option(..., "--out", help="Output Zarr store (with --tile: a directory receiving ID.zarr)."),
    cube: Optional[Path] = typer.Option(None, "--cube", help="Ingested cube (aef ingest output)."),
    stac: Optional[str] = typer.Option(None, "--stac", help="STAC API URL: ingest the area on the fly instead of --cube."),
    collections: Optional[List[str]] = typer.Option(None, "--collections", help="STAC collections for --stac (repeat or comma-separate)."),
    bbox: Optional[str] = typer.Option(None, "--bbox", help="Area W,S,E,N in WGS84 degrees."),
    tile: Optional[List[str]] = typer.Option(None, "--tile", help="A global tile id from `aef tiles` (instead of --bbox; writes OUT/ID.zarr; repeat for several), or a number: the model window size."),
    tiles_from: Optional[str] = typer.Option(None, "--tiles-from", help="File of tile ids (`aef tiles --ids`, its table or --json), or - for stdin: each into OUT/ID.zarr in this process."),
    dtype: str = typer.Option("float32", "--dtype", help="float32, or int8 (AlphaEarth quantisation, 4x smaller)."),
    window: int = typer.Option(128, "--window", help="Model window size in pixels (multiple of 16); `--tile 128` says the same."),
    overlap: int = typer.Option(32, "--overlap", help="Pixels shared by neighbouring windows (blended)."),
    chunk: int = typer.Option(512, "--chunk", help="Output chunk size in pixels = one dask task."),
    batch_size: int = typer.Option(8, "--batch-size", help="Windows per model call."),
    scheduler: str = typer.Option("threads", "--scheduler", help="threads, processes or a dask.distributed address tcp://HOST:PORT."),
    workers: int = typer.Option(0, "--workers", help="Concurrent tasks for threads/processes (0: automatic)."),
    tiles: Optional[str] = typer.Option(None, "--tiles", help="Compute only share I of N (e.g. 0/4), for array jobs filling one store."),
    preview: Optional[Path] = typer.Option(None, "--preview", help="Write a PNG (and a .tif beside it) of the first 3 principal components."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print area, tiles, output bytes and a time estimate; compute nothing."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing store made with other arguments."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    share_edges: bool = typer.Option(True, "--share-edges/--no-share-edges", help="Tiles: save the windows crossing a tile edge for the neighbour tiles (OUT/.aef-edges), so each is computed once."),
    json: bool = JSON,
) -> None:
    use_json(json)
    from aefcli.embed import EmbedConfig, run
    from aefcli.embed_tiles import finished, read_tile_ids
    from aefcli.tiling import parse_share

    ids = list(tile or [])
    if len(ids) == 1 and ids[0].strip().isdigit() and tiles_from is None:  # issue-6 spelling: --tile 128 is the window size
        window, ids = int(ids[0]), []
    if tiles_from is not None:
        ids += [t for t in read_tile_ids(tiles_from) if t not in ids]
        if not ids:
            raise InputError(f"the tile list {tiles_from} is empty; give tile ids from `aef tiles --ids`.")
    tile_id = ids[0] if ids else None
    cols = tuple(c.strip() for item in (collections or []) for c in item.split(",") if c.strip())
    cfg = EmbedConfig(
        checkpoint=checkpoint, out=out, period=period, cube=cube, stac=stac, collections=cols, bbox=bbox,
        tile_id=tile_id, dtype=dtype, window=window, overlap=overlap, chunk=chunk, batch_size=batch_size,
        scheduler=scheduler, workers=workers, shares=parse_share(tiles), preview=preview, dry_run=dry_run,
        overwrite=overwrite, device=device, command=shlex.join(["aef", *sys.argv[1:]]), share_edges=share_edges,
    )
    if len(ids) > 1 or tiles_from is not None:
        _several(cfg, ids)
        return
    _show((finished(cfg, tile_id) if tile_id else None) or run(cfg))


def _several(cfg, ids: list[str]) -> None:
    """One result line per tile as it finishes, then the totals; exit 1 if a tile failed."""
    from aefcli.embed_tiles import run_tiles
    from aefcli.errors import PartialFailure

    def one(result: dict) -> None:
        if "error" in result:
            console.report(result, f"{result['tile']}: failed: {result['error']}")
        else:
            _show(result)

    total = run_tiles(cfg, ids, on_result=one)
    console.report(total, f"{total['complete']} of {total['tiles']} tiles complete in {total['out']} "
                          f"({total['computed']} chunks computed, {total['seconds']} s)")
    if total["failed"]:
        bad = ", ".join(f["tile"] for f in total["failed"][:3]) + (" ..." if len(total["failed"]) > 3 else "")
        raise PartialFailure(f"{len(total['failed'])} of {total['tiles']} tiles failed ({bad}); see their lines above, fix and re-run (finished tiles are no-ops).")


def _show(result: dict) -> None:
    if result.get("dry_run"):
        human = (f"{result['km2']} km2, {result['tiles']} tiles ({result['tiles_this_run']} in this run), "
                 f"{result['windows']} windows, {result['output_bytes'] / 1e6:.1f} MB {result['dtype']}, "
                 f"about {result['estimate_s']} s -> {result['store']}")
    else:
        state = "complete" if result["complete"] else "incomplete (other shares or a re-run will finish it)"
        human = f"{result['store']}: {result['tiles_done']} tiles computed, store {state}"
    console.report(result, human)
