#!/usr/bin/env bash
# The papers' protocol for the neural models on one GPU, all jobs at once (each is launch-bound, not GPU-bound).
# Per model and dataset, two jobs side by side:
# (one pair per line of JOBS, "NAME MODEL DATASET OPTIONS...", all at once)
#   valid: python -m plugin train --device cuda (first 90% of training sessions, epoch picked on the last 10%),
#          then one test evaluation of the selected weights  -> OUT/<model>_<dataset>.valid.json
#   full:  bench/retrain_full.py (all training sessions, same schedule; stops at the epoch the valid job picked)
#          and one test evaluation of that epoch             -> OUT/<model>_<dataset>.full.json
# Usage: [JOBS=...] bash bench/gpu_protocol.sh DATA_ROOT OUT [BUDGET_S=400] [DEVICE=cuda] [EPOCHS=10]
# BUDGET_S bounds each validation run (crossing it mid-epoch, the job validates what it has and stops); the
# full-split run gets 80 s more, as it can only stop at the chosen epoch once the validation run has finished.
# Logs: OUT/log.txt (all jobs, refreshed every 20 s, so a run killed at its limit still returns them).
set -uo pipefail
DATA=$1
OUT=$2
BUDGET=${3:-400}
DEVICE=${4:-cuda}
EPOCHS=${5:-10}
PY=${PY:-python3}
WORK=${WORK:-/tmp/gpu_protocol}
mkdir -p "$OUT" "$WORK"
# shellcheck source=bench/gpu_common.sh
source "$(dirname "$0")/gpu_common.sh"  # stage_report (its STAMP/SRGNN/GRU4REC are replaced below)
# The papers' settings (bench/run_models.sh), with more epochs and patience 2: an epoch costs seconds here
SRGNN="--batch-size 100 --lr 1e-3 --weight-decay 1e-5 --lr-decay 0.1 --lr-decay-every 3 --epochs $EPOCHS --patience 2"
GRU4REC="--batch-size 128 --lr 3e-3 --lr-decay 0.7 --epochs $EPOCHS --patience 2 --option dim=200 --option hidden=200
  --option negatives=sampled --option loss=bpr-max --option elu_param=0.5 --option bpreg=1.0 --option dropout_hidden=0.3"

collect_logs() {
  for f in "$WORK"/*.log; do [[ -e $f ]] && { echo "=== $(basename "$f")"; cat "$f"; }; done > "$OUT/log.txt.tmp"
  mv "$OUT/log.txt.tmp" "$OUT/log.txt"
}

pipeline() {  # pipeline NAME MODEL DATASET OPTIONS...
  local name=$1 model=$2 ds=$3; shift 3
  local v="$WORK/${name}_${ds}_valid" f="$WORK/${name}_${ds}_full" common
  common=(--model "$model" --data "$DATA/$ds" --device "$DEVICE" --quiet --time-budget "$BUDGET" "$@")
  "$PY" bench/retrain_full.py "${common[@]}" --time-budget $((BUDGET + 80)) --out "$f" --select-from "$v" \
    --wait $((BUDGET + 120)) \
    --json-out "$OUT/${name}_${ds}.full.json" > "$WORK/${name}_${ds}_full.log" 2>&1 &
  local full=$!
  "$PY" -m plugin.models.cli train "${common[@]}" --out "$v" > "$WORK/${name}_${ds}_valid.log" 2>&1
  "$PY" -m plugin.models.cli evaluate --model "$v" --data "$DATA/$ds" --device "$DEVICE" --json --quiet \
    > "$WORK/${name}_${ds}_valid.eval.json" 2>> "$WORK/${name}_${ds}_valid.log"
  stage_report "$v/train_report.json" "$WORK/${name}_${ds}_valid.eval.json" "$OUT/${name}_${ds}.valid.json"
  wait "$full"
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || true
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())'
} > "$WORK/00_machine.log"
start=$(date +%s)
# JOBS: one job a line, "NAME MODEL DATASET OPTIONS..." ($SRGNN, $GRU4REC expand); default: the three below
JOBS=${JOBS:-'srgnn srgnn diginetica_srgnn $SRGNN
srgnn srgnn yoochoose1_64_srgnn $SRGNN
gru4rec gru4rec diginetica_srgnn $GRU4REC'}
while read -r line; do
  [[ -z $line ]] && continue
  # shellcheck disable=SC2086  # the option strings are meant to split into words
  eval "pipeline $line" &
done <<< "$JOBS"
while [[ -n $(jobs -r) ]]; do collect_logs; sleep 20; done
wait
echo "all jobs done in $(( $(date +%s) - start )) s" >> "$WORK/00_machine.log"
collect_logs
