"""Run the model over a bbox (or one global tile) and period into a Zarr embedding cube.

Windows overlap and are blended with smooth weights (no seams); one dask task per
output chunk; re-running the same command resumes; --tiles I/N runs one share.

Example: aef embed --checkpoint runs/tiny --cube cube.zarr --bbox 3.0,51.0,3.1,51.05 --period 2024-01-01/2025-01-01 --out emb.zarr --dtype int8
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import List, Optional

import typer

from aefcli import console
from aefcli.commands.options import JSON, use_json

NO_ARGS_IS_HELP = True


def command(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Checkpoint file or training run directory."),
    period: str = typer.Option(..., "--period", help="Valid period start/end (ISO, end exclusive) the embeddings summarise."),
    out: Path = typer.Option(..., "--out", help="Output Zarr store (with --tile: a directory receiving ID.zarr)."),
    cube: Optional[Path] = typer.Option(None, "--cube", help="Ingested cube (aef ingest output)."),
    stac: Optional[str] = typer.Option(None, "--stac", help="STAC API URL: ingest the area on the fly instead of --cube."),
    collections: Optional[List[str]] = typer.Option(None, "--collections", help="STAC collections for --stac (repeat or comma-separate)."),
    bbox: Optional[str] = typer.Option(None, "--bbox", help="Area W,S,E,N in WGS84 degrees."),
    tile: Optional[str] = typer.Option(None, "--tile", help="A global tile id from `aef tiles` (instead of --bbox; writes OUT/ID.zarr), or a number: the model window size."),
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
    json: bool = JSON,
) -> None:
    use_json(json)
    from aefcli.embed import EmbedConfig, run
    from aefcli.tiling import parse_share

    tile_id = tile
    if tile is not None and tile.strip().isdigit():  # issue-6 spelling: --tile 128 is the window size
        window, tile_id = int(tile), None
    cols = tuple(c.strip() for item in (collections or []) for c in item.split(",") if c.strip())
    cfg = EmbedConfig(
        checkpoint=checkpoint, out=out, period=period, cube=cube, stac=stac, collections=cols, bbox=bbox,
        tile_id=tile_id, dtype=dtype, window=window, overlap=overlap, chunk=chunk, batch_size=batch_size,
        scheduler=scheduler, workers=workers, shares=parse_share(tiles), preview=preview, dry_run=dry_run,
        overwrite=overwrite, device=device, command=shlex.join(["aef", *sys.argv[1:]]),
    )
    result = run(cfg)
    if result.get("dry_run"):
        human = (f"{result['km2']} km2, {result['tiles']} tiles ({result['tiles_this_run']} in this run), "
                 f"{result['windows']} windows, {result['output_bytes'] / 1e6:.1f} MB {result['dtype']}, "
                 f"about {result['estimate_s']} s -> {result['store']}")
    else:
        state = "complete" if result["complete"] else "incomplete (other shares or a re-run will finish it)"
        human = f"{result['store']}: {result['tiles_done']} tiles computed, store {state}"
    console.report(result, human)
