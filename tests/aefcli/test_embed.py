"""`aef embed`: seams, window-size agreement, resume after kill -9, shares, int8, bad inputs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from aefcli.cli import app
from aefcli.embed import EmbedConfig, run
from aefcli.io.embedding_store import open_embeddings
from aefcli.tiling import Layout
from embed_world import bbox_of, make_checkpoint, make_cube

SIZE = 96
PERIOD = "2024-01-01/2025-01-01"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("world")
    cube = make_cube(d / "cube.zarr", size=SIZE)
    ckpt = make_checkpoint(d / "run", cube)
    return d, cube, ckpt


def _cfg(world, out, **kw):
    d, cube, ckpt = world
    base = dict(checkpoint=ckpt, out=out, period=PERIOD, cube=cube, bbox=bbox_of(SIZE), window=32, overlap=8, chunk=32)
    return EmbedConfig(**{**base, **kw})


def _embed(world, name, **kw) -> np.ndarray:
    out = world[0] / name
    shutil.rmtree(out, ignore_errors=True)
    result = run(_cfg(world, out, **kw))
    assert result["complete"]
    return open_embeddings(out).values


def _seam_gap(e: np.ndarray, lay: Layout) -> float:
    """mean neighbour cosine inside tiles minus across tile/window/chunk borders (rows and cols)."""
    gaps = []
    across, inside = [], []
    for axis in (0, 1):
        a = np.moveaxis(e, axis, 0)
        cos = (a[:-1] * a[1:]).sum(-1)  # pair (k, k+1) along this axis
        borders = {lay.chunk * k for k in range(1, SIZE // lay.chunk + 1)}
        for s in lay.starts(axis, 0, SIZE):  # window edges where its weight starts / ends
            borders |= {s + lay.trim, s + lay.window - lay.trim}
        mask = np.zeros(cos.shape[0], bool)
        mask[[b - 1 for b in borders if 0 < b < SIZE]] = True
        across.append(cos[mask].ravel())
        inside.append(cos[~mask].ravel())
    gaps.append(np.nanmean(np.concatenate(inside)) - np.nanmean(np.concatenate(across)))
    return float(gaps[0])


def test_no_seams_across_tile_borders(world):
    origin = (-563000, 50000)  # the cube's top-left in absolute 10 m pixels
    blended = _embed(world, "blend.zarr")
    gap = _seam_gap(blended, Layout(32, 8, 32, origin=origin))
    assert abs(gap) < 0.01, f"blended tiles show a seam: inside - across = {gap:.4f}"
    # the measure has teeth: plain non-overlapping windows do show their seams
    naive = _embed(world, "naive.zarr", overlap=0)
    assert _seam_gap(naive, Layout(32, 0, 32, origin=origin)) > 0.02
    np.testing.assert_allclose(np.linalg.norm(blended, axis=-1), 1.0, atol=1e-5)


def test_window_64_and_128_agree(world):
    e64 = _embed(world, "w64.zarr", window=64, overlap=16, chunk=48)
    e128 = _embed(world, "w128.zarr", window=128, overlap=32, chunk=48)
    cos = np.nanmean((e64 * e128).sum(-1))
    assert cos > 0.99, cos


def test_attributes_crs_and_partial_bbox(world):
    d, cube, ckpt = world
    out = d / "attrs.zarr"
    shutil.rmtree(out, ignore_errors=True)
    run(_cfg(world, out, bbox=bbox_of(SIZE, margin_px=20), command="aef embed --test"))
    import xarray as xr

    ds = xr.open_zarr(out, decode_coords="all", consolidated=False)
    assert ds.rio.crs.to_epsg() == 32631
    attrs = ds.attrs["aef:embedding"]
    assert attrs["complete"] and attrs["period"] == PERIOD and attrs["command"] == "aef embed --test"
    assert attrs["model"]["hash"] and attrs["model"]["config"]["sources"][0]["name"] == "s2"
    assert attrs["source_items"]["s2"][0].startswith("S2_2024") and attrs["aef_version"]
    assert ds.sizes["y"] < SIZE and ds.sizes["x"] < SIZE  # the bbox, not the whole cube
    # the same pixels as the full run: the lattice is anchored to absolute coordinates
    full = _embed(world, "full.zarr")
    x0 = int(round((float(ds.x[0]) - 500_005) / 10))
    y0 = int(round((5_629_995 - float(ds.y[0])) / 10))
    sub = open_embeddings(out).values
    np.testing.assert_allclose(sub, full[y0 : y0 + sub.shape[0], x0 : x0 + sub.shape[1]], atol=1e-6)


def test_int8_round_trip_bounds(world):
    f = _embed(world, "f32.zarr")
    q = _embed(world, "i8.zarr", dtype="int8")
    norm = np.linalg.norm(q, axis=-1)
    assert np.abs(norm - 1).max() < 0.01
    cos = np.clip((f * q).sum(-1) / norm, -1, 1)
    angle = np.degrees(np.arccos(cos))
    assert angle.max() < 2.0 and angle.mean() < 1.0, (angle.max(), angle.mean())


def test_shares_fill_the_same_store(world):
    d = world[0]
    whole = _embed(world, "whole8.zarr", dtype="int8")
    out = d / "shared8.zarr"
    shutil.rmtree(out, ignore_errors=True)
    r0 = run(_cfg(world, out, dtype="int8", shares=(0, 2)))
    assert not r0["complete"] and r0["tiles_done"] == 5
    r1 = run(_cfg(world, out, dtype="int8", shares=(1, 2)))
    assert r1["complete"] and r1["tiles_done"] == 4
    np.testing.assert_array_equal(open_embeddings(out).values, whole)
    again = run(_cfg(world, out, dtype="int8"))  # a finished store is a no-op
    assert again["tiles_done"] == 0


def _cli(world, out, *extra):
    d, cube, ckpt = world
    return [sys.executable, "-m", "aefcli", "-q", "embed", "--checkpoint", str(ckpt), "--cube", str(cube),
            "--bbox", bbox_of(SIZE), "--period", PERIOD, "--out", str(out), "--tile", "32", "--overlap", "8",
            "--chunk", "16", "--dtype", "int8", "--workers", "1", *extra]


def test_kill_9_then_rerun_gives_the_identical_store(world):
    d = world[0]
    reference = d / "ref_kill.zarr"
    out = d / "killed.zarr"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(reference, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(_cli(world, reference), check=True, env=env, capture_output=True)
    proc = subprocess.Popen(_cli(world, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    chunks = out / "embedding" / "c"
    deadline = time.time() + 60
    rng = np.random.default_rng()
    target = int(rng.integers(3, 20))  # of 36 chunks: a random point mid-run
    while time.time() < deadline and proc.poll() is None:
        if chunks.is_dir() and sum(1 for _ in chunks.rglob("*")) >= target:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    attrs = json.loads((out / "zarr.json").read_text())["attributes"]["aef:embedding"]
    assert not attrs["complete"], "the run finished before it could be killed"
    done = subprocess.run(_cli(world, out, "--json"), check=True, env=env, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["complete"] and 0 < result["tiles_done"] < 36
    np.testing.assert_array_equal(open_embeddings(out).values, open_embeddings(reference).values)


runner = CliRunner()


def _invoke(args):
    return runner.invoke(app, args)


def test_dry_run_prints_area_tiles_bytes_and_estimate(world):
    d, cube, ckpt = world
    out = d / "dry.zarr"
    res = runner.invoke(app, ["embed", "--json", "--checkpoint", str(ckpt), "--cube", str(cube), "--bbox", bbox_of(SIZE),
                              "--period", PERIOD, "--out", str(out), "--tile", "32", "--overlap", "8", "--chunk", "32",
                              "--dtype", "int8", "--dry-run"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout.strip().splitlines()[-1])
    assert info["tiles"] == 9 and info["output_bytes"] == SIZE * SIZE * 64
    assert abs(info["km2"] - SIZE * SIZE * 100 / 1e6) < 1e-6 and info["estimate_s"] > 0
    assert not out.exists()


def test_preview_png_and_geotiff(world):
    d, cube, ckpt = world
    out = d / "prev.zarr"
    shutil.rmtree(out, ignore_errors=True)
    result = run(_cfg(world, out, preview=d / "prev.png"))
    import rasterio
    from PIL import Image

    img = np.asarray(Image.open(d / "prev.png"))
    assert img.shape == (SIZE, SIZE, 3) and img.std() > 10  # structure, not a flat colour
    with rasterio.open(d / "prev.tif") as src:
        assert src.crs.to_epsg() == 32631 and src.count == 3 and src.transform.c == 500_000
    assert result["preview"][0].endswith("prev.png")


def _base_args(world, out):
    d, cube, ckpt = world
    return ["embed", "--checkpoint", str(ckpt), "--cube", str(cube), "--bbox", bbox_of(SIZE), "--period", PERIOD,
            "--out", str(out), "--tile", "32", "--overlap", "8", "--chunk", "32"]


def _one_line_error(res, *words):
    assert res.exit_code == 1, res.output
    msg = str(res.exception)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_bad_bbox_outside_the_cube(world):
    args = _base_args(world, world[0] / "bad1.zarr")
    args[args.index("--bbox") + 1] = "10.0,40.0,10.1,40.1"
    _one_line_error(_invoke(args), "outside cube")


def test_period_without_observations(world):
    args = _base_args(world, world[0] / "bad2.zarr")
    args[args.index("--period") + 1] = "2019-01-01/2020-01-01"
    _one_line_error(_invoke(args), "period", "2024")


def test_checkpoint_of_another_band_table(world, tmp_path):
    d, cube, ckpt = world
    other = make_checkpoint(tmp_path / "other", cube, bands=("B02", "B03", "B04", "B08"))
    args = _base_args(world, d / "bad3.zarr")
    args[args.index("--checkpoint") + 1] = str(other)
    _one_line_error(_invoke(args), "bands", "B08")


def test_existing_store_from_other_arguments_needs_overwrite(world):
    out = world[0] / "bad4.zarr"
    shutil.rmtree(out, ignore_errors=True)
    assert _invoke(_base_args(world, out)).exit_code == 0
    args = _base_args(world, out)
    args[args.index("--overlap") + 1] = "4"
    _one_line_error(_invoke(args), "--overwrite")
    assert _invoke(args + ["--overwrite"]).exit_code == 0
    assert open_embeddings(out).attrs["aef:embedding"]["tiling"]["overlap"] == 4
