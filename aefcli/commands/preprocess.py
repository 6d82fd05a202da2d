"""Compute or apply the log transform and standardisation statistics of a cube.

Writes per-source statistics (mean/std of the transformed values over valid
pixels) into the cube's attributes; with --stats, takes them from another cube
or a model checkpoint so a new area is normalised like the training data.

Example: aef preprocess cube.zarr --stats runs/tiny/checkpoint.safetensors
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from aefcli import console
from aefcli.commands.options import JSON, use_json

NO_ARGS_IS_HELP = True


def command(
    cube: Path = typer.Argument(..., help="Ingested cube (Zarr store)."),
    stats: Optional[Path] = typer.Option(None, "--stats", help="Cube or checkpoint whose statistics to apply."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write a copy with the statistics here instead of in place."),
    json: bool = JSON,
) -> None:
    use_json(json)
    from aefcli.preprocess import PreprocessConfig, run

    result = run(PreprocessConfig(cube=cube, stats=stats, out=out))
    console.report(result, f"statistics of {', '.join(result['sources'])} written to {result['cube']}")
