"""`aef demo` runs every stage end to end on a small sample world."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from aefcli.cli import app


@pytest.mark.slow
def test_demo_runs_end_to_end_and_says_where_outputs_are(tmp_path):
    import rasterio
    import xarray as xr
    from rio_cogeo.cogeo import cog_validate

    result = CliRunner().invoke(app, ["--json", "demo", str(tmp_path / "d"), "--size", "96", "--steps", "3"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    outputs = summary["outputs"]
    for key in ("cube", "checkpoint", "embeddings", "features", "map", "map_preview", "embeddings_preview"):
        assert (tmp_path / "d").joinpath(outputs[key]).exists(), key
    assert cog_validate(outputs["map"])[0]
    emb = xr.open_zarr(outputs["embeddings"], decode_coords="all", consolidated=False)
    with rasterio.open(outputs["map"]) as src:
        assert src.crs == emb.rio.crs
        assert src.colormap(1)  # the class colour table
    scores = summary["probe"]["result"]["results"]
    assert [s["embeddings"] for s in scores] == [outputs["embeddings"], outputs["features"]]
    assert summary["train"]["result"]["step"] == 3


def test_demo_refuses_a_bad_size(tmp_path):
    result = CliRunner().invoke(app, ["demo", str(tmp_path / "d"), "--size", "100"])
    assert result.exit_code == 1
    assert "multiple of 16" in str(result.exception) or "multiple of 16" in result.output
