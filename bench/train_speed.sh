#!/usr/bin/env bash
# Same-run training-speed comparison on DIGINETICA: ours (bench/train_speed.py) then RecBole 1.2.1
# (bench/recbole_bench.py --max-batches, in the venv bench/recbole_bench.sh builds), model by model, same
# split (first 90% of training sessions), batch 512, 2 threads. Prints one JSON line per run and the ratio.
# Usage: bash bench/train_speed.sh [DATA=../shared/data/diginetica_srgnn] [BATCHES=60] [VENV=runs/recbole_venv]
set -euo pipefail
DATA=${1:-../shared/data/diginetica_srgnn}
BATCHES=${2:-60}
VENV=${3:-runs/recbole_venv}
PY=${PY:-.venv/bin/python}
[[ -x $VENV/bin/python ]] || bash bench/recbole_bench.sh "$DATA" "$VENV" ""  # builds the venv only
export TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1
for pair in stamp:STAMP gru4rec:GRU4Rec srgnn:SRGNN; do
  ours=${pair%%:*} theirs=${pair##*:}
  a=$("$PY" bench/train_speed.py --data "$DATA" --model "$ours" --batches "$BATCHES" | tail -1)
  b=$("$VENV/bin/python" bench/recbole_bench.py --data "$DATA" --model "$theirs" --max-batches "$BATCHES" \
      --work runs/recbole 2>/dev/null | tail -1)
  echo "$a"
  echo "$b"
  "$PY" -c 'import json,sys; a,b=json.loads(sys.argv[1]),json.loads(sys.argv[2]); print(json.dumps({"model": a["model"], "ours_epoch_s": a["projected_epoch_seconds"], "recbole_epoch_s": b["projected_epoch_seconds"], "speedup": round(b["projected_epoch_seconds"]/a["projected_epoch_seconds"], 2)}))' "$a" "$b"
done
