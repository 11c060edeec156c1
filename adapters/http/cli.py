"""Subcommands the HTTP adapter adds to `python -m plugin` (entry point group session_suggest.cli):

    report   CTR per article and position, and how suggestions changed sessions, from an event log
    serve    the HTTP API over a saved index (uvicorn; several workers via the import-string factory)
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict
from typing import Any

__all__ = ["register"]


def cmd_report(args: argparse.Namespace) -> int:
    from plugin import EventLog
    from plugin.errors import DataFormatError
    from plugin.feedback import feedback_report, format_report

    log = EventLog(args.log)
    if not log.path.exists():
        raise DataFormatError(f"no event log at {log.path}; the demo writes one (see `python -m plugin demo`)")
    report = feedback_report(log.iter_events())
    if args.json:
        rows = lambda rs: [{**asdict(r), "ctr": round(r.ctr, 4)} for r in rs]  # noqa: E731
        out: dict[str, Any] = {"by_article": rows(report.by_article), "by_position": rows(report.by_position),
                               "sessions": asdict(report.effect)}
        print(json.dumps(out, indent=1))
    else:
        print(format_report(report, limit=args.limit))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import ENV_EVENT_LOG, ENV_INDEX

    os.environ[ENV_INDEX] = args.index
    if args.event_log:
        os.environ[ENV_EVENT_LOG] = args.event_log
    uvicorn.run("adapters.http.app:app_from_env", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level="warning")
    return 0


def register(subparsers: Any) -> None:
    rp = subparsers.add_parser("report", help="CTR per article/position from an event log (JSONL)")
    rp.add_argument("--log", required=True, help="event log written by the server (e.g. the demo's events.jsonl)")
    rp.add_argument("--limit", type=int, default=20, help="rows per table")
    rp.add_argument("--json", action="store_true")
    rp.set_defaults(func=cmd_report)

    sv = subparsers.add_parser("serve", help="serve the HTTP API over an index built with `index`")
    sv.add_argument("--index", required=True)
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--workers", type=int, default=1,
                    help="uvicorn worker processes (sessions live in each worker's memory: >1 needs a shared store)")
    sv.add_argument("--event-log", default=None)
    sv.set_defaults(func=cmd_serve)
