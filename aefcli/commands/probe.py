"""Fit a probe from sparse GeoJSON labels, score it with spatially blocked CV, map every pixel.

Labels are points or polygons (any CRS the file declares; WGS84 by default) with a class
property (or a numeric target with --model ridge). Scores (balanced accuracy, macro F1,
per-class recall; R2 and RMSE for ridge) are the mean and spread over blocked folds and
random n-shot draws (--shots 1,10,max). Several --embeddings cubes are scored on the same
folds; the map (a COG) comes from the first. Embedding cubes: aef Zarr stores, the public
AlphaEarth int8 GeoTIFFs, or any (y, x, band) float GeoTIFF.

Example: aef probe labels.geojson --embeddings emb.zarr --out map.tif --shots 1,10,max --preview map.png
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from aefcli.commands.options import JSON, use_json

NO_ARGS_IS_HELP = True


def command(
    labels: Path = typer.Argument(..., help="GeoJSON points or polygons with the label property."),
    embeddings: List[Path] = typer.Option(..., "--embeddings", "-e", help="Embedding cube (Zarr or GeoTIFF); repeat to compare."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Map COG (.tif) predicted from the first cube."),
    field: str = typer.Option("class", "--field", help="Label property: class names/ids, or a number for ridge."),
    model: str = typer.Option("logistic", "--model", help="logistic | ridge (regression) | knn."),
    k: int = typer.Option(3, "--k", help="Neighbours for --model knn (AEF uses 1 and 3)."),
    cv: int = typer.Option(5, "--cv", help="Number of cross-validation folds."),
    block: float = typer.Option(640.0, "--block", help="CV block size in metres (0 = unblocked, leaks)."),
    shots: str = typer.Option("max", "--shots", help="Training samples per class, e.g. 1,10,max."),
    draws: int = typer.Option(5, "--draws", help="Random draws per fold for each n-shot count."),
    repeats: int = typer.Option(1, "--repeats", help="Random fold assignments to average over."),
    balanced: bool = typer.Option(False, "--balanced", help="Class-balanced logistic regression."),
    proba: bool = typer.Option(False, "--proba", help="Also write MAP.proba.tif (max and per-class probability)."),
    preview: Optional[Path] = typer.Option(None, "--preview", help="PNG of the map with a legend."),
    max_per_polygon: Optional[int] = typer.Option(None, "--max-per-polygon", help="Cap on pixels taken from one polygon."),
    min_per_class: int = typer.Option(1, "--min-per-class", help="Drop classes with fewer labelled pixels."),
    seed: int = typer.Option(0, "--seed", help="Seed of folds and draws."),
    json: bool = JSON,
) -> None:
    use_json(json)
    from aefcli import console
    from aefcli.probe import ProbeConfig, format_table, run
    from aefcli.probe_eval import parse_shots

    cfg = ProbeConfig(labels=labels, embeddings=tuple(embeddings), out=out, field=field, model=model, k=k, cv=cv,
                      block=block, shots=parse_shots(shots), draws=draws, repeats=repeats, balanced=balanced,
                      proba=proba, preview=preview, max_per_polygon=max_per_polygon, min_per_class=min_per_class,
                      seed=seed)
    result = run(cfg)
    console.say(format_table(result))
    if result["map"]:
        console.say(f"map: {result['map']['path']}")
    if console.state.json:  # without --json the table above (stderr) is the whole answer
        console.report(result)
