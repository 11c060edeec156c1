#!/usr/bin/env bash
# Issue #11, YOOCHOOSE 1/64's "our best" on one GPU (device tool), in one command:
#  1. the three 90% neural models a five-model blend needs, trained at once on the GPU with bench/run_models.sh's
#     settings (first 90% of the training sessions, epoch chosen on the last 10%), one test evaluation each;
#  2. bench/blend.py's validation grid (0.2 simplex) over V-SKNN + STAMP + SR-GNN + GRU4Rec + CORE, the V-SKNN and
#     CORE 90% models coming from the CPU runs (VSKNN_DIR, CORE_DIR), then one test evaluation of the chosen blend;
#  3. beside them, CORE on DIGINETICA at lr 1e-3 with no time cut (the CPU's run was cut at epoch 4): validation
#     run only, plus one test evaluation of the 90% model.
# The whole-split models and the blend with the chosen weights are scored on the CPU (BENCHMARKS.md, "CORE").
# Usage: bash bench/gpu_blend5.sh DATA_ROOT VSKNN_DIR CORE_DIR OUT [BUDGET_S=300] [DEVICE=cuda] [EXTRA...]
# EXTRA: training options appended to every job (e.g. --max-epoch-units 2000 for a dry run on a CPU).
# Results: OUT/<job>.json (train report + test metrics), OUT/blend5_yoochoose1_64_srgnn.json, OUT/log.txt.
set -uo pipefail
DATA=$1
VSKNN=$2
CORE=$3
OUT=$4
BUDGET=${5:-300}
DEVICE=${6:-cuda}
shift $(($# < 6 ? $# : 6))
EXTRA=("$@")
PY=${PY:-python3}
WORK=${WORK:-/tmp/gpu_blend5}
BLEND_THREADS=${BLEND_THREADS:-12}
BLEND_MAX_VALID=${BLEND_MAX_VALID:-10000}
mkdir -p "$OUT" "$WORK"
YOO=yoochoose1_64_srgnn
DIGI=diginetica_srgnn
# bench/run_models.sh's settings for the 90% models (round 2 chose STAMP 6, SR-GNN 6, GRU4Rec 7 on YOOCHOOSE)
# shellcheck source=bench/gpu_common.sh
source "$(dirname "$0")/gpu_common.sh"
CORE_DIGI="--model core --epochs 12 --patience 2 --lr 1e-3"

collect_logs() {
  for f in "$WORK"/*.log; do [[ -e $f ]] && { echo "=== $(basename "$f")"; tr '\r' '\n' < "$f" | grep -v '/s\]$' | tail -n 40; }; done \
    > "$OUT/log.txt.tmp"
  mv "$OUT/log.txt.tmp" "$OUT/log.txt"
}

job() {  # job NAME DATASET TRAIN-OPTIONS...: train (90%), evaluate on test once, OUT/NAME.json
  local name=$1 ds=$2; shift 2
  local dir="$WORK/$name"
  "$PY" -m plugin.models.cli train --data "$DATA/$ds" --out "$dir" --device "$DEVICE" --threads 2 --quiet \
    --time-budget "$BUDGET" "$@" "${EXTRA[@]}" > "$WORK/$name.log" 2>&1 || return 1
  "$PY" -m plugin.models.cli evaluate --model "$dir" --data "$DATA/$ds" --device "$DEVICE" --json --quiet \
    > "$WORK/$name.eval.json" 2>> "$WORK/$name.log" || return 1
  stage_report "$dir/train_report.json" "$WORK/$name.eval.json" "$OUT/$name.json"
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || true
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())'
  nproc
} > "$WORK/00_machine.log" 2>&1
start=$(date +%s)
# shellcheck disable=SC2086
{ job stamp_$YOO $YOO $STAMP & job srgnn_$YOO $YOO $SRGNN & job gru4rec_$YOO $YOO $GRU4REC & wait; } &
yc=$!
# shellcheck disable=SC2086
job core_lr1e-3_$DIGI $DIGI $CORE_DIGI &
core=$!
while kill -0 "$yc" 2> /dev/null; do collect_logs; sleep 15; done
echo "YOOCHOOSE models done at $(( $(date +%s) - start )) s" >> "$WORK/00_machine.log"
"$PY" bench/blend.py --data "$DATA/$YOO" --threads "$BLEND_THREADS" --step 0.2 --max-valid "$BLEND_MAX_VALID" \
  --models "$VSKNN" "$WORK/stamp_$YOO" "$WORK/srgnn_$YOO" "$WORK/gru4rec_$YOO" "$CORE" \
  --out "$OUT/blend5_$YOO.json" > "$WORK/blend5.log" 2>&1 &
blend=$!
while kill -0 "$blend" 2> /dev/null || kill -0 "$core" 2> /dev/null; do collect_logs; sleep 15; done
wait
echo "all done at $(( $(date +%s) - start )) s" >> "$WORK/00_machine.log"
collect_logs
