# shellcheck shell=bash
# Sourced by bench/gpu_blend5.sh and bench/gpu_seeds.sh (STAMP, SRGNN, GRU4REC: bench/run_models.sh's settings for
# the 90% runs) and by bench/gpu_protocol.sh (stage_report). Needs PY.
STAMP="--model stamp --epochs 8 --lr 5e-3 --lr-decay 0.5 --patience 1"
SRGNN="--model srgnn --batch-size 100 --lr 1e-3 --weight-decay 1e-5 --lr-decay 0.1 --lr-decay-every 3 --epochs 6
  --patience 1"
GRU4REC="--model gru4rec --batch-size 128 --lr 3e-3 --lr-decay 0.7 --epochs 10 --patience 1 --option dim=200
  --option hidden=200 --option negatives=sampled --option loss=bpr-max --option elu_param=0.5 --option bpreg=1.0
  --option dropout_hidden=0.3"
export STAMP SRGNN GRU4REC

stage_report() {  # stage_report TRAIN_REPORT EVAL_OUTPUT OUT_JSON: a 90% run's report and its one test evaluation
  "$PY" - "$1" "$2" "$3" <<'PYEOF'
import json, sys
import torch
train = json.load(open(sys.argv[1]))
test = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
flags = {"tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32}
json.dump({"stage": "first 90% of training sessions, epoch chosen on the last 10%", "train": train, "test": test,
           "torch_defaults": flags}, open(sys.argv[3], "w"), indent=1)
PYEOF
}
