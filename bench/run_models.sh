#!/usr/bin/env bash
# Train + evaluate every session model on the two SR-GNN benchmarks, one job at a time (2 shared cores).
# Usage: bash bench/run_models.sh [DATA_ROOT=../shared/data] [OUT=runs/bench] [STAGE=all|knn|neural|stamp|srgnn|gru4rec]
# Every model: train on the first 90% of training sessions (neural: epoch picked on the last 10%), then
# one test evaluation (skipped when its JSON exists), written as JSON to $OUT/<model>_<dataset>.json. Logs in $OUT/*.log.
set -euo pipefail
DATA=${1:-../shared/data}
OUT=${2:-runs/bench}
STAGE=${3:-all}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"
run() {  # run NAME DATASET TRAIN-ARGS...
  local name=$1 ds=$2; shift 2
  local dir="$OUT/${name}_${ds}"
  if [[ -s "$dir.json" ]]; then cat "$dir.json"; return; fi  # already measured: delete the .json to redo
  nice -n 10 "$PY" -m plugin.models.cli train --data "$DATA/$ds" --out "$dir" --quiet "$@" > "$dir.train.log" 2>&1
  nice -n 10 "$PY" -m plugin.models.cli evaluate --model "$dir" --data "$DATA/$ds" --json --quiet \
    > "$dir.json" 2> "$dir.eval.log"
  cat "$dir.json"
}
DIGI=diginetica_srgnn
YOO=yoochoose1_64_srgnn
if [[ $STAGE == all || $STAGE == knn ]]; then
  for ds in $DIGI $YOO; do
    run pop $ds --model pop
    run spop $ds --model spop
    run markov $ds --model markov
    run itemknn $ds --model itemknn
  done
  # V-SKNN options chosen on the validation split by bench/tune_knn.py (see BENCHMARKS.md)
  run vsknn $DIGI --model vsknn --option k=100 --option sample_size=500 --option weighting=div \
    --option weighting_score=div --option idf_weighting=1
  run vsknn $YOO --model vsknn --option k=200 --option sample_size=1000 --option weighting=log \
    --option weighting_score=div --option idf_weighting=1
fi
if [[ $STAGE == all || $STAGE == neural || $STAGE == stamp ]]; then
  run stamp $YOO --model stamp --epochs 10 --lr 5e-3 --patience 1 --time-budget 1200
  run stamp $DIGI --model stamp --epochs 10 --lr 5e-3 --patience 1 --time-budget 1500
fi
if [[ $STAGE == all || $STAGE == neural || $STAGE == srgnn ]]; then
  run srgnn $DIGI --model srgnn --epochs 10 --lr 3e-3 --weight-decay 1e-5 --patience 1 --time-budget 720
  run srgnn $YOO --model srgnn --epochs 10 --lr 3e-3 --weight-decay 1e-5 --patience 1 --time-budget 600
fi
if [[ $STAGE == all || $STAGE == neural || $STAGE == gru4rec ]]; then
  run gru4rec $DIGI --model gru4rec --batch-size 128 --epochs 10 --lr 3e-3 --patience 1 --time-budget 480
  run gru4rec $YOO --model gru4rec --batch-size 128 --epochs 10 --lr 3e-3 --patience 1 --time-budget 300
fi
