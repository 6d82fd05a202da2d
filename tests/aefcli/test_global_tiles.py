"""Global runs on the sample world: 4 tiles via the per-tile path == one store; a killed tile job resumes.

The 80 px sample world (centred on E500000 N5630000, EPSG:32631) is exactly
the 2 x 2 block of 400 m tiles round that corner, so every tile is full of data. The
tiles are filled as a tile job would (`aef embed --tile ID`), one of them killed
mid-run with SIGKILL and the pipeline re-run; `aef index` lists only finished
tiles, and the index mosaic equals a single store over the world.
"""

from __future__ import annotations

import json
import math
import os
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
from aefcli.index import open_index, open_mosaic
from aefcli.io.embedding_store import open_embeddings, store_attrs
from aefcli.tiles import tiles_for_bbox
from embed_world import make_checkpoint

PERIOD = "2024-01-01/2025-01-01"
WORLD = 80  # pixels: an 800 m square from E499600 N5630400
TILE_M = 400  # 40 px tiles: the world is exactly 2 x 2 of them
LAYOUT = dict(window=32, overlap=8, chunk=16)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from aefcli import ingest
    from aefcli.sampleworld import write_sample_world

    d = tmp_path_factory.mktemp("global")
    w = write_sample_world(d / "world", size=WORLD, dates=4)
    bbox = ",".join(f"{v:.7f}" for v in w.bbox_wgs84)
    cube = d / "cube.zarr"
    ingest.run(ingest.IngestConfig(stac=str(w.catalog), collections=("sentinel-2-l2a",), bbox=bbox, period=PERIOD,
                                   out=cube, command="test"))
    ckpt = make_checkpoint(d / "run", cube)
    tiles = tiles_for_bbox(_inner_bbox(), tile_size_m=TILE_M)
    return d, cube, ckpt, bbox, tiles


def _inner_bbox(inset_m: float = 10.0) -> tuple[float, ...]:
    """WGS84 bbox just inside the world's UTM square (its lon/lat bbox would graze the neighbour tiles)."""
    from pyproj import Transformer

    tr = Transformer.from_crs(32631, 4326, always_xy=True)
    half = WORLD * 10 / 2
    w, s = tr.transform(500_000 - half + inset_m, 5_630_000 - half + inset_m)
    e, n = tr.transform(500_000 + half - inset_m, 5_630_000 + half - inset_m)
    return (w, s, e, n)


def _cfg(world, out: Path, **kw) -> EmbedConfig:
    d, cube, ckpt, bbox, _ = world
    return EmbedConfig(**{**dict(checkpoint=ckpt, out=out, period=PERIOD, cube=cube, workers=1, **LAYOUT), **kw})


def _tile_cli(world, out: Path, tile_id: str) -> list[str]:
    d, cube, ckpt, _, _ = world
    return [sys.executable, "-m", "aefcli", "-q", "--json", "embed", "--checkpoint", str(ckpt), "--cube", str(cube),
            "--tile", tile_id, "--period", PERIOD, "--out", str(out), "--window", str(LAYOUT["window"]),
            "--overlap", str(LAYOUT["overlap"]), "--chunk", str(LAYOUT["chunk"]), "--workers", "1"]


def _index(out: Path) -> dict:
    res = CliRunner().invoke(app, ["index", "--json", str(out)])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_the_world_spans_four_tiles(world):
    tiles = world[4]
    assert len(tiles) == 4 and len({t.id for t in tiles}) == 4
    assert {t.epsg for t in tiles} == {32631}
    xs, ys = sorted({t.x0 for t in tiles}), sorted({t.y0 for t in tiles})
    assert xs[1] - xs[0] == TILE_M and ys[1] - ys[0] == TILE_M  # a 2 x 2 block


def test_killed_tile_resumes_and_four_tiles_equal_one_store(world):
    d, cube, ckpt, bbox, tiles = world
    out = d / "tiles"
    victim = tiles[-1]
    others = [t for t in tiles if t.id != victim.id]
    for t in others:
        assert run(_cfg(world, out, tile_id=t.id))["complete"]

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    store = out / f"{victim.id}.zarr"
    proc = subprocess.Popen(_tile_cli(world, out, victim.id), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    chunks, deadline = store / "embedding" / "c", time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if chunks.is_dir() and any(p.is_file() and not p.name.endswith(".partial") for p in chunks.rglob("*")):
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not store_attrs(store).get("complete"), "the tile job finished before it could be killed"

    listed = _index(out)
    assert listed["items"] == 3 and any(victim.id in s for s in listed["skipped"]), listed
    assert sorted(e.id for e in open_index(out)) == sorted(t.id for t in others)

    # the pipeline again, every tile: finished tiles are no-ops, the killed one computes only what is missing
    total = math.ceil(TILE_M / 10 / LAYOUT["chunk"]) ** 2
    for t in tiles:
        r = run(_cfg(world, out, tile_id=t.id))
        assert r["complete"]
        if t.id == victim.id:
            assert 0 < r["tiles_done"] < total, r
        else:
            assert r["tiles_done"] == 0, (t.id, r)
    listed = _index(out)
    assert listed["items"] == 4 and not listed["skipped"]

    one = open_embeddings(run(_cfg(world, d / "one.zarr", bbox=bbox))["store"])
    mosaic = open_mosaic(out)
    assert one.shape == mosaic.shape == (WORLD, WORLD, 64)
    np.testing.assert_array_equal(mosaic.x, one.x)
    np.testing.assert_array_equal(mosaic.y, one.y)
    part, ref = mosaic.values, one.values
    assert np.isfinite(ref).all(-1).mean() > 0.9  # mostly valid pixels: the comparison means something
    np.testing.assert_array_equal(np.isnan(part), np.isnan(ref))
    # same windows reach every pixel (the lattice is anchored to absolute coordinates)
    np.testing.assert_allclose(part, ref, atol=1e-5, equal_nan=True)
    # no seam where the tiles meet (row/col 40): cosine across within 0.01 of inside
    cos_x = np.nansum(part[:, :-1] * part[:, 1:], -1)
    cos_y = np.nansum(part[:-1] * part[1:], -1)
    edge = np.nanmean(np.concatenate([cos_x[:, 39], cos_y[39]]))
    inside = np.nanmean(np.concatenate([np.delete(cos_x, 39, 1).ravel(), np.delete(cos_y, 39, 0).ravel()]))
    assert abs(inside - edge) < 0.01, (inside, edge)


def test_tiles_estimate_with_a_checkpoint_times_the_model(world):
    d, cube, ckpt, bbox, tiles = world
    area = ",".join(map(str, _inner_bbox()))
    base = ["tiles", "--json", "--bbox", area, "--tile-size", str(TILE_M), "--estimate"]
    res = CliRunner().invoke(app, [*base, "--checkpoint", str(ckpt), "--window", "32", "--overlap", "8", "--chunk", "16", "--frames", "4"])
    assert res.exit_code == 0, res.output
    est = json.loads(res.stdout.strip().splitlines()[-1])
    assert est["tiles"] == 4 and est["bytes_int8"] == 4 * 40 * 40 * 64
    # every window `aef embed --tile` runs for these tiles (each once, by the chunk that owns it)
    from aefcli.embed import plan

    windows = sum(plan(_cfg(world, d / "est", tile_id=t.id)).windows for t in tiles)
    assert est["windows"] == windows
    assert est["seconds_per_window"] > 0 and abs(est["compute_s"] - windows * est["seconds_per_window"]) < 0.1
    assert est["calibration"]["frames"] == 4 and est["calibration"]["window"] == 32
    plain = CliRunner().invoke(app, base)  # without a checkpoint: sizes only, no timing
    assert plain.exit_code == 0 and "compute_s" not in json.loads(plain.stdout.strip().splitlines()[-1])
    bad = CliRunner().invoke(app, [*base, "--checkpoint", str(d / "missing")])
    assert bad.exit_code == 1
