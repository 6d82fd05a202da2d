#!/bin/bash
# Train an embedding model from scratch, offline, on the synthetic sample world, then embed it.
#
#   examples/train_recipe.sh [WORKDIR] [PRESET] [STEPS]      # defaults: ./aef-train-demo tiny 300
#
# Stages: sample world (COGs + STAC) -> `aef ingest` (UTM cube) -> `aef train` (self-supervised,
# with the world's geotagged text, and a probe on its labels every 100 steps) -> `aef embed`.
# Re-running the script resumes each stage where it stopped. On a GPU add `--device cuda`
# (and a larger --batch-size); on N GPUs launch the train stage with examples/torchrun_train.sh.
set -euo pipefail

WORK=${1:-aef-train-demo}
PRESET=${2:-tiny}
STEPS=${3:-300}
PERIOD=2024-01-01/2025-01-01
mkdir -p "$WORK"

# `aef sample-world --json` prints the world's bbox; a re-run rewrites the same bytes (fixed seed).
WORLD=$(aef sample-world "$WORK/world" --size 256 --dates 24 --seed 0 --json)
BBOX=$(python -c "import json, sys; print(','.join(map(str, json.loads(sys.argv[1])['bbox'])))" "$WORLD")

aef ingest --stac "$WORK/world/catalog.json" --collections s2,s1 --bbox "$BBOX" --period "$PERIOD" \
    --out "$WORK/cube.zarr" --max-cloud 100

# Many windows per step (the uniformity term works across windows); small windows on a CPU.
aef train --cube "$WORK/cube.zarr" --out "$WORK/runs/$PRESET" --preset "$PRESET" --steps "$STEPS" \
    --batch-size 8 --window 32 --max-frames 16 --lr 2e-3 --checkpoint-every 50 \
    --text "$WORK/world/text.geojson" --eval-labels "$WORK/world/labels.geojson" --eval-field class \
    --eval-every 100 --threads 2 --workers 1 --json

aef embed --checkpoint "$WORK/runs/$PRESET" --cube "$WORK/cube.zarr" --bbox "$BBOX" --period "$PERIOD" \
    --out "$WORK/embeddings.zarr"
