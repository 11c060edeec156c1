"""Install a trained-shaped hybrid intent model into an index folder (a new version): the fixture of BENCHMARKS
"One-shot CLI and a worker with a trained intent model installed".

    python bench/install_trained_intent.py DIR

The zero-shot weights with small random learned rows (150 articles, output vectors) and transition counts, so that it
suggests as a trained model would and costs what one costs to load and run; no log or training needed.
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plugin import SessionRecommender  # noqa: E402
from plugin.intent import ContentSTAMP, ContentSTAMPConfig  # noqa: E402
from plugin.transitions import ItemTransitions  # noqa: E402

d = sys.argv[1]
rec = SessionRecommender.load(d)
ids = list(rec.index.ids())
torch.manual_seed(0)
zero = ContentSTAMP.zero_shot(rec.index.dim)
cfg = ContentSTAMPConfig(
    input_dim=rec.index.dim,
    stamp=zero.config.stamp,
    item_keys=tuple(ids[:150]),
    catalogue=tuple(ids),
    output_vectors=True,
)
model = ContentSTAMP(cfg)  # reads like the zero-shot intent, with small learned rows: suggestions as a trained one
model.load_state_dict(zero.state_dict(), strict=False)
with torch.no_grad():
    for v in (model.item_vectors, model.next_vectors, model.out_vectors):
        v.weight[1:].normal_(0.0, 0.01)
model.transitions = ItemTransitions.fit([ids[i : i + 4] for i in range(0, len(ids) - 4, 2)])
rec.intent_model = model.eval()
print(rec.save(d), len(ids), ids[:3])
