"""STAC search: a STAC API (pystac-client, with retries and backoff) or a static catalog (pystac).

Returns pystac Items filtered by collection, bbox, period and cloud cover, sorted
by (datetime, id) so every run sees the same order.
"""

from __future__ import annotations

import re
import time
import urllib.parse
from pathlib import Path
from typing import Callable, TypeVar

from aefcli.errors import DataError, InputError
from aefcli.parse import BBox, Period

T = TypeVar("T")
RETRIES = 5
BACKOFF_S = 0.25

_URL = re.compile(r"(?i)\b((?:https?|s3|gs|az|/vsicurl/https?)://?[^\s'\"<>]+)")


def strip_credentials(href: str) -> str:
    """An href without user:password, query string (SAS tokens, signatures) or fragment."""
    parts = urllib.parse.urlsplit(href)
    if not parts.scheme or parts.scheme == "file":
        return href.split("?")[0]
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def scrub(text: str) -> str:
    """Any URLs inside a message (e.g. a GDAL error) with their credentials stripped."""
    return _URL.sub(lambda m: strip_credentials(m.group(1)), str(text))


def with_retries(fn: Callable[[], T], what: str, retries: int = RETRIES, backoff_s: float = BACKOFF_S,
                 retry_on: tuple[type[BaseException], ...] = (OSError,)) -> T:
    """fn() retried on transient errors with exponential backoff (0.25 s, 0.5 s, ...)."""
    for attempt in range(retries + 1):
        try:
            return fn()
        except retry_on:
            if attempt == retries:
                raise
            time.sleep(backoff_s * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def is_api(stac: str) -> bool:
    return stac.startswith(("http://", "https://"))


def _item_ok(item, bbox: BBox, period: Period, max_cloud: float | None) -> bool:
    import numpy as np

    if item.bbox is not None:
        w, s, e, n = item.bbox[:4] if len(item.bbox) == 4 else (item.bbox[0], item.bbox[1], item.bbox[3], item.bbox[4])
        if w > bbox.east or e < bbox.west or s > bbox.north or n < bbox.south:
            return False
    when = item.datetime or item.common_metadata.start_datetime
    if when is None or not period.contains(np.datetime64(when.replace(tzinfo=None), "ns")):
        return False
    cloud = item.properties.get("eo:cloud_cover")
    return max_cloud is None or cloud is None or float(cloud) <= max_cloud


def _search_static(path: Path, collections: list[str], bbox: BBox, period: Period, max_cloud: float | None):
    import pystac

    if path.is_dir():
        path = path / "catalog.json"
    if not path.is_file():
        raise InputError(f"STAC catalog {path} does not exist; give a STAC API URL or a catalog.json path")
    try:
        catalog = pystac.read_file(str(path))
    except Exception as err:  # noqa: BLE001  (pystac raises many types for a bad file)
        raise InputError(f"cannot read STAC catalog {path}: {scrub(err)}") from None
    found: dict[str, list] = {c: [] for c in collections}
    items = catalog.get_items(recursive=True) if hasattr(catalog, "get_items") else []
    for item in items:
        item.make_asset_hrefs_absolute()
        coll = item.collection_id
        if coll in found and _item_ok(item, bbox, period, max_cloud):
            found[coll].append(item)
    return found


def _search_api(url: str, collections: list[str], bbox: BBox, period: Period, max_cloud: float | None):
    from pystac_client import Client
    from pystac_client.exceptions import APIError
    from pystac_client.stac_api_io import StacApiIO
    from urllib3.util.retry import Retry

    # A refused connection is rarely transient: fail after 2 tries; 5xx and dropped reads get 5.
    retry = Retry(total=RETRIES, connect=2, backoff_factor=BACKOFF_S, status_forcelist=(429, 500, 502, 503, 504),
                  allowed_methods=None)  # POST /search is safe to repeat
    io = StacApiIO(max_retries=retry, timeout=30)
    try:
        client = Client.open(url, stac_io=io)
        known = {c.id for c in client.get_collections()}
    except Exception as err:  # noqa: BLE001  (requests/pystac-client raise many types)
        raise InputError(f"cannot reach the STAC API at {strip_credentials(url)}: {type(err).__name__}; check --stac") from None
    missing = [c for c in collections if c not in known]
    if missing:
        raise InputError(f"the STAC API has no collection {missing}; it offers {sorted(known)}")
    found: dict[str, list] = {}
    for coll in collections:
        try:
            search = client.search(collections=[coll], bbox=bbox.as_list(), datetime=period.stac_datetime())
            items = list(search.items())
        except (APIError, OSError) as err:
            raise DataError(f"STAC search of {coll} at {strip_credentials(url)} failed: {scrub(err)}") from None
        found[coll] = [it for it in items if _item_ok(it, bbox, period, max_cloud)]
    return found


def search(stac: str, collections: list[str], bbox: BBox, period: Period, max_cloud: float | None = None) -> dict[str, list]:
    """{collection id: [pystac.Item sorted by (datetime, id)]} for items intersecting bbox in period.

    stac: a STAC API URL or a static catalog path. Items above `max_cloud` % eo:cloud_cover
    are dropped (items without the property are kept).
    """
    if is_api(stac):
        found = _search_api(stac, collections, bbox, period, max_cloud)
    else:
        found = _search_static(Path(stac), collections, bbox, period, max_cloud)
    return {c: sorted(items, key=lambda it: (it.datetime.isoformat() if it.datetime else "", it.id))
            for c, items in found.items()}
