"""The cluster recipes in examples/: SLURM array job text, torchrun command, Dask on a real local cluster."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dask_cluster import dask_cluster  # noqa: F401  (pytest fixture: scheduler + 2 workers on 127.0.0.1)

from aefcli.tiles import tiles_for_bbox
from scripts import load_script

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BBOX = "3.0,51.0,3.5,51.3"
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}


def _tiles_file(tmp_path) -> tuple[Path, list[str]]:
    # The documented way to make the list: `aef tiles --ids` (the count goes to stderr).
    proc = subprocess.run(f"{sys.executable} -m aefcli tiles --bbox {BBOX} --ids", shell=True, capture_output=True, text=True, check=True)
    path = tmp_path / "tiles.txt"
    path.write_text(proc.stdout)
    return path, proc.stdout.split()


def test_slurm_script_directives():
    text = (EXAMPLES / "slurm_embed_array.sh").read_text()
    lines = text.splitlines()
    first_command = next(i for i, line in enumerate(lines) if line.strip() and not line.startswith("#"))
    directives = {m.group(1): m.group(2) for line in lines[:first_command] if (m := re.match(r"^#SBATCH --([a-z-]+)(?:=(\S+))?$", line))}
    # sbatch stops reading #SBATCH lines at the first command: every directive must come before it.
    assert not any(line.startswith("#SBATCH") for line in lines[first_command:])
    assert {"job-name", "cpus-per-task", "mem", "time", "output", "gres"} <= set(directives)
    assert "%A_%a" in directives["output"], "one log per array task"
    assert re.match(r"^\d\d:\d\d:\d\d$", directives["time"])
    assert "sbatch --array=0-" in text


def test_slurm_task_runs_its_own_tile(tmp_path):
    tiles, ids = _tiles_file(tmp_path)
    assert ids == [t.id for t in tiles_for_bbox(tuple(map(float, BBOX.split(","))))]
    env = {**CLEAN_ENV, "TILES": str(tiles), "AEF": "echo aef", "CHECKPOINT": "ck.safetensors", "PERIOD": "2024-01-01/2025-01-01", "OUT": str(tmp_path / "emb")}
    for task in (0, 4, len(ids) - 1):
        proc = subprocess.run(["bash", str(EXAMPLES / "slurm_embed_array.sh"), "--dtype", "int8"], env={**env, "SLURM_ARRAY_TASK_ID": str(task)},
                              capture_output=True, text=True, check=True)
        assert proc.stdout.split() == ["aef", "embed", "--tile", ids[task], "--checkpoint", "ck.safetensors", "--period", "2024-01-01/2025-01-01",
                                       "--out", str(tmp_path / "emb"), "--dtype", "int8"]
    past_end = subprocess.run(["bash", str(EXAMPLES / "slurm_embed_array.sh")], env={**env, "SLURM_ARRAY_TASK_ID": str(len(ids))}, capture_output=True, text=True)
    assert past_end.returncode == 1 and "no tile" in past_end.stderr
    no_task = subprocess.run(["bash", str(EXAMPLES / "slurm_embed_array.sh")], env=env, capture_output=True, text=True)
    assert no_task.returncode != 0 and "sbatch --array" in no_task.stderr


def test_slurm_task_runs_its_group_of_tiles_in_one_process(tmp_path):
    tiles, ids = _tiles_file(tmp_path)
    env = {**CLEAN_ENV, "TILES": str(tiles), "TILES_PER_TASK": "4", "AEF": "echo aef", "CHECKPOINT": "ck", "PERIOD": "P", "OUT": str(tmp_path / "emb")}
    assert len(ids) == 9  # tasks 0..2: 4 + 4 + 1 tiles
    seen = []
    for task in range(3):
        proc = subprocess.run(["bash", str(EXAMPLES / "slurm_embed_array.sh")], env={**env, "SLURM_ARRAY_TASK_ID": str(task)},
                              capture_output=True, text=True, check=True)
        words = proc.stdout.split()
        assert words[:2] == ["aef", "embed"] and words[-6:] == ["--checkpoint", "ck", "--period", "P", "--out", str(tmp_path / "emb")]
        flags = words[2:-6]
        assert flags[::2] == ["--tile"] * len(flags[1::2])
        seen.append(flags[1::2])
    assert seen == [ids[0:4], ids[4:8], ids[8:9]]
    past_end = subprocess.run(["bash", str(EXAMPLES / "slurm_embed_array.sh")], env={**env, "SLURM_ARRAY_TASK_ID": "3"}, capture_output=True, text=True)
    assert past_end.returncode == 1 and "no tile on line 13" in past_end.stderr


def test_torchrun_command():
    env = {**CLEAN_ENV, "TORCHRUN": "echo torchrun", "NNODES": "2", "GPUS_PER_NODE": "4", "MASTER_ADDR": "node001"}
    proc = subprocess.run(["bash", str(EXAMPLES / "torchrun_train.sh"), "--out", "runs/x"], env=env, capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["torchrun", "--nnodes=2", "--nproc-per-node=4", "--rdzv-id=aef-train", "--rdzv-backend=c10d",
                                   "--rdzv-endpoint=node001:29500", "-m", "aefcli", "train", "--out", "runs/x"]


@pytest.mark.slow
def test_local_cluster_runs_a_graph_on_two_workers(dask_cluster):  # noqa: F811
    import dask.array as da
    from dask.distributed import Client

    with Client(dask_cluster) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        assert len(set(client.run(os.getpid).values())) == 2
        assert da.ones((64, 64), chunks=16).sum().compute() == 4096


FAKE_EMBED = """
import os, sys, time
tile, out = sys.argv[sys.argv.index('--tile') + 1], sys.argv[sys.argv.index('--out') + 1]
if tile.endswith('N5632000') and tile.startswith('32631_E532480'):
    sys.exit('cannot read input for ' + tile)
time.sleep(0.3)
open(os.path.join(out, tile + '.done'), 'w').write(str(os.getppid()))
"""


@pytest.mark.slow
def test_dask_recipe_runs_one_task_per_tile(dask_cluster, tmp_path):  # noqa: F811
    tiles, ids = _tiles_file(tmp_path)
    fake = tmp_path / "fake_embed.py"
    fake.write_text(FAKE_EMBED)
    out = tmp_path / "emb"
    out.mkdir()
    proc = subprocess.run([sys.executable, str(EXAMPLES / "dask_cluster.py"), "--scheduler", dask_cluster, "--tiles", str(tiles),
                           "--command", f"{sys.executable} {fake} --tile {{tile}}", "--", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    failing = "32631_E532480_N5632000"
    assert failing in ids
    assert proc.returncode == 1, proc.stderr
    assert f"tile {failing} failed" in proc.stderr and f"{len(ids) - 1}/{len(ids)} tiles done" in proc.stderr
    done = sorted(p.stem for p in out.glob("*.done"))
    assert done == sorted(set(ids) - {failing})
    workers = {p.read_text() for p in out.glob("*.done")}
    assert len(workers) == 2, "tiles are spread over both workers"


def test_dask_recipe_groups_tiles_per_task():
    tile_command = load_script("examples/dask_cluster.py").tile_command
    argv = ["aef", "embed", "--tile", "{tile}", "--out", "emb"]
    assert tile_command(["A"], argv) == ["aef", "embed", "--tile", "A", "--out", "emb"]
    assert tile_command(["A", "B", "C"], argv) == ["aef", "embed", "--tile", "A", "--tile", "B", "--tile", "C", "--out", "emb"]
    assert tile_command(["A"], ["run.sh", "{tile}.zarr"]) == ["run.sh", "A.zarr"]
    with pytest.raises(ValueError, match="--tile {tile}"):
        tile_command(["A", "B"], ["run.sh", "{tile}.zarr"])


def test_dask_recipe_slurm_job_script_has_the_resources():
    pytest.importorskip("dask_jobqueue", reason="the cluster extra (dask-jobqueue) is not installed")
    proc = subprocess.run([sys.executable, str(EXAMPLES / "dask_cluster.py"), "--slurm", "--print-job-script", "--host", "127.0.0.1",
                           "--cores", "16", "--memory", "64GB", "--walltime", "06:30:00", "--gpus", "2", "--tiles", "unused.txt"],
                          env=CLEAN_ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    script = proc.stdout
    directives = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    assert "#SBATCH -J aef-embed" in directives
    assert "#SBATCH --cpus-per-task=16" in directives and "#SBATCH -n 1" in directives
    assert "#SBATCH --mem=60G" in directives  # dask-jobqueue asks SLURM for 64 GB as 60 GiB
    assert "#SBATCH -t 06:30:00" in directives and "#SBATCH --gres=gpu:2" in directives
    worker = next(line for line in script.splitlines() if "distributed.cli.dask_worker" in line)
    assert "tcp://127.0.0.1:" in worker
    assert "--nthreads 16" in worker and "--memory-limit 59.60GiB" in worker and "--nworkers" not in worker  # one process per job
