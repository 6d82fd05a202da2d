"""Windows crossing a global tile's edge are computed once for both neighbours (OUT/.aef-edges).

Two neighbouring 640 m tiles (64 px, window 32, chunk 32) on one cube: embedded
through the tile-list path they run every window of the pair once; the stores are
bitwise the same as without sharing and whichever tile runs first; a run killed
after saving one segment resumes from it.
"""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np

from aefcli.embed import plan, run
from aefcli.embed_tiles import run_tiles
from aefcli.io.embedding_store import open_embeddings
from aefcli.tiling import Layout, TileEdges, chunk_grid, owned_windows
from test_embed_tiles import LEFT, RIGHT, _cfg, world  # noqa: F401

PAIR = (LEFT, RIGHT)


def _run_pair(world, out, order=PAIR, **kw):  # noqa: F811
    shutil.rmtree(out, ignore_errors=True)
    results = {}
    kw = {"edge_tiles": PAIR, **kw}  # the cube also covers the tiles below: leave them no sums
    total = run_tiles(_cfg(world, out, tile_id=order[0], dtype="int8", **kw), list(order),
                      on_result=lambda r: results.__setitem__(r["tile"], r))
    assert total["complete"] == 2, total
    return results, {t: open_embeddings(out / f"{t}.zarr").values for t in PAIR}


def _unique_windows(world) -> int:  # noqa: F811
    """Windows of the 64 x 128 px pair as one area (LEFT's lattice, RIGHT starts at column 64)."""
    lay = plan(_cfg(world, world[0] / "u", tile_id=LEFT)).job.layout
    return len(lay.windows((0, 64), (0, 128)))


def test_tile_edges_split_a_tiles_windows_into_interior_and_shared_segments():
    size, lay = 64, Layout(32, 8, 32, origin=(-563008, 50048))  # LEFT's lattice
    grid = TileEdges(size, 2)
    right = Layout(32, 8, 32, origin=(lay.origin[0], lay.origin[1] + size))
    segs_left, segs_right = grid.segments(lay, (size, size)), grid.segments(right, (size, size))
    every = lay.windows((0, size), (0, size))
    interior = [w for c in chunk_grid((size, size), 32) for w in owned_windows(lay, (size, size), c, grid)]
    assert sorted(interior + [w for ws in segs_left.values() for w in ws]) == sorted(every)  # each window once
    for key, wins in segs_left.items():
        assert len({grid.segment(lay, *w) for w in wins}) == 1 and (0, 0) in grid.reach(lay, *wins[0])
    shared = {k for k in segs_left if (0, 1) in grid.reach(lay, *segs_left[k][0])}  # across LEFT's right edge
    assert shared and shared <= set(segs_right)
    for k in shared:  # both tiles name the same windows (absolute positions) in the same order
        absolute = [(r + lay.origin[0], c + lay.origin[1]) for r, c in segs_left[k]]
        assert absolute == [(r + right.origin[0], c + right.origin[1]) for r, c in segs_right[k]]
    assert not TileEdges(16, 1).fits(lay)  # a support wider than a tile: no sharing


def test_neighbours_compute_each_window_once_and_match_unshared_stores(world):  # noqa: F811
    d = world[0]
    unique = _unique_windows(world)
    shared, stores = _run_pair(world, d / "shared")
    assert sum(r["windows"] for r in shared.values()) == unique  # no window run twice
    assert not (d / "shared" / ".aef-edges").exists()  # consumed and deleted
    alone, alone_stores = _run_pair(world, d / "alone", share_edges=False)
    assert sum(r["windows"] for r in alone.values()) > unique  # each tile runs its edge windows itself
    assert shared[LEFT]["windows"] == alone[LEFT]["windows"] and shared[RIGHT]["windows"] < alone[RIGHT]["windows"]
    flipped, flipped_stores = _run_pair(world, d / "flipped", order=PAIR[::-1])
    assert sum(r["windows"] for r in flipped.values()) == unique
    assert flipped[RIGHT]["windows"] == alone[RIGHT]["windows"] and flipped[LEFT]["windows"] < alone[LEFT]["windows"]
    for t in PAIR:
        np.testing.assert_array_equal(stores[t], alone_stores[t])  # bitwise: int8 through the same float sums
        np.testing.assert_array_equal(stores[t], flipped_stores[t])
        assert np.isfinite(stores[t]).all(-1).mean() > 0.9


def test_a_killed_run_resumes_from_its_saved_edge_sums(world):  # noqa: F811
    from aefcli.embed_task import compute_windows
    from aefcli.io.embedding_store import create_store

    d = world[0]
    _, reference = _run_pair(world, d / "ref")
    out = d / "killed"
    shutil.rmtree(out, ignore_errors=True)
    cfg = _cfg(world, out, tile_id=LEFT, dtype="int8", edge_tiles=PAIR)
    p = plan(cfg)
    create_store(cfg.store, p.geobox, list(range(64)), cfg.dtype, cfg.chunk, p.attrs)
    # what a run of LEFT killed early leaves: its top-right chunk's windows, edge segments included
    corner = next(c for c in p.chunks if (c.i, c.j) == (0, 1))
    saved = compute_windows(p.job, corner, [(c.i, c.j) for c in p.chunks])
    edges = out / ".aef-edges"
    assert saved["windows"] > 0 and len(list(edges.rglob("*.npy"))) >= 2  # LEFT's own sums and RIGHT's
    right = run(replace(cfg, tile_id=RIGHT))  # RIGHT first: uses the sums LEFT saved for it
    left = run(cfg)  # LEFT resumes: its saved parts and segments are not run again
    assert right["complete"] and left["complete"]
    assert saved["windows"] + right["windows"] + left["windows"] == _unique_windows(world)
    for t in PAIR:
        np.testing.assert_array_equal(open_embeddings(out / f"{t}.zarr").values, reference[t])
    assert not edges.exists()


def test_a_tile_alone_still_completes_and_equals_the_shared_run(world):  # noqa: F811
    tile = LEFT
    d = world[0]
    _, reference = _run_pair(world, d / "ref-alone")
    out = d / "one-tile"
    shutil.rmtree(out, ignore_errors=True)
    r = run(_cfg(world, out, tile_id=tile, dtype="int8", edge_tiles=(tile,)))
    assert r["complete"]
    np.testing.assert_array_equal(open_embeddings(r["store"]).values, reference[tile])
    assert not (out / ".aef-edges").exists()  # no neighbour on the list: nothing left for one


def test_tiles_run_alone_leave_sums_for_neighbours_inside_the_cube_and_index_notes_them(world):  # noqa: F811
    from typer.testing import CliRunner

    from aefcli.cli import app

    d = world[0]
    alone, _ = _run_pair(world, d / "alone-ref", share_edges=False)
    out = d / "separate"
    shutil.rmtree(out, ignore_errors=True)
    left = run(_cfg(world, out, tile_id=LEFT, dtype="int8"))  # as one SLURM task would: no tile list
    below = {p.name for p in (out / ".aef-edges").glob("*/*")}
    assert len(below) == 3  # RIGHT, and the two tiles below: the cube covers them (none above or left)
    right = run(_cfg(world, out, tile_id=RIGHT, dtype="int8"))
    assert left["windows"] == alone[LEFT]["windows"] and right["windows"] < alone[RIGHT]["windows"]
    assert len({p.name for p in (out / ".aef-edges").glob("*/*")}) == 2  # RIGHT's own sums were deleted
    res = CliRunner().invoke(app, ["index", str(out)])
    assert res.exit_code == 0 and "edge sums" in res.stderr and "not embedded yet" in res.stderr
