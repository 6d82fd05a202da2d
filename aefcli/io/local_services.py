"""Real local services on 127.0.0.1: a STAC API (rustac) and a Range-capable file server.

Tests, benchmarks and the demo serve a static catalog (e.g. the sample world)
through the same network paths aef uses against public STAC APIs and cloud
COGs: pystac-client POST /search, then GDAL /vsicurl/ range reads.
"""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

from aefcli.errors import DataError


@dataclass(frozen=True)
class ServedCatalog:
    api_url: str  # STAC API root, e.g. http://127.0.0.1:PORT
    files_url: str  # base URL of the asset file server
    item_count: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve_files(root: str | Path, handler_class: type | None = None) -> Iterator[str]:
    """Serve `root` over HTTP with Range support on a free port; yields the base URL.

    By default the server is its own process (aefcli.io.range_server), so GDAL
    reads from this process cannot stall it. `handler_class` (a RangeRequestHandler
    subclass, e.g. a fault-injecting one in tests) runs in a thread of this process
    instead: use it only with readers that release the GIL (odc-stac's dask reads).
    """
    if handler_class is not None:
        with _serve_files_in_thread(root, handler_class) as url:
            yield url
        return
    proc = subprocess.Popen(
        [sys.executable, "-m", "aefcli.io.range_server", str(root)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        if not line.isdigit():
            raise DataError(f"the local file server did not start: {proc.stderr.read()[-300:]}")
        yield f"http://127.0.0.1:{line}"
    finally:
        _stop(proc)


@contextlib.contextmanager
def _serve_files_in_thread(root: str | Path, handler_class: type) -> Iterator[str]:
    class QuietHandler(handler_class):  # type: ignore[misc, valid-type]
        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _stop(proc: subprocess.Popen) -> None:
    """Terminate a service process (kill it if it lingers) and close its pipes."""
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe:
            pipe.close()


def api_documents(catalog_path: str | Path, files_url: str) -> tuple[list[dict], list[dict]]:
    """Collections (without item links) and items with asset hrefs rewritten to `files_url`.

    rustac loads collections and an ndjson of items; asset hrefs point at the
    file server so readers go through HTTP range requests like on the cloud.
    """
    import pystac

    catalog = pystac.read_file(str(catalog_path))
    root = Path(catalog_path).resolve().parent
    collections, items = [], []
    for collection in catalog.get_all_collections():
        doc = collection.to_dict(include_self_link=False, transform_hrefs=False)
        doc["links"] = [link for link in doc.get("links", []) if link["rel"] not in ("item", "child", "parent", "root")]
        collections.append(doc)
        for item in collection.get_items(recursive=True):
            item_doc = item.to_dict(include_self_link=False, transform_hrefs=False)
            for key, asset in item.assets.items():
                path = Path(asset.get_absolute_href()).resolve()
                if not path.is_relative_to(root):
                    raise DataError(f"asset {path} lies outside the catalog folder {root}: keep the catalog self-contained")
                item_doc["assets"][key]["href"] = f"{files_url}/{path.relative_to(root).as_posix()}"
            item_doc["links"] = []
            item_doc["collection"] = collection.id
            items.append(item_doc)
    return collections, items


def _wait_until_up(url: str, proc: subprocess.Popen, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DataError(f"rustac serve exited with code {proc.returncode}: {proc.stderr.read().decode()[-300:]}")
        try:
            with urllib.request.urlopen(f"{url}/collections", timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise DataError(f"the local STAC API at {url} did not start within {timeout_s:.0f} s")


@contextlib.contextmanager
def serve_catalog(catalog_path: str | Path, handler_class: type | None = None) -> Iterator[ServedCatalog]:
    """Serve a static STAC catalog as a real STAC API on 127.0.0.1; assets over HTTP Range.

    Yields a ServedCatalog whose `api_url` works with `pystac_client.Client.open`.
    handler_class: passed to `serve_files` for the asset server (e.g. a fault-injecting
    RangeRequestHandler subclass in tests); the STAC API itself stays rustac.
    Needs the `rustac` CLI (pip package rustac).
    """
    catalog_path = Path(catalog_path)
    if catalog_path.is_dir():
        catalog_path = catalog_path / "catalog.json"
    rustac = shutil.which("rustac")
    if rustac is None:
        raise DataError("the `rustac` command is missing: pip install rustac")
    with serve_files(catalog_path.resolve().parent, handler_class) as files_url, tempfile.TemporaryDirectory(prefix="aef-stac-") as tmp:
        collections, items = api_documents(catalog_path, files_url)
        hrefs = []
        for doc in collections:
            name = f"{doc['id']}.collection.json"
            (Path(tmp) / name).write_text(json.dumps(doc))
            hrefs.append(name)
        (Path(tmp) / "items.ndjson").write_text("".join(json.dumps(item) + "\n" for item in items))
        hrefs.append("items.ndjson")
        port = free_port()
        api_url = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen(
            [rustac, "serve", "--addr", f"127.0.0.1:{port}", *hrefs],
            cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        try:
            _wait_until_up(api_url, proc)
            yield ServedCatalog(api_url=api_url, files_url=files_url, item_count=len(items))
        finally:
            _stop(proc)
