"""RecBole side of the speed/accuracy comparison (bench-only; runs inside the venv that
``bench/recbole_bench.sh`` builds, never in ours).

Writes the SR-GNN split as RecBole benchmark files (``<name>.train/valid/test.inter`` with
``session_id:token item_id_list:token_seq item_id:token``; validation = last 10% of training sessions, as
ours), trains one model with full-catalogue cross-entropy (``train_neg_sample_args: None``) and prints one
JSON line with seconds per training epoch, test-evaluation seconds and the test metrics.

    python bench/recbole_bench.py --data ../shared/data/diginetica_srgnn --model STAMP --epochs 1 --work runs/recbole
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path


def _write_inter(path: Path, rows) -> None:
    with path.open("w") as f:
        f.write("session_id:token\titem_id_list:token_seq\titem_id:token\n")
        for sid, prefix, target in rows:
            f.write(f"{sid}\t{' '.join(map(str, prefix))}\t{target}\n")


def export(data: Path, work: Path, name: str) -> Path:
    sessions = [list(map(int, line.split())) for line in (data / "train_sessions.txt").read_text().splitlines() if line]
    cut = len(sessions) - int(round(0.1 * len(sessions)))

    def prefixes(sess, offset):
        for i, s in enumerate(sess):
            for n in range(len(s) - 1, 0, -1):
                yield offset + i, s[:n], s[n]

    out = work / name
    out.mkdir(parents=True, exist_ok=True)
    _write_inter(out / f"{name}.train.inter", prefixes(sessions[:cut], 0))
    _write_inter(out / f"{name}.valid.inter", prefixes(sessions[cut:], cut))
    test = []
    for line in (data / "test_examples.tsv").read_text().splitlines()[1:]:
        sid, prefix, target = line.split("\t")
        test.append((10_000_000 + int(sid), prefix.split(), target))
    _write_inter(out / f"{name}.test.inter", test)
    return out


class _Head:
    """The first ``n`` batches of a RecBole train loader (its ``_train_epoch`` only iterates it)."""

    def __init__(self, loader, n: int) -> None:
        self.loader, self.n, self.shuffle = loader, n, getattr(loader, "shuffle", False)

    def __iter__(self):
        return itertools.islice(iter(self.loader), self.n)

    def __len__(self) -> int:
        return min(self.n, len(self.loader))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default="STAMP", help="RecBole model name: STAMP, GRU4Rec, SRGNN")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--work", default="runs/recbole")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--max-batches",
        type=int,
        default=None,
        help="time only the first N training batches per epoch (projected to a full epoch), skip the test",
    )
    args = ap.parse_args()

    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    torch.set_num_threads(args.threads)
    data = Path(args.data)
    name = data.name
    work = Path(args.work)
    export(data, work, name)
    config = Config(
        model=args.model,
        dataset=name,
        config_dict={
            "data_path": str(work),
            "benchmark_filename": ["train", "valid", "test"],
            "load_col": {"inter": ["session_id", "item_id_list", "item_id"]},
            "USER_ID_FIELD": "session_id",
            "ITEM_ID_FIELD": "item_id",
            "alias_of_item_id": ["item_id_list"],
            "MAX_ITEM_LIST_LENGTH": 50,
            "loss_type": "CE",
            "train_neg_sample_args": None,
            "train_batch_size": 512,
            "eval_batch_size": 2048,
            "learning_rate": 0.001,
            "epochs": args.epochs,
            "embedding_size": 100,
            "hidden_size": 100,
            "metrics": ["Recall", "MRR", "NDCG"],
            "topk": [5, 10, 20],
            "valid_metric": "MRR@20",
            "eval_args": {"mode": "full", "order": "TO"},
            "device": "cpu",
            "use_gpu": False,
            "show_progress": False,
            "seed": 0,
            "reproducibility": True,
        },
    )
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    model = get_model(config["model"])(config, train_data.dataset).to("cpu")
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    epoch_seconds = []
    n_batches = len(train_data)
    if args.max_batches is not None:  # same batches, fewer of them: time per batch x batches per epoch
        warm = _Head(train_data, 3)
        trainer._train_epoch(warm, 0, show_progress=False)
        head = _Head(train_data, args.max_batches)
        t0 = time.perf_counter()
        trainer._train_epoch(head, 0, show_progress=False)
        per_batch = (time.perf_counter() - t0) / args.max_batches
        print(
            json.dumps(
                {
                    "recbole_model": args.model,
                    "data": name,
                    "batches_timed": args.max_batches,
                    "batch_size": config["train_batch_size"],
                    "batches_per_epoch": n_batches,
                    "ms_per_batch": round(1000 * per_batch, 1),
                    "projected_epoch_seconds": round(per_batch * n_batches, 1),
                    "n_items": dataset.item_num,
                }
            )
        )
        return 0
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        trainer._train_epoch(train_data, epoch, show_progress=False)
        epoch_seconds.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    result = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    eval_seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "recbole_model": args.model,
                "data": name,
                "epoch_seconds": epoch_seconds,
                "test_eval_seconds": eval_seconds,
                "n_items": dataset.item_num,
                "metrics": {k: float(v) for k, v in dict(result).items()},
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
