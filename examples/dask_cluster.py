"""Fill a region tile by tile on a Dask cluster: one `aef embed --tile ID` task per tile.

Either an existing scheduler (started with `dask scheduler` / `dask worker`, or any
deployment) or, with --slurm, a dask-jobqueue SLURMCluster that submits the workers
as SLURM jobs (`pip install dask-jobqueue`). Tiles come from `aef tiles`; each task
runs the CLI in a subprocess on a worker, so a task killed with its worker is simply
re-run (a finished tile is a no-op, a half-finished one resumes). Then run `aef index`.

Example:
    aef tiles --bbox 3.0,50.5,6.0,51.5 | awk '{print $1}' > tiles.txt
    python examples/dask_cluster.py --scheduler tcp://10.0.0.5:8786 --tiles tiles.txt -- \
        --checkpoint runs/base/checkpoint.safetensors --period 2024-01-01/2025-01-01 --out emb
    python examples/dask_cluster.py --slurm --jobs 10 --tiles tiles.txt -- --checkpoint ... --out emb
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path


def run_tile(tile: str, argv: list[str]) -> dict:
    """Run one tile's command on a worker; `{tile}` in argv is replaced by the tile id."""
    cmd = [a.replace("{tile}", tile) for a in argv]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return {"tile": tile, "rc": proc.returncode, "stderr": proc.stderr[-2000:], "stdout": proc.stdout[-2000:]}


def run_tiles(client, tiles: list[str], argv: list[str]) -> list[dict]:
    """Submit one task per tile (retried twice if a worker dies) and gather the results in tile order."""
    futures = client.map(run_tile, tiles, argv=argv, pure=False, retries=2, key=[f"aef-tile-{t}" for t in tiles])
    return client.gather(futures)


def slurm_cluster(jobs: int, cores: int, memory: str, walltime: str, gpus: int):
    """A dask-jobqueue SLURMCluster scaled to `jobs` worker jobs (print `cluster.job_script()` to see it)."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        sys.exit("--slurm needs dask-jobqueue: pip install dask-jobqueue (or give --scheduler ADDRESS)")
    extra = [f"--gres=gpu:{gpus}"] if gpus else []
    cluster = SLURMCluster(cores=cores, processes=1, memory=memory, walltime=walltime, job_extra_directives=extra)
    cluster.scale(jobs=jobs)
    return cluster


def main(args: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786")
    where.add_argument("--slurm", action="store_true", help="start workers as SLURM jobs with dask-jobqueue")
    p.add_argument("--tiles", type=Path, required=True, help="file with one tile id per line (from `aef tiles`)")
    p.add_argument("--jobs", type=int, default=4, help="--slurm: worker jobs")
    p.add_argument("--cores", type=int, default=8, help="--slurm: cores per job")
    p.add_argument("--memory", default="32GB", help="--slurm: memory per job")
    p.add_argument("--walltime", default="04:00:00", help="--slurm: job time limit")
    p.add_argument("--gpus", type=int, default=1, help="--slurm: GPUs per job")
    p.add_argument("--command", default=f"{sys.executable} -m aefcli embed --tile {{tile}}",
                   help="the per-tile command; {tile} is replaced by the tile id")
    p.add_argument("embed_args", nargs="*", help="after --: arguments for the command (checkpoint, period, out ...)")
    ns = p.parse_args(args)

    from dask.distributed import Client

    tiles = [line.split()[0] for line in ns.tiles.read_text().splitlines() if line.strip()]
    cluster = slurm_cluster(ns.jobs, ns.cores, ns.memory, ns.walltime, ns.gpus) if ns.slurm else None
    with Client(cluster if cluster is not None else ns.scheduler) as client:
        results = run_tiles(client, tiles, ns.command.split() + ns.embed_args)
    failed = [r for r in results if r["rc"] != 0]
    for r in failed:
        print(f"tile {r['tile']} failed (exit {r['rc']}): {r['stderr'].strip().splitlines()[-1:] or ''}", file=sys.stderr)
    print(f"{len(results) - len(failed)}/{len(results)} tiles done", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
