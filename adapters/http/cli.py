"""Subcommands the HTTP adapter adds to `python -m plugin` (entry point group session_suggest.cli):

report   CTR per article and position, and how suggestions changed sessions, from an event log
serve    the production HTTP API (`hardened.app_from_env`: signed ids, limits, redacted access log) over a
         saved index; the quick-start settings are options, everything else reads the environment; several
         workers need Redis (--redis-url), which they share
"""

from __future__ import annotations

import argparse
import json
import os
import sys
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
        out: dict[str, Any] = {
            "by_article": rows(report.by_article),
            "by_position": rows(report.by_position),
            "sessions": asdict(report.effect),
        }
        print(json.dumps(out, indent=1))
    else:
        print(format_report(report, limit=args.limit))
    return 0


def serve_environment(args: argparse.Namespace, environ: dict[str, str]) -> dict[str, str]:
    """The environment `hardened.app_from_env` reads, from the command-line options over `environ`. Without a
    secret anywhere, one is drawn for this run (every worker inherits it; sessions end with the process)."""
    import secrets

    from plugin.errors import ConfigError

    from .allocator import malloc_arenas_setting
    from .app import ENV_EVENT_LOG, ENV_INDEX, ENV_URL_TEMPLATE
    from .hardened import ENV_API_DOCS, ENV_BIND_COOKIE, ENV_REDIS_URL
    from .signing import ENV_SECRET

    env = dict(environ)
    env[ENV_INDEX] = args.index
    for name, value in (
        (ENV_EVENT_LOG, args.event_log),
        (ENV_REDIS_URL, args.redis_url),
        (ENV_URL_TEMPLATE, args.article_url_template),
        (ENV_SECRET, args.secret),
    ):
        if value:
            env[name] = value
    if args.bind_cookie:
        env[ENV_BIND_COOKIE] = "1"
    if args.api_docs:
        env[ENV_API_DOCS] = "1"
    if not env.get(ENV_SECRET):
        env[ENV_SECRET] = secrets.token_urlsafe(48)
        print(
            f"{ENV_SECRET} is not set: signing session ids with a secret drawn for this run; sessions end when "
            "it stops. Set it (shared by every worker and restart) for real traffic.",
            file=sys.stderr,
        )
    if args.workers > 1 and not env.get(ENV_REDIS_URL):
        # Each worker would keep its own sessions, revocations and rate limits, and the kernel spreads a visitor's
        # connections over them: suggestions from half a session, an erase that reaches one copy. Refused, not warned.
        raise ConfigError(
            f"--workers {args.workers} needs a store the workers share: pass --redis-url (or set {ENV_REDIS_URL}), "
            "or serve with --workers 1"
        )
    malloc_arenas_setting(env)  # read again by each worker: a bad value is refused here, once, before any starts
    return env


def cmd_serve(args: argparse.Namespace) -> int:
    from .workers import serve

    # Workers read their settings from the environment they inherit. Several workers each accept on their own
    # SO_REUSEPORT socket (adapters/http/workers.py): uvicorn's shared socket let one worker take every connection.
    os.environ.update(serve_environment(args, dict(os.environ)))
    try:
        return serve(
            "adapters.http.hardened:app_from_env",
            host=args.host,
            port=args.port,
            workers=args.workers,
            shared_socket=args.shared_socket,
            factory=True,
            log_level="warning",
            proxy_headers=False,
            server_header=False,
        )
    except OSError as exc:  # the address is taken, or not this machine's
        print(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2


def register(subparsers: Any) -> None:
    rp = subparsers.add_parser("report", help="CTR per article/position from an event log (JSONL)")
    rp.add_argument("--log", required=True, help="event log written by the server (e.g. the demo's events.jsonl)")
    rp.add_argument("--limit", type=int, default=20, help="rows per table")
    rp.add_argument("--json", action="store_true")
    rp.set_defaults(func=cmd_report)

    sv = subparsers.add_parser("serve", help="serve the production HTTP API (signed ids, limits) over an index")
    sv.add_argument("--index", required=True, help="index directory built with `python -m plugin index`")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn worker processes (more than one needs --redis-url for shared sessions and limits)",
    )
    sv.add_argument(
        "--shared-socket",
        action="store_true",
        help="uvicorn's own workers on one shared socket instead of one SO_REUSEPORT socket each (see "
        "docs/production.md: a burst of connections may then all land on one worker)",
    )
    sv.add_argument("--event-log", default=None, help="JSONL event log (sessions appear under keyed pseudonyms)")
    sv.add_argument(
        "--redis-url", default=None, help="shared session store, rate limits and revocations (or $REDIS_URL)"
    )
    sv.add_argument(
        "--secret",
        default=None,
        help="session-signing secret, >= 32 bytes; prefer $SESSION_SUGGEST_SECRET (a command line is "
        "visible to other users); with neither, one is drawn per run",
    )
    sv.add_argument("--article-url-template", default=None, help="e.g. '/docs/{id}': suggestion links to your pages")
    sv.add_argument("--bind-cookie", action="store_true", help="bind ids to the creating browser (same-origin API)")
    sv.add_argument(
        "--api-docs",
        action="store_true",
        help="serve Swagger UI at /api/docs (off by default: it loads its script from a CDN; /openapi.json is served "
        "either way)",
    )
    sv.set_defaults(func=cmd_serve)
