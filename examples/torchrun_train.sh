#!/bin/bash
# Multi-node training with torchrun: run this same script on every node (or as one SLURM job step).
#
#   NNODES=2 GPUS_PER_NODE=4 MASTER_ADDR=node001 examples/torchrun_train.sh --cube cube.zarr --out runs/base
#
# Under SLURM, `srun --nodes=2 --ntasks-per-node=1 examples/torchrun_train.sh ...` fills NNODES and
# MASTER_ADDR from the allocation. torchrun sets RANK / LOCAL_RANK / WORLD_SIZE for each process;
# extra arguments go to `aef train`. TORCHRUN overrides the launcher (default `torchrun`).
set -euo pipefail

if [ -n "${SLURM_JOB_NODELIST:-}" ]; then
    NNODES=${NNODES:-$SLURM_JOB_NUM_NODES}
    MASTER_ADDR=${MASTER_ADDR:-$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)}
fi
NNODES=${NNODES:-1}
GPUS_PER_NODE=${GPUS_PER_NODE:-1}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}
RDZV_ID=${RDZV_ID:-${SLURM_JOB_ID:-aef-train}}
TORCHRUN=${TORCHRUN:-torchrun}

# shellcheck disable=SC2086
exec $TORCHRUN \
    --nnodes="$NNODES" \
    --nproc-per-node="$GPUS_PER_NODE" \
    --rdzv-id="$RDZV_ID" \
    --rdzv-backend=c10d \
    --rdzv-endpoint="$MASTER_ADDR:$MASTER_PORT" \
    -m aefcli train "$@"
