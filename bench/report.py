"""Markdown table + matplotlib plot of our measured numbers beside the published ones.

Reads the ``<model>_<dataset>.json`` files written by ``bench/run_models.sh`` (``evaluate --json``) and the
training reports beside them, and the session-rec tables in ``published_results/``.

    python bench/report.py --runs runs/bench runs/b2 --published ../shared/data/published_results --out runs/report
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

DATASETS = {"diginetica_srgnn": ("DIGINETICA", "DIGINETICA"), "yoochoose1_64_srgnn": ("YOOCHOOSE 1/64", "RSC15_64")}
NAMES = {
    "pop": "POP",
    "spop": "S-POP",
    "markov": "Markov-1",
    "itemknn": "Item-KNN",
    "vsknn": "V-SKNN",
    "gru4rec": "GRU4Rec",
    "stamp": "STAMP",
    "srgnn": "SR-GNN",
    "blend": "Blend (validation-weighted)",
}
SESSION_REC = {"markov": "markov", "vsknn": "vsknn", "gru4rec": "gru4rec", "stamp": "stamp"}
# Table A of ../shared/data/README.md (SR-GNN protocol), P@20 / MRR@20 in %, with its source tags
TABLE_A = {
    "yoochoose1_64_srgnn": {
        "pop": (6.71, 1.65, "2nd"),
        "spop": (30.44, 18.35, "2nd"),
        "itemknn": (51.60, 21.81, "R"),
        "gru4rec": (60.64, 22.89, "2nd"),
        "stamp": (68.74, 29.67, "log"),
        "srgnn": (70.57, 30.94, "2nd"),
    },
    "diginetica_srgnn": {
        "pop": (0.89, 0.20, "R"),
        "spop": (21.06, 13.68, "R"),
        "itemknn": (35.75, 11.57, "R"),
        "gru4rec": (29.45, 8.33, "R"),
        "stamp": (45.64, 14.32, "R"),
        "srgnn": (50.73, 17.59, "doc"),
    },
}
TARGETS = {  # the targets, P@20 / MRR@20
    "diginetica_srgnn": {
        "stamp": (45.64, 14.32),
        "srgnn": (50.73, 17.59),
        "gru4rec": (50.97, 17.50),
        "vsknn": (52.03, 18.41),
        "blend": (54.0, 19.0),
    },
    "yoochoose1_64_srgnn": {
        "stamp": (68.74, 29.67),
        "srgnn": (70.57, 30.94),
        "gru4rec": (65.28, 27.52),
        "vsknn": (69.61, 28.79),
        "blend": (71.5, 31.5),
    },
}


def session_rec_table(path: Path) -> dict[tuple[str, str], tuple[float, float]]:
    out = {}
    with (path / "session_rec_result_tables.csv").open() as f:
        for row in csv.DictReader(f):
            if row["protocol"] == "single split" and row["HR@20"]:
                out[(row["dataset_caption"], row["algorithm"])] = (
                    100 * float(row["HR@20"]),
                    100 * float(row["MRR@20"]),
                )
    return out


def load_runs(runs: Path) -> dict[tuple[str, str], dict]:
    out = {}
    for p in sorted(runs.glob("*.json")):
        for ds in DATASETS:
            if p.stem.endswith("_" + ds):
                model = p.stem[: -len(ds) - 1]
                text = p.read_text().strip()
                if not text:
                    continue
                result = json.loads(text.splitlines()[-1])
                rep = runs / f"{model}_{ds}" / "train_report.json"
                result["train"] = json.loads(rep.read_text()) if rep.is_file() else {}
                out[(model, ds)] = result
    return out


def _model_of(path: str) -> str:
    name = Path(path).name
    for ds in DATASETS:
        name = name.removesuffix("_" + ds)
    return name


def _epochs_note(result: dict) -> str:
    if result.get("model") == "blend":
        if "models" in result:
            parts = ", ".join(
                f"{NAMES.get(_model_of(p), p)} {w:g}" for p, w in zip(result["models"], result["weights"]) if w
            )
            return f"weights {parts}, picked on validation"
        return f"V-SKNN+STAMP, weight {result['weight']} picked on validation"
    r = (result.get("train") or {}).get("report") or {}
    eps = r.get("epochs") or []
    if not eps:
        return "counts, no epochs"
    secs = "/".join(f"{e['train_seconds']:.0f}" for e in eps)
    return (
        f"{len(eps)} epochs ({secs} s; {eps[0]['units']:,} units/epoch), best {r.get('best_epoch')}, "
        f"stop: {r.get('stopped')}"
    )


def markdown(runs: dict, published: dict) -> str:
    lines = []
    for ds, (title, sr_name) in DATASETS.items():
        lines += [
            f"### {title} (`{ds}`)",
            "",
            "| model | HR@5 | MRR@5 | HR@10 | MRR@10 | **P@20** | **MRR@20** | NDCG@20 | cov@20 | pop@20 "
            "| published, SR-GNN protocol (table A) | session-rec single split | target | eval s | training |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for model in NAMES:
            r = runs.get((model, ds))
            a = TABLE_A[ds].get(model)
            b = published.get((sr_name, SESSION_REC.get(model, "-")))
            t = TARGETS[ds].get(model)
            pub_a = f"{a[0]:.2f} / {a[1]:.2f} [{a[2]}]" if a else "—"
            pub_b = f"{b[0]:.2f} / {b[1]:.2f}" if b else "—"
            tgt = f"≥ {t[0]:.2f} / {t[1]:.2f}" if t else "—"
            if r is None:
                lines.append(f"| {NAMES[model]} | not run | | | | | | | | | {pub_a} | {pub_b} | {tgt} | | |")
                continue
            m = {k: 100 * v for k, v in r["metrics"].items()}
            lines.append(
                f"| {NAMES[model]} | {m['HR@5']:.2f} | {m['MRR@5']:.2f} | {m['HR@10']:.2f} | {m['MRR@10']:.2f} | "
                f"**{m['HR@20']:.2f}** | **{m['MRR@20']:.2f}** | {m['NDCG@20']:.2f} | {m['coverage@20']:.1f} | "
                f"{m['popularity@20']:.1f} | {pub_a} | {pub_b} | {tgt} | {r['eval_seconds']:.1f} | "
                f"{_epochs_note(r)} |"
            )
        lines.append("")
    return "\n".join(lines)


def plot(runs: dict, published: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(14, 8))
    for col, ds in enumerate(DATASETS):
        models = [m for m in NAMES if (m, ds) in runs]
        for row, metric in enumerate(("HR", "MRR")):
            ax = axes[row][col]
            width = 0.2
            for j, k in enumerate((5, 10, 20)):
                vals = [100 * runs[(m, ds)]["metrics"][f"{metric}@{k}"] for m in models]
                ax.bar([i + (j - 1) * width for i in range(len(models))], vals, width, label=f"ours @{k}")
            pub = [TABLE_A[ds].get(m) for m in models]
            xs = [i for i, p in enumerate(pub) if p]
            ys = [p[0 if metric == "HR" else 1] for p in pub if p]
            ax.scatter(
                [x + width for x in xs], ys, marker="*", s=120, color="black", zorder=3, label="published @20 (table A)"
            )
            sr = [published.get((DATASETS[ds][1], SESSION_REC.get(m, "-"))) for m in models]
            xs2 = [i for i, p in enumerate(sr) if p]
            ys2 = [p[0 if metric == "HR" else 1] for p in sr if p]
            ax.scatter([x + width for x in xs2], ys2, marker="x", s=80, color="red", zorder=3, label="session-rec @20")
            ax.set_xticks(range(len(models)))
            ax.set_xticklabels([NAMES[m] for m in models], rotation=20)
            ax.set_title(f"{DATASETS[ds][0]}: {metric}@k (%)")
            ax.grid(axis="y", alpha=0.3)
            if row == 0 and col == 0:
                ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--runs",
        nargs="+",
        default=["runs/bench"],
        help="run folders; a later folder's result for a model and dataset replaces an earlier one's",
    )
    ap.add_argument("--published", default="../shared/data/published_results")
    ap.add_argument("--out", default="runs/report")
    args = ap.parse_args(argv)
    runs: dict = {}
    for folder in args.runs:
        runs.update(load_runs(Path(folder)))
    published = session_rec_table(Path(args.published))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    md = markdown(runs, published)
    (out / "report.md").write_text(md)
    plot(runs, published, out / "report.png")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
