"""`python -m plugin …`: index a knowledge base, ask for suggestions, run the demo (and, when installed,
the model training/evaluation commands and the adapters' commands, found through entry points)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path

from .encoder import ENCODER_BACKENDS
from .errors import PluginError
from .transitions import ITEM_MODELS
from .versions import is_index_dir

__all__ = ["main", "build_parser", "suggestion_count", "demo_cache_dir", "demo_index_dir", "build_demo_recommender"]

logger = logging.getLogger(__name__)

# Adapters (web server, …) register extra subcommands here; plugin itself never imports them.
COMMAND_GROUP = "session_suggest.cli"
DEMO_SITE_GROUP = "session_suggest.demo_site"


def demo_cache_dir() -> Path:
    base = os.environ.get("SESSION_SUGGEST_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "session-suggest"
    )
    return Path(base) / f"demo-py{sys.version_info.major}{sys.version_info.minor}"


def _make_encoder(name: str, backend: str = "auto", threads: int = 1):
    from .encoder import HashingEncoder, sentence_encoder

    if name == "minilm":
        return sentence_encoder(backend, threads=threads)
    if name == "hashing":
        return HashingEncoder(256)
    if name.startswith("hashing:") and name[len("hashing:") :].isdigit():
        return HashingEncoder(int(name[len("hashing:") :]))
    raise PluginError(f"unknown encoder {name!r}. Valid encoders are: minilm, hashing[:DIM]")


def suggestion_count(value: str) -> int:
    """argparse type for -k: a usage error (not a traceback) outside 1..100, the range suggest() accepts."""
    try:
        k = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if not 1 <= k <= 100:
        raise argparse.ArgumentTypeError(f"must be between 1 and 100, got {k}")
    return k


def _positive_mb(value: str) -> float:
    try:
        mb = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of MB, got {value!r}") from None
    if not mb * 1024 * 1024 >= 1:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"must be a positive number of MB, got {value!r}")
    return mb


def cmd_index(args: argparse.Namespace) -> int:
    from .knowledge_base import load_articles
    from .recommender import SessionRecommender

    source = Path(args.source)
    if source.is_dir():
        from .ingest import scan_folder

        scan = scan_folder(
            source,
            args.base_url,
            include=args.include,
            exclude=args.exclude,
            default_exclude=not args.keep_all,
            max_file_bytes=int(args.max_file_mb * 1024 * 1024),
        )
        articles = scan.articles
        print(f"{source}: {scan.summary()}")
    else:
        if args.include or args.exclude:
            raise PluginError("--include/--exclude choose files in a folder; the source is a single file")
        articles = load_articles(args.source, base_url=args.base_url)
    out = Path(args.out)
    backend = args.backend
    if backend == "auto" and is_index_dir(out) and not args.rebuild:
        backend = _recorded_backend(out) or backend  # an update keeps the encoder the index was built with
    # Indexing is a batch job: ONNX Runtime may use every core (the torch backend follows torch's own setting).
    encoder = _make_encoder(args.encoder, backend, threads=args.threads or os.cpu_count() or 1)
    if is_index_dir(out) and not args.rebuild:
        rec = SessionRecommender.load(out, encoder=encoder)
        stale = set(rec.kb.ids()) - {a.id for a in articles}
        if stale:
            rec.remove_articles(sorted(stale))
        before = rec.encoder.misses
        rec.upsert_articles(articles, progress=not args.quiet)
        encoded = rec.encoder.misses - before
    else:
        rec = SessionRecommender.build(articles, encoder=encoder, index_kind=args.kind, progress=not args.quiet)
        encoded = rec.encoder.misses
    version = rec.save(out).name
    print(
        f"indexed {len(rec.kb)} articles into {out} as version {version} ({encoded} encoded, the rest from the cache)"
    )
    return 0


def _recorded_backend(out: Path) -> str | None:
    """The encoder backend the committed version of an index folder was built with (None if not a
    sentence-transformer's or unreadable)."""
    from .encoder import backend_of
    from .versions import resolve_version

    try:
        d, _ = resolve_version(out)
        return backend_of(str(json.loads((d / "index.json").read_text(encoding="utf-8")).get("encoder", "")))
    except (OSError, ValueError, PluginError):
        return None


def cmd_suggest(args: argparse.Namespace) -> int:
    from .recommender import SessionRecommender

    rec = SessionRecommender.load(args.index)
    suggestions = rec.suggest_for(args.viewed, k=args.k)
    rows = [{k: s.to_dict()[k] for k in ("id", "title", "url", "score", "reason")} for s in suggestions]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
    else:
        for r in rows:
            print(f"{r['score']:.3f}  {r['title']}  <{r['url']}>\n       {r['reason']}")
    return 0


def cmd_train_intent(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .content_training import (
        ContentTrainConfig,
        choose_cold_start,
        choose_scoring,
        choose_transitions,
        train_content_stamp,
    )
    from .event_log import read_click_log
    from .recommender import SessionRecommender
    from .threads import ENV_THREADS, pin_threads

    rec = SessionRecommender.load(args.index)
    if not os.environ.get(ENV_THREADS):
        pin_threads(os.cpu_count() or 1)  # training is bulk work, not a served query: every core (load pinned one)
    logged = read_click_log(args.log, known=set(rec.kb.ids()))
    if ignored := logged.describe():
        print(f"event log {ignored}")
    sessions = [list(s.items) for s in logged.sessions]
    cfg = ContentTrainConfig(epochs=args.epochs, dim=args.dim, min_clicks=args.min_clicks)
    model, report = train_content_stamp(sessions, rec.index, cfg, progress=not args.quiet)
    if args.min_clicks > 0:
        # Learned candidate vectors raised HR but not always MRR in the learning-loop bench: the held-out
        # sessions decide whether the model keeps them.
        plain_cfg = replace(cfg, output_vectors=False)
        other, other_report = train_content_stamp(sessions, rec.index, plain_cfg, progress=not args.quiet)
        key = f"MRR@{cfg.cutoff}"
        print(
            f"held-out {key}: with learned candidate vectors {report.valid[key]:.4f}, without "
            f"{other_report.valid[key]:.4f}"
        )
        if other_report.valid[key] > report.valid[key]:
            model, report, cfg = other, other_report, plain_cfg
    print(
        f"{report.train_examples} training / {report.valid_examples} held-out examples from {len(sessions)} sessions; "
        f"{report.learned_articles} articles with a learned vector; best epoch {report.best_epoch} of {report.epochs_run}"
    )
    print(f"held-out  trained: {report.valid}   zero-shot: {report.zero_shot_valid}")
    if not report.beats_zero_shot and not args.force:
        print(
            "the trained model does not beat the zero-shot one on held-out sessions: index left unchanged (--force to install it)"
        )
        return 0
    model, scoring = choose_scoring(rec, model, sessions, cfg)
    print(
        f"held-out MRR@{cfg.cutoff} through the recommender: plain scoring {scoring['plain']:.4f}, with the rules' "
        f"fusion {scoring['fused']:.4f}: serving with {'plain scoring' if model.config.plain_scoring else 'fusion'}"
    )
    model, blends = choose_transitions(
        rec, model, sessions, cfg, item_model=args.item_model, folds=args.blend_folds, progress=not args.quiet
    )
    if blends:
        print(
            f"held-out MRR@{cfg.cutoff} with the log's transition counts blended in: "
            + ", ".join(f"{name} {v:.4f}" for name, v in blends.items())
        )
    t = model.transitions
    print(
        "serving "
        + (
            f"with the transition counts (decay {t.config.decay:g}, weight {t.config.weight:g}, "
            f"popularity {t.config.popularity:g})"
            if t is not None
            else "without transition counts"
        )
    )
    model, cold = choose_cold_start(rec, model, sessions, cfg, progress=not args.quiet, policy=args.cold_start)
    if cold:
        print(
            f"held-out MRR@{cfg.cutoff} of a stand-in trained without a tenth of the articles, which play ones "
            "added after training: " + ", ".join(f"{name} {v:.4f}" for name, v in cold.items())
        )
    print(
        "articles added after training will be "
        + (
            "scored on the trained scale (calibrated)"
            if model.config.cold_start == "score"
            else "at their zero-shot rank"
        )
        + (
            f" (zero-shot intent at temperature {model.config.zero_shot_temperature:g})"
            if model.config.catalogue and model.config.plain_scoring
            else ""
        )
        + (f", shown within its top {model.config.cold_depth}" if model.config.cold_depth else "")
        + (
            f", below the known successors with transition evidence >= {model.config.cold_protect:g} (protected slots)"
            if model.config.cold_protect and model.config.cold_start == "rank"
            else ""
        )
    )
    rec.intent_model = model
    rec.save(args.index)
    print(f"installed the trained content STAMP into {args.index}")
    return 0


def demo_index_dir(cache: Path, encoder_name: str) -> Path:
    """Where the demo index for this encoder lives under `cache` (versioned with the demo KB's format)."""
    from .demo_kb import DEMO_KB_VERSION

    return cache / f"{encoder_name.replace(':', '-').replace('/', '-')}-kb{DEMO_KB_VERSION}"


def build_demo_recommender(cache: Path | None = None, *, encoder: str = "minilm", progress: bool = True):
    """The demo KB (stdlib docs via pydoc) indexed once and cached; later runs load it."""
    from .demo_kb import stdlib_articles
    from .recommender import SessionRecommender

    cache = cache or demo_cache_dir()
    enc = _make_encoder(encoder)
    target = demo_index_dir(cache, enc.name)
    if is_index_dir(target):
        return SessionRecommender.load(target, encoder=enc)
    rec = SessionRecommender.build(stdlib_articles(progress=progress), encoder=enc, progress=progress)
    rec.save(target)
    return rec


DEMO_VISIT = (
    ("json", "You open the json module's docs…"),
    ("pickle", "…then pickle."),
    (None, "…and search for “store python objects on disk”"),
)


def cmd_demo(args: argparse.Namespace) -> int:
    cache = Path(args.cache) if args.cache else demo_cache_dir()
    rec = build_demo_recommender(cache, encoder=args.encoder, progress=not args.quiet)
    print(f"\nDemo knowledge base: {len(rec.kb)} Python standard-library modules (pydoc, built on this machine)\n")
    sid = "demo-visitor"
    for page, caption in DEMO_VISIT:
        if page is not None:
            art = rec.kb.get(page)
            rec.track(sid, "page_view", url=art.url, title=art.title)
        else:
            rec.track(sid, "search", query="store python objects on disk")
        print(caption)
        for s in rec.suggest(sid, k=args.k):
            print(f"   {s.score:.2f}  {s.article.title}\n         {s.reason}")
        print()
    reply = rec.inject(sid, "To save a dict to a file, `json.dump(obj, fh)` writes it as JSON.", k=args.k)
    print("An assistant's reply with suggestions injected:\n")
    print("   " + str(reply).replace("\n", "\n   "))
    if args.no_serve:
        return 0
    sites = list(entry_points(group=DEMO_SITE_GROUP))
    if not sites:
        print("\n(install the web extra, pip install -e '.[web]', to also serve the demo site with the chat widget)")
        return 0
    serve = sites[0].load()
    return int(serve(rec, host=args.host, port=args.port, event_log=cache / "events.jsonl") or 0)


CORE_COMMANDS = ("index", "suggest", "train-intent", "demo")


def build_parser(*, extensions: bool = True) -> argparse.ArgumentParser:
    """The CLI's parser; `extensions=False` leaves out the model and adapter commands (found through entry
    points, which import their frameworks)."""
    p = argparse.ArgumentParser(prog="python -m plugin", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    ix = sub.add_parser("index", help="embed and index a KB (.jsonl file or folder of .md/.html)")
    ix.add_argument("source")
    ix.add_argument("--out", required=True, help="index directory (updated in place if it exists)")
    ix.add_argument(
        "--kind",
        choices=("auto", "flat", "ivf", "ivfpq", "hnsw"),
        default="auto",
        help="vector index: auto (flat up to 20,000 articles, ivf above, ivfpq above 500,000), flat (exact), ivf "
        "(inverted lists: approximate, updatable, memory-mapped by servers), ivfpq (ivf scanned through 4-bit PQ "
        "codes and re-ranked exactly: for hundreds of thousands of articles and more) or hnsw (approximate graph; "
        "deletes kept as tombstones until a rebuild)",
    )
    ix.add_argument("--encoder", default="minilm", help="minilm (default, packaged) or hashing[:DIM]")
    ix.add_argument(
        "--backend",
        choices=ENCODER_BACKENDS,
        default="auto",
        help="how minilm runs: onnx-int8 (ONNX Runtime, int8; what auto picks where onnxruntime is "
        "installed, and for an existing index the backend it was built with), onnx (fp32) or torch",
    )
    ix.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads for embedding (default: one per core)")
    ix.add_argument("--base-url", default="", help="prefix for urls of folder articles")
    ix.add_argument("--rebuild", action="store_true", help="ignore an existing index in --out")
    ix.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="GLOB",
        help="only files matching this pattern (repeatable; like .gitignore: 'ref/*', '*.html')",
    )
    ix.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="skip files matching this pattern (repeatable), e.g. --exclude 'releases/*'",
    )
    ix.add_argument(
        "--keep-all",
        action="store_true",
        help="also index what is skipped by default: source listings (_modules/), _static/, "
        "genindex, search and module-index pages, README/LICENSE files",
    )
    ix.add_argument(
        "--max-file-mb",
        type=_positive_mb,
        default=20.0,
        help="skip (and list) folder files larger than this many MB, unread (default 20: no documentation page "
        "comes near it; one huge file would be read whole into memory)",
    )
    ix.add_argument("--quiet", action="store_true")
    ix.set_defaults(func=cmd_index)

    sg = sub.add_parser("suggest", help="suggestions for a list of viewed articles")
    sg.add_argument("--index", required=True)
    sg.add_argument("--viewed", action="append", required=True, help="article id or url; repeat in reading order")
    sg.add_argument("-k", type=suggestion_count, default=3, help="how many suggestions (1-100)")
    sg.add_argument("--json", action="store_true")
    sg.set_defaults(func=cmd_suggest)

    ti = sub.add_parser("train-intent", help="train the content STAMP on a JSONL event log and install it in an index")
    ti.add_argument("--index", required=True)
    ti.add_argument("--log", required=True, help="the event log (JSONL) written while serving")
    ti.add_argument("--epochs", type=int, default=30)
    ti.add_argument("--dim", type=int, default=128)
    ti.add_argument(
        "--min-clicks",
        type=int,
        default=5,
        help="training clicks an article needs for a learned vector (0: text embeddings only)",
    )
    ti.add_argument(
        "--item-model",
        choices=ITEM_MODELS,
        default="auto",
        help="item-to-item transition counts of the same log blended into the trained scores: "
        "auto (default: the held-out sessions decide whether, and with what weight), markov "
        "(always, best weight on the held-out sessions), none",
    )
    ti.add_argument(
        "--blend-folds",
        type=int,
        default=3,
        help="choose the transition blend over this many time blocks of the log, a content model retrained per "
        "block (one training each; 0: on the held-out sessions alone)",
    )
    ti.add_argument(
        "--cold-start",
        choices=("auto", "rank", "score"),
        default="auto",
        help="articles added after training: auto (default: the held-out sessions decide, with a stand-in model "
        "trained without a tenth of the articles), rank (at their zero-shot rank: zero-shot quality for them, "
        "no extra training), score (on the trained scale, calibrated on the stand-in)",
    )
    ti.add_argument("--force", action="store_true", help="install even if it does not beat the zero-shot model")
    ti.add_argument("--quiet", action="store_true")
    ti.set_defaults(func=cmd_train_intent)

    dm = sub.add_parser("demo", help="scripted visit over the stdlib-docs KB, then serve the demo site")
    dm.add_argument("--cache", default=None, help=f"where the demo index is cached (default {demo_cache_dir()})")
    dm.add_argument("--encoder", default="minilm")
    dm.add_argument("-k", type=suggestion_count, default=3, help="how many suggestions (1-100)")
    dm.add_argument("--no-serve", action="store_true", help="only the terminal walkthrough")
    dm.add_argument("--host", default="127.0.0.1")
    dm.add_argument("--port", type=int, default=8000)
    dm.add_argument("--quiet", action="store_true")
    dm.set_defaults(func=cmd_demo)

    if not extensions:
        return p
    try:
        from .models.cli import register as register_models
    except ImportError:
        logger.debug("model commands unavailable", exc_info=True)
    else:
        register_models(sub)
    for ep in entry_points(group=COMMAND_GROUP):
        try:
            ep.load()(sub)
        except Exception:  # a broken optional adapter must not take the core CLI down
            logger.warning("could not load CLI commands from %s", ep.value, exc_info=True)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # A core command answers without importing the adapters' frameworks (FastAPI alone is ~0.3 s).
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(extensions=command not in CORE_COMMANDS)
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING
    root = logging.getLogger()
    if not root.handlers:  # like logging.basicConfig: logging someone already configured is theirs
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        # The level goes on the handler too: a library that sets its own logger to DEBUG (bm25s does) would
        # otherwise print its debug lines on every run.
        handler.setLevel(level)
        root.addHandler(handler)
        root.setLevel(level)
    t0 = time.perf_counter()
    try:
        return int(args.func(args) or 0)
    except PluginError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path that is not a folder, no permission, a full disk: the message says which
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        logger.debug("%s took %.2fs", args.command, time.perf_counter() - t0)
