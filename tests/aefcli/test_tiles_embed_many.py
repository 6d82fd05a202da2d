"""Several global tiles in one `aef embed` process (--tile A --tile B, --tiles-from FILE|-).

On the sample world split into its 2 x 2 block of 400 m tiles (the fixture of
test_global_tiles): `aef tiles --ids | aef embed --tiles-from -` fills every
OUT/ID.zarr in one process, equal to one store over the world; a re-run is a
no-op; half-finished tiles resume with only their missing chunks; a bad tile in
the list is reported and the others still finish.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from aefcli.cli import app
from aefcli.embed import run
from aefcli.embed_tiles import parse_tile_lines, read_tile_ids
from aefcli.errors import InputError
from aefcli.index import open_mosaic
from aefcli.io.embedding_store import open_embeddings, store_attrs
from test_global_tiles import LAYOUT, PERIOD, ROOT, TILE_M, WORLD, _cfg, _index, _inner_bbox, world  # noqa: F401

runner = CliRunner()
FAR_TILE = "32631_E600000_N5600000_S400"  # on the 400 m grid, far outside the world's cube


def _embed_args(world, out) -> list[str]:  # noqa: F811
    d, cube, ckpt, _, _ = world
    return ["embed", "--checkpoint", str(ckpt), "--cube", str(cube), "--period", PERIOD, "--out", str(out),
            "--window", str(LAYOUT["window"]), "--overlap", str(LAYOUT["overlap"]), "--chunk", str(LAYOUT["chunk"]), "--workers", "1"]


def _lines(res) -> list[dict]:
    return [json.loads(line) for line in res.stdout.splitlines() if line.strip()]


def test_tiles_ids_piped_into_one_embed_process_equal_one_store(world):  # noqa: F811
    d, cube, ckpt, bbox, tiles = world
    out = d / "many"
    area = ",".join(map(str, _inner_bbox()))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    aef = f"{sys.executable} -m aefcli"
    cmd = (f"{aef} tiles --bbox={area} --tile-size {TILE_M} --ids | "
           f"{aef} -q --json {' '.join(_embed_args(world, out))} --tiles-from -")
    proc = subprocess.run(cmd, shell=True, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    per_tile, total = lines[:-1], lines[-1]
    assert [r["tile"] for r in per_tile] == [t.id for t in tiles]  # in list order, one line as each finishes
    chunks = (TILE_M // 10 // LAYOUT["chunk"] + 1) ** 2  # 40 px tiles in 16 px chunks: 3 x 3
    assert all(r["complete"] and r["tiles_done"] == chunks for r in per_tile), per_tile
    assert total == {**total, "tiles": 4, "complete": 4, "computed": 4 * chunks, "failed": []}
    for t in tiles:
        attrs = store_attrs(out / f"{t.id}.zarr")
        assert attrs["complete"] and attrs["tile"] == t.id

    assert _index(out)["items"] == 4
    one = open_embeddings(run(_cfg(world, d / "one-many.zarr", bbox=bbox))["store"])
    mosaic = open_mosaic(out)
    assert mosaic.shape == one.shape == (WORLD, WORLD, 64)
    assert np.isfinite(one.values).all(-1).mean() > 0.9
    np.testing.assert_allclose(mosaic.values, one.values, atol=1e-5, equal_nan=True)

    # the same command again: every tile is a no-op
    again = subprocess.run(cmd, shell=True, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.splitlines()[-1])["computed"] == 0
    # recognised from the store's attributes and the checkpoint header, before any model or cube is opened
    assert all(json.loads(line).get("finished_before") for line in again.stdout.splitlines()[:-1])


def test_half_finished_tiles_resume_with_only_their_missing_chunks(world):  # noqa: F811
    d, cube, ckpt, bbox, tiles = world
    out = d / "half"
    flags = [x for t in tiles[:2] for x in ("--tile", t.id)]
    first = runner.invoke(app, ["--json", *_embed_args(world, out), *flags, "--tiles", "0/2"])
    assert first.exit_code == 0, first.output
    rows = _lines(first)
    assert all(not r["complete"] and r["tiles_done"] == 5 for r in rows[:-1]), rows  # chunks 0, 2, 4, 6, 8 of 9
    second = runner.invoke(app, ["--json", *_embed_args(world, out), *flags])
    rows = _lines(second)
    assert second.exit_code == 0, second.output
    assert [(r["tile"], r["tiles_done"], r["complete"]) for r in rows[:-1]] == [(t.id, 4, True) for t in tiles[:2]]
    assert rows[-1]["computed"] == 8 and rows[-1]["complete"] == 2

    # the cheap completion check: the same settings are finished; anything else takes the full run
    from dataclasses import replace

    from aefcli.embed_tiles import finished
    from embed_world import make_checkpoint

    cfg = _cfg(world, out, tile_id=tiles[0].id)
    assert finished(cfg, tiles[0].id) == {"store": str(out / f"{tiles[0].id}.zarr"), "complete": True, "tiles_done": 0,
                                          "tiles_total": 9, "finished_before": True}
    other = make_checkpoint(d / "run-other", cube, seed=1)
    for changed in (dict(dtype="int8"), dict(window=48), dict(overlap=4), dict(chunk=20), dict(period="2024-02-01/2025-01-01"),
                    dict(checkpoint=other), dict(overwrite=True), dict(dry_run=True)):
        assert finished(replace(cfg, **changed), tiles[0].id) is None, changed
    assert finished(cfg, tiles[2].id) is None  # never embedded here
    code = ("import sys; from pathlib import Path; from aefcli.embed import EmbedConfig; from aefcli.embed_tiles import finished; "
            f"cfg = EmbedConfig(checkpoint=Path({str(cfg.checkpoint)!r}), out=Path({str(out)!r}), period={PERIOD!r}, cube=Path({str(cube)!r}), "
            f"tile_id={tiles[0].id!r}, window={LAYOUT['window']}, overlap={LAYOUT['overlap']}, chunk={LAYOUT['chunk']}); "
            f"assert finished(cfg, {tiles[0].id!r}); print(sorted(m for m in ('torch', 'xarray', 'dask', 'zarr') if m in sys.modules))")
    light = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    assert light.returncode == 0 and light.stdout.strip() == "[]", light.stdout + light.stderr


def test_a_bad_tile_is_reported_and_the_others_finish(world, tmp_path):  # noqa: F811
    d, cube, ckpt, bbox, tiles = world
    out = d / "bad"
    listing = tmp_path / "tiles.txt"
    # the table form of `aef tiles` and a --json line are accepted too; repeats are dropped
    listing.write_text(f"# region\n{tiles[0].id}  32631  3.0 51.0 3.1 51.1\n{FAR_TILE}\n\n"
                       + json.dumps({"id": tiles[1].id, "epsg": 32631}) + f"\n{tiles[0].id}\n")
    res = runner.invoke(app, ["--json", *_embed_args(world, out), "--tiles-from", str(listing)])
    assert res.exit_code == 1
    assert "1 of 3 tiles failed" in str(res.exception) and FAR_TILE in str(res.exception)
    rows = _lines(res)
    assert [r["tile"] for r in rows[:-1]] == [tiles[0].id, FAR_TILE, tiles[1].id]
    assert "does not overlap cube" in rows[1]["error"]
    assert rows[-1]["complete"] == 2 and store_attrs(out / f"{tiles[1].id}.zarr")["complete"]
    assert not (out / f"{FAR_TILE}.zarr").exists()


def test_tile_list_parsing_and_errors(tmp_path):
    assert parse_tile_lines(["32631_E512000_N5652480", " 32631_E491520_N5672960 extra", "", "# c", "32631_E512000_N5652480"]) == [
        "32631_E512000_N5652480", "32631_E491520_N5672960"]
    with pytest.raises(InputError, match="line 2 of the tile list"):
        parse_tile_lines(["32631_E512000_N5652480", "31UDS"])
    with pytest.raises(InputError, match="without an \"id\""):
        parse_tile_lines(['{"epsg": 32631}'])
    with pytest.raises(InputError, match="cannot read the tile list"):
        read_tile_ids(tmp_path / "missing.txt")


def test_cli_tile_list_errors_are_one_line(world, tmp_path):  # noqa: F811
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    res = runner.invoke(app, [*_embed_args(world, tmp_path / "o"), "--tiles-from", str(empty)])
    assert res.exit_code == 1 and "is empty" in str(res.exception)
    res = runner.invoke(app, [*_embed_args(world, tmp_path / "o"), "--tiles-from", "-", "--bbox", "3,51,3.1,51.1"], input=world[4][0].id + "\n")
    assert res.exit_code == 1 and "exactly one area" in str(res.exception)
    assert not (tmp_path / "o").exists()
