"""`aef ingest` on a tiny real COG catalog: values, masks, bad input, security, faults, resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from aefcli.errors import DataError, InputError, PartialFailure
from aefcli.ingest import IngestConfig, run
from aefcli.io.cube import WRITTEN, open_cube
from aefcli.io.local_services import free_port, serve_files

sys.path.insert(0, str(Path(__file__).parent))
from fault_server import FaultyHandler, bbox_of, make_catalog  # noqa: E402

PERIOD = "2024-05-01/2024-06-01"


def _cfg(stac, out, **kw) -> IngestConfig:
    base = dict(stac=str(stac), collections=("s2",), bbox=bbox_of(32), period=PERIOD, out=out)
    return IngestConfig(**{**base, **kw})


def _store_arrays(path: Path) -> dict:
    root = zarr.open_group(str(path), mode="r")
    out = {"attrs": dict(root.attrs)}
    for name, group in root.groups():
        out[name + ".attrs"] = dict(group.attrs)
        for key, arr in group.arrays():
            out[f"{name}/{key}"] = np.asarray(arr[...])
    return out


def _assert_same_store(a: Path, b: Path, ignore_attrs=("command",)) -> None:
    x, y = _store_arrays(a), _store_arrays(b)
    assert x.keys() == y.keys()
    for key in x:
        if key == "attrs":
            xa, ya = dict(x[key]["aef:cube"]), dict(y[key]["aef:cube"])
            for k in ignore_attrs:
                xa.pop(k, None), ya.pop(k, None)
            assert xa == ya
        elif key.endswith(".attrs"):
            assert x[key] == y[key]
        else:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_catalog(tmp_path_factory.mktemp("tiny"), ["a", "b", "c"])


def test_values_offset_mask_and_grid(tiny, tmp_path):
    result = run(_cfg(tiny, tmp_path / "c.zarr"))
    assert result["frames"] == {"s2": 3} and result["crs"] == "EPSG:32631"
    cube = open_cube(tmp_path / "c.zarr")
    assert cube.bands["s2"][:3] == ("B02", "B03", "B04")
    np.testing.assert_array_equal(cube.times["s2"].astype("datetime64[D]"),
                                  np.array(["2024-05-01", "2024-05-02", "2024-05-03"], dtype="datetime64[D]"))
    # grid: 10 m, on multiples of 10 m, inside the 32 px source grid
    a, _, c, _, e, f = cube.attrs["transform"]
    assert (a, e) == (10.0, -10.0) and c % 10 == 0 and f % 10 == 0
    import rasterio

    col0, row0 = int((c - 500000) / 10), int((5600000 - f) / 10)
    ny, nx = cube.attrs["shape"]
    with rasterio.open(tiny.parent / "cogs" / "item1" / "red.tif") as src:
        dn = src.read(1)[row0:row0 + ny, col0:col0 + nx].astype(np.float32)
    raw, valid = cube.read_raw("s2", 1)
    # processing baseline 05.10: BOA_ADD_OFFSET -1000 removed, scale 1e-4 (same grid: bilinear is exact)
    np.testing.assert_allclose(raw[2], (dn - 1000) * 1e-4, atol=1e-6)
    cloud = np.zeros((32, 32), bool)
    cloud[:8, :8] = True
    np.testing.assert_array_equal(valid, ~cloud[row0:row0 + ny, col0:col0 + nx])
    assert cube.norm["s2"].transform == "log"
    prov = cube.attrs["provenance"]["s2"][0]["items"][0]
    assert prov["id"] == "a" and prov["cloud_cover"] == 5.0 and "scl" in prov["hrefs"]


@pytest.mark.parametrize("kw, match", [
    ({"bbox": "3.1,50.5,3.0,50.6"}, "reversed"),
    ({"bbox": "3.0,95,3.1,96"}, "out of range"),
    ({"bbox": "a,b,c"}, "four numbers"),
    ({"period": "2024-06-01/2024-05-01"}, "reversed"),
    ({"period": "last summer"}, "start/end"),
    ({"period": "2024-13-01/2024-14-01"}, "ISO date"),
    ({"collections": ("sentinel-9",)}, "unknown collection"),
    ({"max_cloud": 150.0}, "max-cloud"),
])
def test_bad_input_is_one_line_input_error(tiny, tmp_path, kw, match):
    with pytest.raises(InputError, match=match) as err:
        run(_cfg(tiny, tmp_path / "c.zarr", **kw))
    assert "\n" not in str(err.value)
    assert not (tmp_path / "c.zarr").exists()


def test_empty_search_and_unreachable_and_unwritable(tiny, tmp_path):
    with pytest.raises(DataError, match="no items"):
        run(_cfg(tiny, tmp_path / "c.zarr", period="2020-01-01/2020-02-01"))
    with pytest.raises(InputError, match="cannot reach"):
        run(_cfg(f"http://127.0.0.1:{free_port()}", tmp_path / "c.zarr"))
    (tmp_path / "a-file").write_text("")  # a parent that is a file (chmod does not bind root)
    with pytest.raises(InputError, match="not writable"):
        _cfg(tiny, tmp_path / "a-file" / "c.zarr")
    assert not list(tmp_path.glob("**/*.zarr"))


def test_dry_run_writes_nothing(tiny, tmp_path):
    result = run(_cfg(tiny, tmp_path / "c.zarr", dry_run=True))
    assert result["dry_run"] and result["frames"] == {"s2": 3} and result["estimated_bytes"] > 0
    assert list(tmp_path.iterdir()) == []


def test_cli_one_line_error_and_json(tiny, tmp_path):
    args = [sys.executable, "-m", "aefcli", "ingest", "--stac", str(tiny), "--collections", "s2", "--bbox", bbox_of(32)]
    proc = subprocess.run(args + ["--period", "2024-06-01/2024-05-01", "--out", str(tmp_path / "c.zarr")],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = subprocess.run(args + ["--period", PERIOD, "--out", str(tmp_path / "c.zarr"), "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    import json

    assert json.loads(proc.stdout.strip().splitlines()[-1])["frames"] == {"s2": 3}


def test_hostile_item_id_and_token_never_leak(tmp_path):
    with _served(tmp_path / "files", rate=0) as url:
        cat = make_catalog(tmp_path / "files", ["../../x", "ok"], base_url=url)
        # asset hrefs carry a query token, as signed cloud URLs do
        _add_token(cat, "sig=SECRET123")
        out = tmp_path / "out" / "c.zarr"
        out.parent.mkdir()
        before = set(p for p in tmp_path.rglob("*") if "out" not in p.parts)
        proc = subprocess.run([sys.executable, "-m", "aefcli", "-vv", "ingest", "--stac", str(cat), "--collections", "s2",
                               "--bbox", bbox_of(32), "--period", PERIOD, "--out", str(out)],
                              capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "SECRET123" not in proc.stderr + proc.stdout
    assert set(p for p in tmp_path.rglob("*") if "out" not in p.parts) == before  # nothing outside --out
    assert open_cube(out).item_ids["s2"] == ("../../x", "ok")
    text = "".join(p.read_text() for p in out.rglob("zarr.json"))
    assert "SECRET123" not in text and "../../x" in text  # the id is data, not a path


def _add_token(catalog: Path, token: str) -> None:
    import json

    for path in catalog.parent.joinpath("items").glob("*.json"):
        doc = json.loads(path.read_text())
        for asset in doc["assets"].values():
            asset["href"] += "?" + token
        path.write_text(json.dumps(doc))


class _served:
    """Serve a folder with FaultyHandler settings (rate, delay, broken) on 127.0.0.1."""

    def __init__(self, root: Path, rate=0.2, delay_s=0.0, broken=()):
        root.mkdir(parents=True, exist_ok=True)
        self.handler = type("H", (FaultyHandler,), {"rate": rate, "delay_s": delay_s, "broken": tuple(broken)})
        self.cm = serve_files(root, handler_class=self.handler)

    def __enter__(self) -> str:
        return self.cm.__enter__()

    def __exit__(self, *exc) -> None:
        self.cm.__exit__(*exc)


def test_flaky_server_gives_identical_store_and_broken_asset_is_skipped(tiny, tmp_path):
    reference = tmp_path / "ref.zarr"
    with _served(tmp_path / "files", rate=0) as url:
        cat = make_catalog(tmp_path / "files", ["a", "b", "c"], base_url=url)
        run(_cfg(cat, reference))
    # the same files through a server that fails ~20 % of requests (503 or dropped connection)
    with _served(tmp_path / "files", rate=0.2) as url:
        cat = make_catalog(tmp_path / "files", ["a", "b", "c"], base_url=url)
        run(_cfg(cat, tmp_path / "flaky.zarr"))
    _assert_same_store(reference, tmp_path / "flaky.zarr", ignore_attrs=("command", "provenance", "request"))
    with _served(tmp_path / "files", rate=0, broken=("item1/red.tif",)) as url:
        cat = make_catalog(tmp_path / "files", ["a", "b", "c"], base_url=url)
        with pytest.raises(PartialFailure, match="s2:b") as err:
            run(_cfg(cat, tmp_path / "broken.zarr"))
    assert "\n" not in str(err.value)
    cube = open_cube(tmp_path / "broken.zarr")  # still a valid, complete store
    assert cube.item_ids["s2"] == ("a", "c")


def test_kill_9_then_rerun_gives_identical_store(tmp_path):
    with _served(tmp_path / "files", rate=0, delay_s=0.03) as url:
        cat = make_catalog(tmp_path / "files", [f"i{k}" for k in range(8)], base_url=url)
        args = [sys.executable, "-m", "aefcli", "-q", "ingest", "--stac", str(cat), "--collections", "s2",
                "--bbox", bbox_of(32), "--period", PERIOD]
        ref, out = tmp_path / "ref.zarr", tmp_path / "c.zarr"
        subprocess.run(args + ["--out", str(ref)], check=True, capture_output=True)
        proc = subprocess.Popen(args + ["--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                state = np.asarray(zarr.open_group(str(out), mode="r")["s2"]["frame_state"][:])
                if (state == WRITTEN).sum() >= 2:
                    break
            except Exception:  # noqa: BLE001  (store not there yet)
                pass
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        with pytest.raises(DataError, match="incomplete"):
            open_cube(out)
        subprocess.run(args + ["--out", str(out)], check=True, capture_output=True)
    _assert_same_store(ref, out)
