#!/usr/bin/env bash
# Issue #11, YOOCHOOSE 1/64's "our best" with seed ensembles, on one GPU (device tool), in one command:
#  1. STAMP and SR-GNN with seeds 0, 1, 2 and GRU4Rec with seeds 0, 1 (bench/run_models.sh's settings), each twice
#     at once: on the first 90% of the training sessions (epoch chosen on the last 10%) and on the whole training
#     split (bench/retrain_full.py --select-from: the epoch that validation run chose), one test evaluation each;
#  2. bench/blend.py's validation grid (0.1 simplex, every validation example) over V-SKNN, STAMP, SR-GNN, GRU4Rec,
#     twice in the same run: each neural member one seed-0 model, and each neural member its seeds averaged
#     (a seed ensemble); the 90% blends scored on test once each, then the whole-split models with the weights each
#     grid chose (blend.py --weights).
# V-SKNN is the CPU's saved model (VSKNN_DIR, fitted on the whole training split; blend.py refits it on 90% for
# validation). Which of the two blends is "our best" is decided by their validation MRR@20, not by test.
# Usage: bash bench/gpu_seeds.sh DATA_ROOT VSKNN_DIR OUT [DEVICE=cuda] [EXTRA...]
# EXTRA: training options appended to every job (e.g. --max-epoch-units 500 --epochs 1 for a dry run on a CPU).
# Results (the device tool brings back few files): OUT/log.txt and OUT/results.tgz, which holds <job>.json (train
# report + test), full_<job>.json and blend_*.json; both refreshed every 10 s, so a cut run still returns what it has.
set -uo pipefail
DATA=$1
VSKNN=$2
OUT=$3
DEVICE=${4:-cuda}
shift $(($# < 4 ? $# : 4))
EXTRA=("$@")
PY=${PY:-python3}
WORK=${WORK:-/tmp/gpu_seeds}
THREADS=${THREADS:-1}
RES=$WORK/res
mkdir -p "$OUT" "$WORK" "$RES"
YOO=${DATASET:-yoochoose1_64_srgnn}  # DATASET: another SR-GNN folder under DATA_ROOT (a dry run)
D="$DATA/$YOO"
# shellcheck source=bench/gpu_common.sh
source "$(dirname "$0")/gpu_common.sh"

collect_logs() {
  for f in "$WORK"/*.log; do [[ -e $f ]] && { echo "=== $(basename "$f")"; tr '\r' '\n' < "$f" | grep -v '/s\]$' | tail -n 12; }; done \
    > "$OUT/log.txt.tmp"
  mv "$OUT/log.txt.tmp" "$OUT/log.txt"
  tar -C "$RES" -czf "$OUT/results.tgz.tmp" . && mv "$OUT/results.tgz.tmp" "$OUT/results.tgz"
}

any_alive() {
  local p
  for p; do kill -0 "$p" 2> /dev/null && return 0; done
  return 1
}

pair() {  # pair NAME SEED TRAIN-OPTIONS...: the 90% run and the whole-split run at once
  local name=$1 seed=$2; shift 2
  local dir="$WORK/$name"
  "$PY" bench/retrain_full.py --select-from "$dir" --json-out "$RES/full_$name.json" --data "$D" \
    --out "$WORK/full_$name" --device "$DEVICE" --threads "$THREADS" --seed "$seed" "$@" "${EXTRA[@]}" \
    > "$WORK/full_$name.log" 2>&1 &
  local full=$!
  "$PY" -m plugin.models.cli train --data "$D" --out "$dir" --device "$DEVICE" --threads "$THREADS" --quiet \
    --seed "$seed" "$@" "${EXTRA[@]}" > "$WORK/$name.log" 2>&1 || { wait $full; return 1; }
  "$PY" -m plugin.models.cli evaluate --model "$dir" --data "$D" --device "$DEVICE" --json --quiet \
    > "$WORK/$name.eval.json" 2>> "$WORK/$name.log"
  stage_report "$dir/train_report.json" "$WORK/$name.eval.json" "$RES/$name.json"
  wait $full
}

blend_pair() {  # blend_pair NAME 90%-MEMBERS... -- WHOLE-SPLIT-MEMBERS...: grid + 90% test, then whole-split test
  local name=$1; shift
  local valid=() full=()
  while [[ $1 != -- ]]; do valid+=("$1"); shift; done
  shift
  full=("$@")
  "$PY" bench/blend.py --data "$D" --device "$DEVICE" --threads 2 --step 0.1 --max-valid 0 \
    --models "${valid[@]}" --out "$RES/blend_$name.json" > "$WORK/blend_$name.log" 2>&1 || return 1
  local w
  w=$("$PY" -c 'import json,sys; print(",".join(str(x) for x in json.load(open(sys.argv[1]))["weights"]))' \
    "$RES/blend_$name.json")
  "$PY" bench/blend.py --data "$D" --device "$DEVICE" --threads 2 --weights "$w" \
    --models "${full[@]}" --out "$RES/full_blend_$name.json" >> "$WORK/blend_$name.log" 2>&1
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || true
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())'
  nproc
} > "$WORK/00_machine.log" 2>&1
start=$(date +%s)
pids=()
for seed in 0 1 2; do
  # shellcheck disable=SC2086
  pair stamp_s$seed $seed $STAMP & pids+=($!)
  # shellcheck disable=SC2086
  pair srgnn_s$seed $seed $SRGNN & pids+=($!)
done
for seed in 0 1; do
  # shellcheck disable=SC2086
  pair gru4rec_s$seed $seed $GRU4REC & pids+=($!)
done
while any_alive "${pids[@]}"; do
  collect_logs; sleep 10
done
wait "${pids[@]}"
echo "models done at $(( $(date +%s) - start )) s" >> "$WORK/00_machine.log"
W=$WORK
blend_pair seed0 "$VSKNN" "$W/stamp_s0" "$W/srgnn_s0" "$W/gru4rec_s0" -- \
  "$VSKNN" "$W/full_stamp_s0" "$W/full_srgnn_s0" "$W/full_gru4rec_s0" &
b1=$!
blend_pair seeds "$VSKNN" "$W/stamp_s0+$W/stamp_s1+$W/stamp_s2" "$W/srgnn_s0+$W/srgnn_s1+$W/srgnn_s2" \
  "$W/gru4rec_s0+$W/gru4rec_s1" -- "$VSKNN" "$W/full_stamp_s0+$W/full_stamp_s1+$W/full_stamp_s2" \
  "$W/full_srgnn_s0+$W/full_srgnn_s1+$W/full_srgnn_s2" "$W/full_gru4rec_s0+$W/full_gru4rec_s1" &
b2=$!
while any_alive $b1 $b2; do collect_logs; sleep 10; done
wait
echo "all done at $(( $(date +%s) - start )) s" >> "$WORK/00_machine.log"
cp "$WORK"/*.log "$RES"/
collect_logs
