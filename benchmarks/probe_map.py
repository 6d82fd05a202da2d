"""Speed and peak memory of `aef probe` map prediction as the cube grows (memory should stay flat).

Usage: python benchmarks/probe_map.py [SIZE ...]   (default 256 512 1024; int8 cubes, 3 classes)
Prints one line per size: pixels, seconds, Mpx/s and the peak RSS of a child process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import numpy as np
from odc.geo.geobox import GeoBox
from aefcli.io import embedding_store as es
from aefcli.probe import ProbeConfig, run
n, d = int(sys.argv[1]), Path(sys.argv[2])
gb = GeoBox.from_bbox((499200, 5600640 - 10 * n, 499200 + 10 * n, 5600640), "EPSG:32631", resolution=10)
rng = np.random.default_rng(0)
cent = rng.normal(size=(3, 64))
es.create_store(d / "emb.zarr", gb, list(range(64)), "int8", 256, {})
for r in range(0, n, 256):
    for c in range(0, n, 256):
        h, w = min(256, n - r), min(256, n - c)
        cls = ((np.arange(r, r + h)[:, None] // 32 + np.arange(c, c + w)[None] // 32) % 3)
        v = cent[cls] + 0.5 * rng.normal(size=(h, w, 64))
        es.write_block(d / "emb.zarr", (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32), r, c)
es.mark_complete(d / "emb.zarr")
pts = rng.integers(0, n, (300, 2))
feats = [{"type": "Feature", "properties": {"class": int((a // 32 + b // 32) % 3)},
          "geometry": {"type": "Point", "coordinates": [int(499200 + 10 * b + 5), int(5600640 - 10 * a - 5)]}} for a, b in pts]
(d / "l.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": feats,
                                         "crs": {"type": "name", "properties": {"name": "EPSG:32631"}}}))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
run(ProbeConfig(labels=d / "l.geojson", embeddings=(d / "emb.zarr",), out=d / "map.tif", block=640, cv=3))
print(json.dumps({"n": n, "seconds": time.perf_counter() - t, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_before_mb": base / 1024}))
"""


def main(sizes: list[int]) -> None:
    for n in sizes:
        with tempfile.TemporaryDirectory() as d:
            out = subprocess.run([sys.executable, "-c", CHILD, str(n), d], capture_output=True, text=True)
            if out.returncode:
                sys.exit(out.stderr[-2000:])
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{n}x{n} px: probe+map {r['seconds']:.1f} s ({n * n / r['seconds'] / 1e6:.2f} Mpx/s), "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB (after building the cube: {r['rss_before_mb']:.0f} MB)")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [256, 512, 1024])
