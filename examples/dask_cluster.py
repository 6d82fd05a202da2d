"""Fill a region tile by tile on a Dask cluster: one `aef embed --tile ID` task per tile.

Either an existing scheduler (started with `dask scheduler` / `dask worker`, or any
deployment) or, with --slurm, a dask-jobqueue SLURMCluster that submits the workers
as SLURM jobs (`pip install dask-jobqueue`). Tiles come from `aef tiles --ids`; each
task runs the CLI in a subprocess on a worker, so a task killed with its worker is
simply re-run (a finished tile is a no-op, a half-finished one resumes). With
--per-task K a task embeds K tiles in one `aef embed --tile A --tile B ...` process,
paying the start-up (imports, model load) once for K tiles. Then run `aef index`.

Example:
    aef tiles --bbox 3.0,50.5,6.0,51.5 --ids > tiles.txt
    python examples/dask_cluster.py --scheduler tcp://10.0.0.5:8786 --tiles tiles.txt --per-task 4 -- \
        --checkpoint runs/base/checkpoint.safetensors --period 2024-01-01/2025-01-01 --out emb
    python examples/dask_cluster.py --slurm --jobs 10 --tiles tiles.txt -- --checkpoint ... --out emb
    python examples/dask_cluster.py --slurm --cores 16 --gpus 1 --print-job-script --tiles tiles.txt
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path


def tile_command(tiles: list[str], argv: list[str]) -> list[str]:
    """The command for a group of tiles: `--tile {tile}` in argv repeated for each tile, any other `{tile}` replaced.

    A group of several tiles needs the `--tile {tile}` form (one process, every tile its own store).
    """
    cmd: list[str] = []
    for a in argv:
        if a == "{tile}" and cmd and cmd[-1] == "--tile":
            cmd.pop()
            cmd += [x for t in tiles for x in ("--tile", t)]
        elif "{tile}" in a and len(tiles) > 1:
            raise ValueError(f"{a!r}: with --per-task > 1 the command must take the tiles as `--tile {{tile}}`")
        else:
            cmd.append(a.replace("{tile}", tiles[0]))
    return cmd


def run_tile(tiles: list[str], argv: list[str]) -> dict:
    """Run one task's command (its group of tiles) on a worker."""
    proc = subprocess.run(tile_command(tiles, argv), capture_output=True, text=True)
    return {"tiles": tiles, "rc": proc.returncode, "stderr": proc.stderr[-2000:], "stdout": proc.stdout[-2000:]}


def run_tiles(client, tiles: list[str], argv: list[str], per_task: int = 1) -> list[dict]:
    """Submit one task per group of `per_task` tiles (retried twice if a worker dies); results in tile order."""
    groups = [tiles[i : i + per_task] for i in range(0, len(tiles), per_task)]
    tile_command(groups[0], argv) if groups else None  # a bad template fails here, not on every worker
    futures = client.map(run_tile, groups, argv=argv, pure=False, retries=2, key=[f"aef-tiles-{g[0]}-{len(g)}" for g in groups])
    return client.gather(futures)


def slurm_cluster(cores: int, memory: str, walltime: str, gpus: int, host: str | None = None):
    """A dask-jobqueue SLURMCluster: one worker process per job with `cores` threads, `memory`, `gpus` GPUs.

    Not scaled yet (no job submitted): `cluster.job_script()` shows what `cluster.scale(jobs=N)` submits.
    host: the address the scheduler listens on (default: dask-jobqueue's choice).
    """
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        sys.exit("--slurm needs dask-jobqueue: pip install dask-jobqueue (or give --scheduler ADDRESS)")
    extra = [f"--gres=gpu:{gpus}"] if gpus else []
    options = {"host": host} if host else {}
    return SLURMCluster(cores=cores, processes=1, memory=memory, walltime=walltime, job_name="aef-embed",
                        job_extra_directives=extra, scheduler_options=options)


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
    p.add_argument("--host", help="--slurm: address the scheduler listens on (default: dask-jobqueue's choice)")
    p.add_argument("--print-job-script", action="store_true", help="--slurm: print the worker job script and exit")
    p.add_argument("--per-task", type=int, default=1, help="tiles per task, embedded in one process (start-up paid once)")
    p.add_argument("--command", default=f"{sys.executable} -m aefcli embed --tile {{tile}}",
                   help="the per-tile command; {tile} is replaced by the tile id")
    p.add_argument("embed_args", nargs="*", help="after --: arguments for the command (checkpoint, period, out ...)")
    ns = p.parse_args(args)

    from dask.distributed import Client

    if ns.per_task < 1:
        p.error("--per-task must be at least 1")
    cluster = slurm_cluster(ns.cores, ns.memory, ns.walltime, ns.gpus, ns.host) if ns.slurm else None
    if cluster is not None and ns.print_job_script:
        print(cluster.job_script())
        cluster.close()
        return 0
    tiles = [line.split()[0] for line in ns.tiles.read_text().splitlines() if line.strip() and not line.startswith("#")]
    if cluster is not None:
        cluster.scale(jobs=ns.jobs)
    with Client(cluster if cluster is not None else ns.scheduler) as client:
        results = run_tiles(client, tiles, ns.command.split() + ns.embed_args, ns.per_task)
    failed = [r for r in results if r["rc"] != 0]
    for r in failed:
        print(f"tile {' '.join(r['tiles'])} failed (exit {r['rc']}): {r['stderr'].strip().splitlines()[-1:] or ''}", file=sys.stderr)
    done = sum(len(r["tiles"]) for r in results if r["rc"] == 0)
    print(f"{done}/{len(tiles)} tiles done", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
