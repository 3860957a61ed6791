#!/usr/bin/env bash
# The demo model's training on one GPU, in time budgets: the VAE, the three stages and the region LoRA of
# `make demo-model`, with GPU-sized batches (data.batch_size, data.workers render them ahead) and a constant
# learning rate, so that a stage's time budget only chooses its step count (`anisora train run --minutes`
# records the step reached in the stage's config.json; the same configs with those steps reproduce it on
# a CPU). Usage: scripts/demo-model-gpu.sh [DEVICE]. Budgets, in minutes: VAE_MINUTES, STAGE_MINUTES (the
# three stages), LORA_MINUTES; BATCH, WORKERS and CHECKPOINT_EVERY (steps); ANISORA, the command; PACK, a
# command run as `$PACK NAME FOLDER` after each finished part (to copy it off a rented machine, say).
set -euo pipefail
DEVICE=${1:-cuda}
ANISORA=${ANISORA:-anisora}
VAE_MINUTES=${VAE_MINUTES:-2.2}
read -r -a STAGE_MINUTES <<<"${STAGE_MINUTES:-1.3 1.3 2.2}"
LORA_MINUTES=${LORA_MINUTES:-0.5}
BATCH=${BATCH:-32}
WORKERS=${WORKERS:-12}
CHECKPOINT_EVERY=${CHECKPOINT_EVERY:-50}
RUNS=runs/toonworld
STAGES=(stage1_80x48_4fps stage2_80x48_8fps stage3_160x96_8fps)
PACK=${PACK:-true}

SECONDS=0
if [ ! -f $RUNS/demo-vae/training.json ]; then  # trained already (as make demo-model keeps it)
    $ANISORA train vae --out $RUNS/demo-vae --minutes "$VAE_MINUTES" --batch-size 16 --bf16 \
        --device "$DEVICE" --eval-every 500 --quiet
    $PACK vae $RUNS/demo-vae
    echo "VAE done at ${SECONDS} s"
fi

settings=(--set "data.batch_size=$BATCH" --set "data.workers=$WORKERS" --set optim.schedule=constant
    --set optim.steps=100000 --set "checkpoint_every=$CHECKPOINT_EVERY")
for i in 0 1 2; do
    $ANISORA train run --config "configs/train/toonworld/${STAGES[$i]}.yaml" "${settings[@]}" \
        --minutes "${STAGE_MINUTES[$i]}" --quiet
    $PACK "stage$((i + 1))" "$RUNS/stage$((i + 1))"
    echo "stage $((i + 1)) done at ${SECONDS} s"
done
$ANISORA train run --config configs/train/toonworld/region_lora.yaml "${settings[@]}" \
    --set data.batch_size=$((BATCH / 2)) --minutes "$LORA_MINUTES" --quiet
$PACK lora $RUNS/region-lora
echo "region LoRA done at ${SECONDS} s"
