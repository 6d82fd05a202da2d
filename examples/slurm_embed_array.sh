#!/bin/bash
# One aef tile per SLURM array task: fills a region tile by tile, each into OUT/<TILE_ID>.zarr.
#
#   aef tiles --bbox 3.0,50.5,6.0,51.5 | awk '{print $1}' > tiles.txt      # one tile id per line
#   N=$(wc -l < tiles.txt)
#   sbatch --array=0-$((N - 1))%50 --export=ALL,CHECKPOINT=runs/base/checkpoint.safetensors,PERIOD=2024-01-01/2025-01-01,OUT=emb \
#          examples/slurm_embed_array.sh
#   aef index emb --cog                                                    # once the array is done
#
# Re-submitting the same array is safe: a finished tile is a no-op, a killed one resumes.
# Settings come from the environment: TILES (default tiles.txt), CHECKPOINT, PERIOD, OUT,
# AEF (the aef command, default `aef`); extra arguments are passed on to `aef embed`.
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
TASK=${SLURM_ARRAY_TASK_ID:?submit with sbatch --array=0-N (one task per line of $TILES)}
: "${CHECKPOINT:?set CHECKPOINT to the model checkpoint}" "${PERIOD:?set PERIOD to start/end}" "${OUT:?set OUT to the output folder}"

TILE=$(sed -n "$((TASK + 1))p" "$TILES")
if [ -z "$TILE" ]; then
    echo "aef-embed: no tile on line $((TASK + 1)) of $TILES" >&2
    exit 1
fi
mkdir -p "$OUT"
# shellcheck disable=SC2086  # AEF may be a command with arguments, e.g. "python -m aefcli"
exec $AEF embed --tile "$TILE" --checkpoint "$CHECKPOINT" --period "$PERIOD" --out "$OUT" "$@"
