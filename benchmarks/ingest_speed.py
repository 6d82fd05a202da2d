"""Ingest wall time vs a bare odc.stac.load(...).to_zarr(...), and peak RSS for 1x vs 4x area.

Usage: python benchmarks/ingest_speed.py [--size 512] [--dates 6]

Builds a synthetic-valued COG catalog (tests/aefcli/fault_server.make_catalog, real GDAL COGs),
serves it over HTTP Range on 127.0.0.1, then times in this same run:
  bare:   odc.stac.load(items, geobox, chunks) -> .to_zarr()  (no masks, offsets or stats)
  ingest: aefcli.ingest.run (per-frame loads, masks, offsets, stats, provenance)
and the peak RSS of `aef ingest` subprocesses over an area and a 4x area.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "aefcli"))


def _bbox(size: int) -> str:
    from fault_server import bbox_of

    return bbox_of(size)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--dates", type=int, default=6)
    args = ap.parse_args()
    from fault_server import make_catalog

    from aefcli.io.local_services import serve_files

    tmp = Path(tempfile.mkdtemp(prefix="aef-bench-"))
    try:
        with serve_files(tmp / "files") as url:
            ids = [f"i{k}" for k in range(args.dates)]
            cat = make_catalog(tmp / "files", ids, size=args.size * 2, base_url=url)
            period = "2024-05-01/2024-06-01"
            import odc.stac
            import pystac

            from aefcli.grid import target_geobox
            from aefcli.ingest import IngestConfig, run
            from aefcli.parse import parse_bbox

            bbox = _bbox(args.size)
            geobox = target_geobox(parse_bbox(bbox))
            items = list(pystac.read_file(str(cat)).get_items(recursive=True))
            for it in items:
                it.make_asset_hrefs_absolute()
            t = time.perf_counter()
            keys = [k for k in items[0].assets]
            ds = odc.stac.load(items, bands=keys, geobox=geobox, chunks={"x": 512, "y": 512}, groupby="solar_day")
            ds.to_zarr(tmp / "bare.zarr", zarr_format=3, consolidated=False)
            bare = time.perf_counter() - t
            t = time.perf_counter()
            run(IngestConfig(stac=str(cat), collections=("s2",), bbox=bbox, period=period, out=tmp / "ingest.zarr"))
            ours = time.perf_counter() - t
            print(f"grid {geobox.shape.y}x{geobox.shape.x} px, {args.dates} dates, 11 assets each")
            print(f"bare odc.stac.load().to_zarr(): {bare:.2f} s")
            print(f"aef ingest (incl. stats):       {ours:.2f} s  ratio {ours / bare:.2f}")
            rss = {}
            for label, size in (("1x", args.size // 2), ("4x", args.size)):
                out = tmp / f"rss-{label}.zarr"
                code = ("import resource,sys; from aefcli.ingest import IngestConfig, run; "
                        f"run(IngestConfig(stac={str(cat)!r}, collections=('s2',), bbox={_bbox(size)!r}, "
                        f"period={period!r}, out={str(out)!r}, chunk=256)); "
                        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
                proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
                rss[label] = int(proc.stdout.strip().splitlines()[-1]) / 1024
                print(f"peak RSS {label} area ({size}x{size} px-ish): {rss[label]:.0f} MB")
            print(f"RSS 4x / 1x: {rss['4x'] / rss['1x']:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
