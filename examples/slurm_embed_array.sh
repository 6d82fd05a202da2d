#!/bin/bash
# aef tiles per SLURM array task: fills a region tile by tile, each into OUT/<TILE_ID>.zarr.
#
#   aef tiles --bbox 3.0,50.5,6.0,51.5 --ids > tiles.txt                   # one tile id per line
#   N=$(wc -l < tiles.txt); K=4                                            # K tiles per task
#   sbatch --array=0-$(( (N + K - 1) / K - 1 ))%50 \
#          --export=ALL,TILES_PER_TASK=$K,CHECKPOINT=runs/base/checkpoint.safetensors,PERIOD=2024-01-01/2025-01-01,OUT=emb \
#          examples/slurm_embed_array.sh
#   aef index emb --cog                                                    # once the array is done
#
# Task i embeds lines i*K+1 .. (i+1)*K of TILES in ONE process (`aef embed --tile A --tile B ...`),
# so the start-up (imports, model load: seconds) is paid once per task, not once per tile;
# with K=1 (default) each task is one tile. Re-submitting the same array is safe: a finished
# tile is a no-op, a killed one resumes. Windows on a tile edge run once for the region: the
# first task to need them leaves their sums in OUT/.aef-edges for the neighbour (OUT must be
# shared storage; `--no-share-edges` turns it off; `aef index OUT` reports sums left over for
# tiles never embedded). Settings come from the environment: TILES (default
# tiles.txt), TILES_PER_TASK (default 1), CHECKPOINT, PERIOD, OUT, AEF (the aef command,
# default `aef`); extra arguments are passed on to `aef embed`.
#SBATCH --job-name=aef-embed
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --gres=gpu:1
#SBATCH --time=02:00:00
#SBATCH --output=logs/aef-embed-%A_%a.out
#SBATCH --requeue

set -euo pipefail

TILES=${TILES:-tiles.txt}
AEF=${AEF:-aef}
TASK=${SLURM_ARRAY_TASK_ID:?submit with sbatch --array=0-N (one task per TILES_PER_TASK lines of $TILES)}
: "${CHECKPOINT:?set CHECKPOINT to the model checkpoint}" "${PERIOD:?set PERIOD to start/end}" "${OUT:?set OUT to the output folder}"

K=${TILES_PER_TASK:-1}
FIRST=$((TASK * K + 1))
TILE_ARGS=()
while read -r TILE _; do
    if [ -n "$TILE" ]; then TILE_ARGS+=(--tile "$TILE"); fi
done < <(sed -n "${FIRST},$((FIRST + K - 1))p" "$TILES")
if [ ${#TILE_ARGS[@]} -eq 0 ]; then
    echo "aef-embed: no tile on line $FIRST of $TILES" >&2
    exit 1
fi
mkdir -p "$OUT"
# shellcheck disable=SC2086  # AEF may be a command with arguments, e.g. "python -m aefcli"
exec $AEF embed "${TILE_ARGS[@]}" --checkpoint "$CHECKPOINT" --period "$PERIOD" --out "$OUT" "$@"
