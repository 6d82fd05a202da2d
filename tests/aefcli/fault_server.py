"""Test helpers: a tiny real S2 catalog (COGs + pystac) and a Range server that misbehaves.

`FaultyHandler` answers 503 or drops the connection on a fraction of requests
(deterministic per request count), and can delay every response so a test can
kill an ingest mid-run.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from pathlib import Path

import numpy as np
from RangeHTTPServer import RangeRequestHandler

KEYS = ("blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir", "nir08", "swir16", "swir22")
EPSG = 32631
ORIGIN = (500000.0, 5600000.0)  # top-left corner, metres


def make_catalog(root: Path, ids: list[str], size: int = 32, seed: int = 0, base_url: str | None = None) -> Path:
    """Write one S2 L2A item per id (daily from 2024-05-01), 10 bands uint16 DN + SCL, as COGs.

    base_url: asset hrefs become absolute URLs under it (files still written below `root`).
    Returns root/catalog.json. Values: DN = 1000 + 100*band + item index, SCL = 4 except a
    cloud square (9) in the top-left 8x8 of every item.
    """
    import pystac
    import rasterio
    from affine import Affine

    rng = np.random.default_rng(seed)
    transform = Affine(10, 0, ORIGIN[0], 0, -10, ORIGIN[1])
    extent = pystac.Extent(pystac.SpatialExtent([[-180, -90, 180, 90]]), pystac.TemporalExtent([[None, None]]))
    catalog = pystac.Catalog("tiny", "tiny test catalog")
    coll = pystac.Collection("sentinel-2-l2a", "tiny S2", extent)
    catalog.add_child(coll)
    for i, item_id in enumerate(ids):
        when = np.datetime64("2024-05-01") + np.timedelta64(i, "D")
        item = pystac.Item(item_id, {"type": "Polygon", "coordinates": [[[2.9, 50.4], [3.1, 50.4], [3.1, 50.6], [2.9, 50.6], [2.9, 50.4]]]},
                           [2.9, 50.4, 3.1, 50.6], when.astype("datetime64[us]").item(),
                           {"proj:code": f"EPSG:{EPSG}", "eo:cloud_cover": 5.0, "s2:processing_baseline": "05.10"}, collection=coll.id)
        folder = root / "cogs" / f"item{i}"
        folder.mkdir(parents=True, exist_ok=True)
        for b, key in enumerate(KEYS + ("scl",)):
            if key == "scl":
                data = np.full((size, size), 4, np.uint16)
                data[:8, :8] = 9
            else:
                data = (1000 + 100 * b + i + rng.integers(0, 50, (size, size))).astype(np.uint16)
            path = folder / f"{key}.tif"
            with rasterio.open(path, "w", driver="COG", width=size, height=size, count=1, dtype="uint16",
                               crs=f"EPSG:{EPSG}", transform=transform, nodata=0, blocksize=256) as dst:
                dst.write(data, 1)
            href = f"{base_url}/cogs/item{i}/{key}.tif" if base_url else str(path)
            asset = pystac.Asset(href, media_type=pystac.MediaType.COG, roles=["data"])
            asset.extra_fields.update({"proj:code": f"EPSG:{EPSG}", "proj:shape": [size, size],
                                       "proj:transform": list(transform)[:6], "raster:bands": [{"nodata": 0}]})
            item.add_asset(key, asset)
        coll.add_item(item)
    # Items are stored under a fixed folder name (not their id): a hostile id must not steer paths.
    catalog.normalize_hrefs(str(root), strategy=pystac.layout.TemplateLayoutStrategy(item_template="items"))
    for n, item in enumerate(coll.get_items()):
        item.set_self_href(str(root / "items" / f"{n}.json"))
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"


def bbox_of(size: int) -> str:
    """A WGS84 bbox strictly inside the tiny catalog's grid of `size` pixels."""
    from pyproj import Transformer

    to_ll = Transformer.from_crs(EPSG, 4326, always_xy=True)
    x0, y1 = ORIGIN
    x1, y0 = x0 + size * 10, y1 - size * 10
    (w, e), (s, n) = to_ll.transform([x0 + 60, x1 - 60], [y0 + 60, y1 - 60])
    return f"{w},{s},{e},{n}"


class FaultyHandler(RangeRequestHandler):
    """Range handler that fails `rate` of requests (503 or a dropped connection) and may delay."""

    rate = 0.2
    delay_s = 0.0
    broken: tuple[str, ...] = ()  # path suffixes answered 404 forever
    _count = 0
    _lock = threading.Lock()

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802  (http.server API)
        if self.delay_s:
            time.sleep(self.delay_s)
        if any(self.path.split("?")[0].endswith(b) for b in self.broken):
            self.send_error(404)
            return
        with FaultyHandler._lock:
            FaultyHandler._count += 1
            n = FaultyHandler._count
        if self.rate and (n * 7919) % 100 < self.rate * 100:  # deterministic ~rate of requests
            if n % 2:
                self.send_error(503)
            else:  # a dropped connection: RST (SO_LINGER 0), as a reset by a load balancer looks
                self.close_connection = True
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            return
        super().do_GET()

    def do_HEAD(self) -> None:  # noqa: N802
        if any(self.path.split("?")[0].endswith(b) for b in self.broken):
            self.send_error(404)
            return
        super().do_HEAD()
