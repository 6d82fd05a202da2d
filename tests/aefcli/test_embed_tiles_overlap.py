"""A tile list in one process overlaps its tiles: the next tile's tasks fill the idle tail of the previous one.

A 2 x 2 block of 640 m tiles (the cube of test_embed_tiles covers it) with 2
workers: the next tile opens before the previous one is done, at most IN_FLIGHT
tiles at a time, every window of the block runs once, and the stores are
bitwise those of one tile after another.
"""

from __future__ import annotations

import re
import shutil

import numpy as np

from aefcli import embed_tiles
from aefcli.embed import plan
from aefcli.embed_tiles import run_tiles
from aefcli.io.embedding_store import open_embeddings
from test_embed_tiles import LEFT, RIGHT, _cfg, world  # noqa: F401

BLOCK = (LEFT, RIGHT, "32631_E500480_N5628800_S640", "32631_E501120_N5628800_S640")


def _run(world, name, capsys):  # noqa: F811
    """(totals, per-tile results, stores, events): events are ("open", tile) / ("done", tile) in time order."""
    from aefcli import console

    out = world[0] / name
    shutil.rmtree(out, ignore_errors=True)
    rows = []

    def done(r):
        rows.append(r)
        console.say(f"DONE {r['tile']}")

    capsys.readouterr()
    total = run_tiles(_cfg(world, out, tile_id=BLOCK[0], dtype="int8", workers=2), list(BLOCK), on_result=done)
    assert total["complete"] == 4 and [r["tile"] for r in rows] == list(BLOCK), rows  # reported in list order
    assert not (out / ".aef-edges").exists()
    err = capsys.readouterr().err  # the progress bar shares stderr: find the messages inside it
    events = [("open", m[1]) if m[1] else ("done", m[2]) for m in re.finditer(r"embedding .*? into \S*/(\S+)\.zarr|DONE (\S+)", err)]
    return total, rows, {t: open_embeddings(out / f"{t}.zarr").values for t in BLOCK}, events


def _most_in_flight(events) -> int:
    live, most = set(), 0
    for kind, tile in events:
        (live.add if kind == "open" else live.discard)(tile)
        most = max(most, len(live))
    return most


def test_tiles_overlap_and_match_one_after_another(world, monkeypatch, capsys):  # noqa: F811
    lay = plan(_cfg(world, world[0] / "u", tile_id=LEFT)).job.layout
    unique = len(lay.windows((0, 128), (0, 128)))  # the block as one area, in LEFT's lattice
    total, rows, stores, events = _run(world, "overlap", capsys)
    assert sum(r["windows"] for r in rows) == unique
    assert len(events) == 8 and _most_in_flight(events) == 2, events  # the next tile opens before the last one is done
    monkeypatch.setattr(embed_tiles, "IN_FLIGHT", 1)
    _, seq_rows, seq_stores, seq_events = _run(world, "sequential", capsys)
    assert _most_in_flight(seq_events) == 1, seq_events
    assert sum(r["windows"] for r in seq_rows) == unique
    for t in BLOCK:
        np.testing.assert_array_equal(stores[t], seq_stores[t])


def test_a_failing_tile_in_flight_does_not_stop_the_others(world, tmp_path):  # noqa: F811
    far = "32631_E600320_N5600000_S640"  # on the grid, outside the cube
    rows = []
    total = run_tiles(_cfg(world, tmp_path / "o", tile_id=LEFT, workers=2), [LEFT, far, RIGHT], on_result=rows.append)
    assert [r["tile"] for r in rows] == [LEFT, far, RIGHT]
    assert "does not overlap cube" in rows[1]["error"] and total["complete"] == 2 and len(total["failed"]) == 1
