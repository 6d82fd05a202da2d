"""Designed-feature baselines (median / monthly composites) in the embedding cube format.

Reads an ingested cube and writes a (y, x, band) float32 Zarr cube that `aef probe`
scores exactly like embeddings. --kind median: per-band median of valid S2 pixels;
monthly: monthly medians of S2 and S1 with empty months interpolated; monthly-smooth:
the monthly features after a NaN-aware 3x3 spatial mean. Resumes a half-written --out.

Example: aef features --cube cube.zarr --period 2024-01-01/2025-01-01 --kind monthly --out feats.zarr
"""

from __future__ import annotations

from pathlib import Path

import typer

from aefcli.commands.options import JSON, use_json

NO_ARGS_IS_HELP = True


def command(
    cube: Path = typer.Option(..., "--cube", help="Ingested cube (Zarr) from `aef ingest`."),
    period: str = typer.Option(..., "--period", help="ISO start/end, end exclusive, e.g. 2024-01-01/2025-01-01."),
    kind: str = typer.Option("monthly", "--kind", help="median | monthly | monthly-smooth."),
    out: Path = typer.Option(..., "--out", "-o", help="Output feature cube (Zarr)."),
    chunk: int = typer.Option(128, "--chunk", help="Output tile in pixels (memory ~ frames x bands x chunk^2 x 4 B)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an --out made with other settings."),
    json: bool = JSON,
) -> None:
    use_json(json)
    from aefcli import console
    from aefcli.features import FeaturesConfig, run

    cfg = FeaturesConfig(cube=cube, period=period, kind=kind, out=out, chunk=chunk, overwrite=overwrite)
    result = run(cfg)
    console.report(result, human=f"{result['out']}: {result['bands']} {result['kind']} feature bands, "
                                 f"{result['shape'][0]} x {result['shape'][1]} px in {result['seconds']} s")
