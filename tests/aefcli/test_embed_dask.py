"""`aef embed` on a real dask.distributed cluster (scheduler + 2 worker processes on 127.0.0.1)."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from aefcli.embed import EmbedConfig, run
from aefcli.io.embedding_store import open_embeddings
from dask_cluster import dask_cluster  # noqa: F401  (pytest fixture)
from embed_world import bbox_of, make_checkpoint, make_cube

SIZE = 96
PERIOD = "2024-01-01/2025-01-01"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    # the workers must import this checkout's `model` package whatever their cwd (an editable
    # install made before model/__init__.py existed maps `model` to an empty namespace)
    root = str(Path(__file__).resolve().parents[2])
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    d = tmp_path_factory.mktemp("dworld")
    cube = make_cube(d / "cube.zarr", size=SIZE)
    return d, cube, make_checkpoint(d / "run", cube)


def _cfg(world, name, **kw):
    d, cube, ckpt = world
    out = d / name
    shutil.rmtree(out, ignore_errors=True)
    base = dict(checkpoint=ckpt, out=out, period=PERIOD, cube=cube, bbox=bbox_of(SIZE), window=32, overlap=8,
                chunk=16, dtype="int8", workers=1)
    return EmbedConfig(**{**base, **kw})


def test_distributed_equals_threaded_and_survives_a_killed_worker(world, dask_cluster):  # noqa: F811
    from distributed import Client

    # 2 threads x 1 torch thread, like the 2 single-thread workers: the same float reductions,
    # so the int8 stores match bitwise (other torch thread counts may flip a rare int8 step)
    threaded = run(_cfg(world, "threaded.zarr", workers=2))
    reference = open_embeddings(threaded["store"]).values

    plain = run(_cfg(world, "dist.zarr", scheduler=dask_cluster))
    assert plain["complete"] and plain["tiles_done"] == 36
    np.testing.assert_array_equal(open_embeddings(plain["store"]).values, reference)

    # kill -9 one worker process while tasks run; its tasks are re-run elsewhere
    with Client(dask_cluster) as client:
        pids = client.run(os.getpid)
    cfg = _cfg(world, "killed.zarr", scheduler=dask_cluster)
    outcome: dict = {}
    worker = threading.Thread(target=lambda: outcome.update(run(cfg)))
    worker.start()
    chunks = cfg.out / "embedding" / "c"
    deadline = time.time() + 120
    while time.time() < deadline and worker.is_alive():
        if chunks.is_dir() and sum(1 for _ in chunks.rglob("*")) >= 8:
            break
        time.sleep(0.02)
    victim = sorted(pids.values())[0]
    os.kill(victim, signal.SIGKILL)
    killed_mid_run = worker.is_alive()
    worker.join(timeout=300)
    assert killed_mid_run, "the run ended before a worker could be killed"
    assert outcome.get("complete"), outcome
    np.testing.assert_array_equal(open_embeddings(cfg.out).values, reference)
