#!/usr/bin/env bash
# RecBole 1.2.1 in its OWN virtualenv (it needs numpy<2, pandas<3, setuptools<81 and
# TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1, pins our package must not carry), then one epoch of STAMP / GRU4Rec /
# SR-GNN on the same DIGINETICA split, printed as JSON lines beside ours (bench/run_models.sh).
# Usage: bash bench/recbole_bench.sh [DATA=../shared/data/diginetica_srgnn] [VENV=runs/recbole_venv] [MODELS="STAMP GRU4Rec SRGNN"]
set -euo pipefail
DATA=${1:-../shared/data/diginetica_srgnn}
VENV=${2:-runs/recbole_venv}
MODELS=${3:-"STAMP GRU4Rec SRGNN"}
if [[ ! -x $VENV/bin/python ]]; then
  python3 -m venv "$VENV"
  # torch==2.13.0: the same CPU build as ours (a bare "torch" may pull a multi-GB CUDA build)
  "$VENV/bin/pip" install -q "recbole==1.2.1" "numpy<2" "pandas<3" "setuptools<81" "torch==2.13.0"
  "$VENV/bin/pip" install -q ray hyperopt tensorboard thop texttable colorlog colorama scipy  # recbole's imports
fi
export TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1
for m in $MODELS; do  # empty MODELS: only build the venv
  nice -n 10 "$VENV/bin/python" bench/recbole_bench.py --data "$DATA" --model "$m" --epochs 1 --work runs/recbole
done
