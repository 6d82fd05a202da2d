"""Tile listing speed: the vectorised `aef tiles` vs the first (per-tile) implementation, same ids.

    python benchmarks/tiles_listing.py [--areas world,europe] [--size 20480]

For each area, in one process: the listing alone (`tiles_for_geometry` vs the
reference in tests/aefcli/test_tiles_vectorised.py) and what `aef tiles --json`
does on top (WGS84 bounds of every tile + one JSON line each, written to
/dev/null), "before" then "after". Checks the two give the same ids and bounds.
Prints one JSON line per area.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "aefcli")]
AREAS = {"world": (-180.0, -80.0, 180.0, 84.0), "europe": (-10.0, 35.0, 30.0, 60.0), "flanders": (3.0, 51.0, 3.5, 51.3)}


def _emit(tiles, bounds, sink) -> None:
    for t, b in zip(tiles, bounds):
        sink.write(json.dumps(t.to_dict(b)) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--areas", default="world,europe")
    ap.add_argument("--size", type=int, default=20480)
    ap.add_argument("--skip-reference", action="store_true", help="time only the new code (the world reference takes minutes)")
    args = ap.parse_args()
    from test_tiles_vectorised import reference_bounds_wgs84, reference_tiles_for_geometry

    from aefcli.tiles import bbox_geometry, tiles_for_geometry, wgs84_bounds

    with open(os.devnull, "w") as sink:
        for name in args.areas.split(","):
            geom = bbox_geometry(AREAS[name])
            row = {"area": name, "bbox": AREAS[name], "tile_size_m": args.size}
            t0 = time.perf_counter()
            new = tiles_for_geometry(geom, args.size)
            t1 = time.perf_counter()
            new_bounds = wgs84_bounds(new).tolist()
            _emit(new, new_bounds, sink)
            t2 = time.perf_counter()
            row.update(tiles=len(new), after_list_s=round(t1 - t0, 2), after_cli_json_s=round(t2 - t0, 2))
            if not args.skip_reference:
                t0 = time.perf_counter()
                ref = reference_tiles_for_geometry(geom, args.size)
                t1 = time.perf_counter()
                ref_bounds = [reference_bounds_wgs84(t) for t in ref]
                _emit(ref, ref_bounds, sink)
                t2 = time.perf_counter()
                row.update(before_list_s=round(t1 - t0, 2), before_cli_json_s=round(t2 - t0, 2),
                           same_ids=[t.id for t in ref] == [t.id for t in new],
                           same_bounds=[tuple(b) for b in new_bounds] == ref_bounds)
                row.update(speedup_list=round(row["before_list_s"] / row["after_list_s"], 1),
                           speedup_cli_json=round(row["before_cli_json_s"] / row["after_cli_json_s"], 1))
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
