"""Search a STAC API or catalog and load the imagery onto a UTM grid (Zarr cube).

Builds one group per source (s2, s1, landsat) in a Zarr v3 store: raw values in
physical units (reflectance, dB), a per-frame valid mask, provenance, and the
standardisation statistics (unless --no-preprocess). Re-run the same command to
resume an interrupted ingest.

Example: aef ingest --stac https://earth-search.aws.element84.com/v1 --collections s2,s1 --bbox 3.0,51.0,3.1,51.05 --period 2024-01-01/2025-01-01 --out cube.zarr
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from aefcli import console
from aefcli.commands.options import JSON, use_json

NO_ARGS_IS_HELP = True


def command(
    stac: str = typer.Option(..., "--stac", help="STAC API URL or path to a static catalog.json."),
    collections: str = typer.Option("s2,s1", "--collections", help="Comma-separated collection ids or aliases (s2, s1, landsat)."),
    bbox: str = typer.Option(..., "--bbox", help="WGS84 W,S,E,N in degrees."),
    period: str = typer.Option(..., "--period", help="ISO start/end, end exclusive, e.g. 2024-01-01/2025-01-01."),
    out: Path = typer.Option(..., "--out", help="Output Zarr store (cube.zarr)."),
    crs: str = typer.Option("auto", "--crs", help="auto (UTM zone of the bbox centre) or EPSG:xxxxx in metres."),
    resolution: float = typer.Option(10.0, "--resolution", help="Pixel size in metres."),
    max_cloud: Optional[float] = typer.Option(80.0, "--max-cloud", help="Drop items above this eo:cloud_cover percent."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print item counts, dates, grid and size; write nothing."),
    no_preprocess: bool = typer.Option(False, "--no-preprocess", help="Skip computing the standardisation statistics."),
    json: bool = JSON,
) -> None:
    use_json(json)
    from aefcli.ingest import IngestConfig, run

    cfg = IngestConfig(stac=stac, collections=tuple(collections.split(",")), bbox=bbox, period=period, out=out,
                       crs=crs, resolution=resolution, max_cloud=max_cloud, dry_run=dry_run, preprocess=not no_preprocess)
    result = run(cfg)
    frames = ", ".join(f"{s}: {n} frames" for s, n in result["frames"].items())
    verb = "would write" if dry_run else "wrote"
    console.report(result, f"{verb} {out} ({result['crs']}, {result['shape'][0]}x{result['shape'][1]} px; {frames}; "
                           f"~{result['estimated_bytes'] / 1e6:.1f} MB)")
