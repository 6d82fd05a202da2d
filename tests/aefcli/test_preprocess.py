"""`aef preprocess`: recompute statistics, apply another cube's or a checkpoint's, one-line errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aefcli.errors import DataError, InputError
from aefcli.ingest import IngestConfig
from aefcli.ingest import run as ingest
from aefcli.io.cube import open_cube
from aefcli.io.cube_writer import SourceArrays, write_cube
from aefcli.normalise import LOG_OFFSET, NormStats
from aefcli.preprocess import PreprocessConfig, run

sys.path.insert(0, str(Path(__file__).parent))
from fault_server import bbox_of, make_catalog  # noqa: E402

S2_BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("prep")
    catalog = make_catalog(root / "stac", ["a", "b", "c"])
    out = root / "cube.zarr"
    ingest(IngestConfig(stac=str(catalog), collections=("s2",), bbox=bbox_of(32), period="2024-05-01/2024-06-01",
                        out=out, command="aef ingest (test)"))
    return out


@pytest.fixture
def cube(ingested, tmp_path) -> Path:
    """A private copy of the ingested cube, free to be changed in place."""
    path = tmp_path / "mine.zarr"
    shutil.copytree(ingested, path)
    return path


def _other_stats() -> NormStats:
    """Statistics no data here would give (odd digits, so any rounding shows)."""
    return NormStats("log", S2_BANDS, tuple(-1.0 - 0.123456789 * i for i in range(10)),
                     tuple(0.3 + 0.0101010101 * i for i in range(10)))


def _stats_cube(path: Path, norm: NormStats | None, bands=S2_BANDS) -> Path:
    from affine import Affine
    from odc.geo.geobox import GeoBox

    rng = np.random.default_rng(1)
    raw = rng.uniform(0.01, 0.5, (2, len(bands), 8, 8)).astype(np.float32)
    arrays = SourceArrays(raw, np.ones((2, 8, 8), bool), np.array(["2024-01-01", "2024-02-01"], "datetime64[ns]"),
                          tuple(bands), norm=norm)
    geobox = GeoBox((8, 8), Affine(10, 0, 500000, 0, -10, 5600000), "EPSG:32631")
    return write_cube(path, {"s2": arrays}, geobox)


def _no_temp_left(cube: Path) -> None:
    assert not list(cube.parent.glob(".*tmp-*")), "a temporary copy was left behind"


def test_recompute_matches_ingest_and_numpy(ingested, tmp_path):
    own = open_cube(ingested).norm["s2"]
    result = run(PreprocessConfig(ingested, out=tmp_path / "again.zarr"))
    again = open_cube(tmp_path / "again.zarr").norm["s2"]
    assert again == own and result["sources"]["s2"] == own.to_dict()
    assert open_cube(ingested).norm["s2"] == own  # --out leaves the source cube alone
    # the numbers themselves: mean/std of ln(max(r, 0) + 0.01) over valid pixels, computed here in float64
    c = open_cube(ingested)
    frames = [c.read_raw("s2", t) for t in range(len(c.times["s2"]))]
    logs = np.stack([np.log(np.maximum(r.astype(np.float64), 0) + LOG_OFFSET) for r, _ in frames])  # (T, C, y, x)
    valid = np.stack([v for _, v in frames])
    assert valid.any() and not valid.all()  # the cloud square is excluded
    picked = logs.transpose(1, 0, 2, 3)[:, valid]  # (C, n valid)
    np.testing.assert_allclose(own.mean, picked.mean(axis=1), rtol=1e-6)  # T is float32
    np.testing.assert_allclose(own.std, picked.std(axis=1), rtol=1e-6)


def test_recompute_in_place_replaces_foreign_stats(cube, tmp_path):
    own = open_cube(cube).norm["s2"]
    run(PreprocessConfig(cube, stats=_stats_cube(tmp_path / "other.zarr", _other_stats())))
    assert open_cube(cube).norm["s2"] == _other_stats()
    run(PreprocessConfig(cube))
    assert open_cube(cube).norm["s2"] == own


def test_stats_from_another_cube_are_applied_exactly(ingested, tmp_path):
    other = _stats_cube(tmp_path / "other.zarr", _other_stats())
    result = run(PreprocessConfig(ingested, stats=other, out=tmp_path / "norm.zarr"))
    out = open_cube(tmp_path / "norm.zarr")
    assert out.norm["s2"] == _other_stats()
    assert result == {"cube": str(tmp_path / "norm.zarr"), "sources": {"s2": _other_stats().to_dict()}}
    # readers standardise with exactly those numbers
    raw, valid = out.read_raw("s2", 0)
    window = out.read_window("s2", slice(0, 4), slice(0, 4))
    want = (np.log(np.maximum(raw[:, :4, :4], 0) + LOG_OFFSET) - np.array(_other_stats().mean, np.float32)[:, None, None]) \
        / np.array(_other_stats().std, np.float32)[:, None, None]
    ok = window.valid[0]
    assert ok.any()
    np.testing.assert_allclose(window.values[0][:, ok], want[:, ok], rtol=1e-5, atol=1e-5)
    # the raw values are untouched
    src_raw, _ = open_cube(ingested).read_raw("s2", 0)
    np.testing.assert_array_equal(raw, src_raw)
    _no_temp_left(tmp_path / "norm.zarr")


def test_stats_from_a_checkpoint_are_applied_exactly(cube, tmp_path):
    torch = pytest.importorskip("torch")
    from aefcli.checkpoint import save_checkpoint

    full = _other_stats()
    shuffled = full.select(tuple(reversed(S2_BANDS)))  # another band order than the cube's
    s1 = NormStats("identity", ("VV", "VH"), (-12.5, -19.25), (3.5, 4.125))
    ckpt = save_checkpoint(tmp_path / "run", torch.nn.Linear(2, 2), {"preset": "test"}, {"s2": shuffled, "s1": s1},
                           {"s2": tuple(reversed(S2_BANDS)), "s1": ("VV", "VH")}, {}, step=1)
    result = run(PreprocessConfig(cube, stats=ckpt))
    assert open_cube(cube).norm["s2"] == full  # reordered to the cube's bands, same numbers
    assert set(result["sources"]) == {"s2"}  # only the cube's sources are written
    run(PreprocessConfig(cube, stats=tmp_path / "run"))  # a run directory works too
    assert open_cube(cube).norm["s2"] == full


def _one_line(err) -> str:
    msg = str(err.value)
    assert "\n" not in msg and msg
    return msg


def test_bad_input_gives_one_line_errors(ingested, tmp_path):
    with pytest.raises(DataError, match="does not exist") as err:
        run(PreprocessConfig(tmp_path / "missing.zarr"))
    _one_line(err)
    with pytest.raises(InputError, match="--stats .* does not exist") as err:
        PreprocessConfig(ingested, stats=tmp_path / "nope.zarr")
    _one_line(err)
    few = _stats_cube(tmp_path / "few.zarr", None, bands=("B02", "B03", "B04"))
    with pytest.raises(DataError, match=r"no s2 statistics for band\(s\) \['B05'") as err:
        run(PreprocessConfig(ingested, stats=few, out=tmp_path / "o.zarr"))
    _one_line(err)
    assert not (tmp_path / "o.zarr").exists()
    bare = tmp_path / "bare.zarr"
    import zarr

    zarr.open_group(str(bare), mode="w", zarr_format=3)
    with pytest.raises(InputError, match="not an aef cube") as err:
        run(PreprocessConfig(ingested, stats=bare))
    _one_line(err)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="corrupt") as err:
        run(PreprocessConfig(ingested, stats=junk))
    _one_line(err)
    sar = _stats_cube(tmp_path / "sar.zarr", NormStats("identity", S2_BANDS, (0.0,) * 10, (1.0,) * 10))
    with pytest.raises(DataError, match="transform") as err:
        run(PreprocessConfig(ingested, stats=sar))
    _one_line(err)
    (tmp_path / "taken.zarr").mkdir()
    with pytest.raises(InputError, match="already exists"):
        PreprocessConfig(ingested, out=tmp_path / "taken.zarr")
    with pytest.raises(InputError, match="not writable"):
        PreprocessConfig(ingested, out=tmp_path / "no-such-dir" / "o.zarr")
    assert open_cube(ingested).norm["s2"].transform == "log"  # nothing above touched the cube
    _no_temp_left(tmp_path / "o.zarr")


def test_cli_errors_are_one_line_exit_1(ingested, tmp_path):
    few = _stats_cube(tmp_path / "few.zarr", None, bands=("B02",))
    for args in ([str(tmp_path / "missing.zarr")], [str(ingested), "--stats", str(few), "--out", str(tmp_path / "o.zarr")]):
        proc = subprocess.run([sys.executable, "-m", "aefcli", "preprocess", *args], capture_output=True, text=True)
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "aefcli", "preprocess", str(ingested), "--out", str(tmp_path / "ok.zarr"),
                           "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    import json

    assert json.loads(proc.stdout.strip().splitlines()[-1])["sources"]["s2"] == open_cube(ingested).norm["s2"].to_dict()
