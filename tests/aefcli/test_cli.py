"""The CLI contract: fast help, exit codes, one-line errors."""

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from aefcli.cli import COMMANDS, app

runner = CliRunner()


def test_help_lists_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name, _ in COMMANDS:
        assert name in result.output


@pytest.mark.parametrize("name", [name for name, _ in COMMANDS])
def test_every_command_help_has_an_example(name):
    result = runner.invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("aef ")


def test_unknown_command_is_usage_error():
    result = runner.invoke(app, ["no-such-command"])
    assert result.exit_code == 2


def test_help_is_fast_and_imports_no_heavy_library():
    code = (
        "import sys, time; t=time.perf_counter(); import aefcli.cli; "
        "heavy=[m for m in ('torch','xarray','rasterio','dask','zarr','sklearn') if m in sys.modules]; "
        "print(time.perf_counter()-t); print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert float(out[0]) < 1.0
    assert out[1] == "", f"heavy modules imported at CLI start-up: {out[1]}"


def test_user_error_is_one_line_and_exit_1(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "aefcli", "ingest", "--stac", str(tmp_path / "catalog.json"), "--bbox", "3,51,2,50",
         "--period", "2024-01-01/2025-01-01", "--out", str(tmp_path / "cube.zarr")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("aef: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "reversed" in proc.stderr
    assert not (tmp_path / "cube.zarr").exists()


def test_json_mode_does_not_outlive_its_invocation():
    runner = CliRunner()
    args = ["tiles", "--bbox", "3.0,50.0,3.1,50.1", "--tile-size", "10240"]
    as_json = runner.invoke(app, ["--json", *args])
    assert as_json.exit_code == 0 and as_json.stdout.lstrip().startswith("{")
    human = runner.invoke(app, args)  # the same process: the earlier --json must not leak
    assert human.exit_code == 0 and not human.stdout.lstrip().startswith("{"), human.stdout
