"""Write a synthetic multi-source world (COGs + STAC catalog + labels) for offline runs.

Five crops (each with its own NDVI calendar), grassland, forest, a river,
a village and roads, seen by Sentinel-2 L2A-like scenes (10 bands + SCL,
clouds, shadows) and Sentinel-1-like VV/VH (linear sigma0, speckle), as COGs
under a static STAC catalog (sentinel-2-l2a, sentinel-1-grd), with
labels.geojson, truth.tif and text.geojson. Same seed, identical files.

Example: aef sample-world ./world --size 256 --dates 24 --seed 0
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from aefcli import console
from aefcli.commands.options import JSON, use_json

NO_ARGS_IS_HELP = True


def command(
    out_dir: Path = typer.Argument(..., help="Directory to create (replaced if it holds a previous sample world)."),
    size: int = typer.Option(256, "--size", help="Pixels per side at 10 m; a multiple of 16 (20 m bands get half)."),
    dates: int = typer.Option(24, "--dates", help="Sentinel-2 acquisitions over the year (Sentinel-1 gets as many)."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed writes identical files."),
    year: int = typer.Option(2024, "--year", help="Calendar year of the acquisitions."),
    crs: str = typer.Option("EPSG:32631", "--crs", help="UTM zone of the grid, EPSG:326zz (north) or EPSG:327zz (south)."),
    json: bool = JSON,
) -> None:
    use_json(json)
    from aefcli.sampleworld import write_sample_world

    start = time.perf_counter()
    world = write_sample_world(out_dir, size=size, dates=dates, seed=seed, year=year, crs=crs)
    result = {
        "catalog": str(world.catalog),
        "labels": str(world.labels),
        "truth": str(world.truth),
        "text": str(world.text),
        "bbox": list(world.bbox_wgs84),
        "period": f"{year}-01-01/{year + 1}-01-01",
        "items": {"sentinel-2-l2a": len(world.s2_dates), "sentinel-1-grd": len(world.s1_dates)},
        "seconds": round(time.perf_counter() - start, 2),
    }
    bbox = ",".join(f"{v:.5f}" for v in world.bbox_wgs84)
    console.report(
        result,
        human=(
            f"sample world: {world.root}\n"
            f"  catalog: {world.catalog} ({len(world.s2_dates)} sentinel-2-l2a, {len(world.s1_dates)} sentinel-1-grd items)\n"
            f"  labels:  {world.labels}\n  truth:   {world.truth}\n  text:    {world.text}\n"
            f"  bbox:    {bbox}   period: {result['period']}   ({result['seconds']} s)"
        ),
    )
