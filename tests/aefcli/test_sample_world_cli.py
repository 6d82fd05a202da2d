"""`aef sample-world` on the command line: results on stdout, one-line errors with exit 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from aefcli.cli import app


def _aef(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aefcli", *args], capture_output=True, text=True, timeout=120)


def test_writes_a_world_and_reports_json(tmp_path):
    result = CliRunner().invoke(app, ["-q", "sample-world", str(tmp_path / "w"), "--size", "64", "--dates", "3",
                                      "--seed", "2", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout.strip().splitlines()[-1])
    assert doc["items"] == {"sentinel-2-l2a": 3, "sentinel-1-grd": 3}
    assert doc["period"] == "2024-01-01/2025-01-01"
    for key in ("catalog", "labels", "truth", "text"):
        assert os.path.isfile(doc[key])
    w, s, e, n = doc["bbox"]
    assert w < e and s < n


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "100"], "multiple of 16"),
        (["--dates", "-3"], "--dates -3"),
        (["--dates", "0"], "--dates 0"),
        (["--crs", "EPSG:4326"], "UTM"),
    ],
)
def test_bad_options_give_one_line_and_exit_1(tmp_path, args, message):
    proc = _aef("sample-world", str(tmp_path / "w"), *args)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aef: error:") and message in lines[0], proc.stderr
    assert not (tmp_path / "w").exists()


def test_path_under_a_file_is_an_input_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = _aef("sample-world", str(blocker / "w"), "--size", "64", "--dates", "1")
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1 and "not a directory" in proc.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_directory_is_an_input_error(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        proc = _aef("sample-world", str(locked / "w"), "--size", "64", "--dates", "1")
    finally:
        locked.chmod(0o700)
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1 and "writable" in proc.stderr


def test_unwritable_directory_is_an_input_error_even_as_root(tmp_path):
    """A read-only bind is not available in tests; /proc is unwritable for everyone."""
    proc = _aef("sample-world", "/proc/aef-sample-world", "--size", "64", "--dates", "1")
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert "writable" in proc.stderr
