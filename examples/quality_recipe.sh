#!/usr/bin/env bash
# Train the label-free recipe on a WorldCereal patch and score it against the designed baselines.
#
# Usage: examples/quality_recipe.sh [PATCH_DIR] [WORK_DIR] [RECIPE]
#   PATCH_DIR  a WorldCereal-format patch (default ../shared/data/worldcereal-flanders-2018)
#   WORK_DIR   kept working folder (default $TMPDIR/aef-quality-RECIPE); the checkpoint lands in
#              WORK_DIR/run-RECIPE/checkpoint.safetensors, the scores in WORK_DIR/result.json
#   RECIPE     a name from aefcli/recipes.py (default cpu-q12-s, the best measured)
#
# The model never sees a label: benchmarks/quality.py trains with `aefcli.recipes.train`
# on the ingested cube alone; the crop-type labels only score the finished embeddings.
# Training is seeded, so the same command on the same aef version gives the same weights
# (bitwise on CPU). Re-running reuses finished stages (convert, ingest, training).
set -euo pipefail
cd "$(dirname "$0")/.."
PATCH=${1:-../shared/data/worldcereal-flanders-2018}
RECIPE=${3:-cpu-q12-s}
WORK=${2:-${TMPDIR:-/tmp}/aef-quality-$RECIPE}
mkdir -p "$WORK"
python benchmarks/quality.py "$PATCH" --recipe "$RECIPE" --work "$WORK" --json > "$WORK/result.json"
echo "checkpoint: $WORK/run-$RECIPE/checkpoint.safetensors" >&2
echo "scores:     $WORK/result.json" >&2
