"""A real local Dask cluster for tests: `dask scheduler` + 2 `dask worker` processes on 127.0.0.1.

Use from a test module:

    from dask_cluster import dask_cluster  # noqa: F401  (pytest fixture)

    def test_x(dask_cluster):
        from dask.distributed import Client
        with Client(dask_cluster) as client: ...

The fixture yields the scheduler address (tcp://127.0.0.1:PORT) and stops the
three processes it started (by their pids) afterwards.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

N_WORKERS = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dask_cli() -> list[str]:
    exe = Path(sys.executable).with_name("dask")
    return [str(exe)] if exe.exists() else [shutil.which("dask") or "dask"]


def start_cluster(workdir: Path, n_workers: int = N_WORKERS, timeout: float = 60.0):
    """Start a scheduler and `n_workers` single-thread workers; returns (address, processes)."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    log = open(workdir / "dask.log", "w")
    procs = [subprocess.Popen([*_dask_cli(), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir)]
    for _ in range(n_workers):
        procs.append(subprocess.Popen([*_dask_cli(), "worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--nworkers", "1",
                                       "--no-dashboard", "--memory-limit", "0", "--local-directory", str(workdir)],
                                      stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir))
    from dask.distributed import Client

    deadline = time.monotonic() + timeout
    while True:
        try:
            with Client(address, timeout=5) as client:
                client.wait_for_workers(n_workers, timeout=max(1.0, deadline - time.monotonic()))
                return address, procs
        except (OSError, TimeoutError) as err:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                stop_cluster(procs)
                raise RuntimeError(f"local dask cluster did not start: {err}; see {workdir / 'dask.log'}") from err
            time.sleep(0.3)


def stop_cluster(procs: list[subprocess.Popen]) -> None:
    """Stop the processes we started: workers first, then the scheduler."""
    for p in reversed(procs):
        if p.poll() is None:
            p.terminate()
    for p in reversed(procs):
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """Address of a scheduler with 2 workers on 127.0.0.1, alive for the test module."""
    address, procs = start_cluster(tmp_path_factory.mktemp("dask"))
    try:
        yield address
    finally:
        stop_cluster(procs)
