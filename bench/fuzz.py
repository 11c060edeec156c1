"""Fuzz every endpoint of the hardened HTTP service and count server errors (the target is 0).

Two generators, both driven by hypothesis:

1. schemathesis over the served OpenAPI document (/openapi.json): for every operation, schema-valid
   (positive) and schema-violating (negative) requests; operations on a session get a live, signed
   session id (and, separately, generated ids, which must all be refused).
2. raw hostile input: arbitrary bytes and arbitrary JSON as bodies, odd content types, and adversarial
   strings (NULs, lone surrogates escaped, RTL marks, 20k-character text, HTML/script) in otherwise valid
   events, chats and no-consent page requests.

Every response must be < 500, and every 4xx must be the service's JSON error shape. After the run the
server must still answer and a control session must hold exactly the events it was given.

    python bench/fuzz.py --examples 700          # >= 10,000 inputs (the benchmark run)
    python bench/fuzz.py --examples 15           # a smoke run (what CI does via tests/test_hardening_http.py)
    python bench/fuzz.py --url http://127.0.0.1:8000 --examples 300   # against a running server
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SECRET = "fuzz-secret-" + "f" * 32


@dataclass
class Tally:
    inputs: int = 0
    server_errors: int = 0
    bad_error_shape: int = 0
    unsendable: int = 0
    statuses: Counter = field(default_factory=Counter)
    per_operation: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def record(self, op: str, status: int, body: bytes, what: str) -> None:
        self.inputs += 1
        self.per_operation[op] += 1
        self.statuses[status] += 1
        if status >= 500:
            self.server_errors += 1
            if len(self.failures) < 20:
                self.failures.append(f"{status} {op}: {what[:300]} -> {body[:300]!r}")
        elif status >= 400 and op.split()[1].startswith("/v1"):
            try:
                err = json.loads(body)["error"]
                ok = isinstance(err["code"], str) and isinstance(err["message"], str) and err["message"]
            except (ValueError, KeyError, TypeError):
                ok = False
            if not ok:
                self.bad_error_shape += 1
                if len(self.failures) < 20:
                    self.failures.append(f"bad 4xx shape {status} {op}: {what[:200]} -> {body[:200]!r}")


def build_app() -> Any:
    """The hardened app over a small KB with the hashing encoder; limits high enough to reach the routes."""
    from adapters.http.hardened import create_hardened_app
    from adapters.http.limits import InMemoryRateLimiter, LimitSettings
    from plugin import Article, HashingEncoder, SessionRecommender, SuggestSettings

    topics = ["json serialize", "socket network", "http client", "csv files", "turtle graphics", "ssl tls"]
    arts = [
        Article(
            f"a{i}",
            f"{topics[i % 6].title()} part {i}",
            f"https://kb.test/{i}",
            f"{topics[i % 6]} article {i}",
            tags=(topics[i % 6].split()[0],),
            locale="en" if i % 3 else "de",
        )
        for i in range(60)
    ]
    rec = SessionRecommender.build(
        arts, encoder=HashingEncoder(128), progress=False, settings=SuggestSettings(min_score=-1.0)
    )
    limits = LimitSettings(per_client=10**9, per_session=10**9)
    return create_hardened_app(rec, secrets=SECRET, limits=limits, limiter=InMemoryRateLimiter())


class Target:
    """Sends requests in-process (ASGI) or to a running server, and tallies the answers."""

    def __init__(self, url: str | None) -> None:
        import httpx

        if url is None:
            from fastapi.testclient import TestClient

            self.app = build_app()
            self.http: Any = TestClient(self.app, raise_server_exceptions=False)
        else:
            self.app = None
            self.http = httpx.Client(base_url=url, timeout=30)
        self.url = url
        self.tally = Tally()

    def new_session(self) -> str:
        r = self.http.post("/v1/sessions")
        assert r.status_code == 201, r.text
        return r.json()["session_id"]

    def send(self, method: str, path: str, template: str, what: str, **kwargs: Any) -> int:
        try:
            r = self.http.request(method, path, **kwargs)
        except Exception as exc:
            # the client itself refuses to build this request (e.g. a 20k-character query): nothing was sent
            if type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "h11") or isinstance(
                exc, (ValueError, TypeError)
            ):
                self.tally.unsendable += 1
                return 0
            raise
        self.tally.record(f"{method} {template}", r.status_code, r.content, what)
        return r.status_code


def _run(test: Any) -> None:
    try:
        test()
    except Unsatisfiable:  # e.g. no negative input exists for an operation without parameters
        pass


def fuzz_schemathesis(target: Target, examples: int) -> None:
    import schemathesis
    from schemathesis import GenerationMode

    if target.app is not None:
        schema = schemathesis.openapi.from_asgi("/openapi.json", target.app)
    else:
        schema = schemathesis.openapi.from_url(f"{target.url}/openapi.json")
    live = target.new_session()
    target.send(
        "POST",
        f"/v1/sessions/{live}/events",
        "/v1/sessions/{session_id}/events",
        "seed",
        json={"kind": "search", "query": "json serialize"},
    )
    cfg = settings(
        max_examples=examples, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    for result in schema.get_all_operations():
        op = result.ok()
        variants: list[dict[str, Any]] = [{}]
        if "{session_id}" in op.path:
            # a live id (a fresh one for DELETE, so the others keep theirs), and generated ids
            sid = target.new_session() if op.method.lower() == "delete" else live
            variants = [{"path_parameters": {"session_id": sid}}, {}]
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for extra in variants:
                strategy = op.as_strategy(generation_mode=mode, **extra)

                @cfg
                @given(case=strategy)
                def check(case: Any) -> None:
                    kwargs = case.as_transport_kwargs()
                    path = kwargs.pop("url")
                    if target.url is None:
                        path = path.split("://", 1)[-1].split("/", 1)[-1]
                        path = "/" + path
                    else:
                        path = path[len(target.url) :] or "/"
                    kwargs.pop("method", None)
                    for drop in ("cookies", "follow_redirects", "allow_redirects", "timeout"):
                        kwargs.pop(drop, None)
                    target.send(case.method.upper(), path, op.path, f"{mode.value} {kwargs}"[:400], **kwargs)

                _run(check)


_HOSTILE_TEXT = st.one_of(
    st.text(max_size=64),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=300),
    st.sampled_from(
        [
            "\x00",
            "\x00\x00json",
            "\u202e\u202dRTL",
            "<script>alert(1)</script>",
            "' OR 1=1 --",
            "{{7*7}}",
            "../../etc/passwd",
            "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
            "%00%ff",
            "x" * 20_000,
            "x" * 20_001,
            "😀" * 5000,
            " ",
            "\n\t",
            "null",
            "[]",
            "{}",
            "²",
            "1²",
            "١",
            "３",
            "⑤",  # str.isdigit() is True for these; int() rejects some
        ]
    ),
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _HOSTILE_TEXT,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
_KINDS = st.sampled_from(["page_view", "article_open", "search", "suggestion_impression", "suggestion_click", "bogus"])


def fuzz_raw(target: Target, examples: int) -> None:
    sid = target.new_session()
    cfg = settings(
        max_examples=examples, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    posts = [
        ("/v1/sessions/{sid}/events", "/v1/sessions/{session_id}/events"),
        ("/v1/sessions/{sid}/chat", "/v1/sessions/{session_id}/chat"),
        ("/v1/suggestions", "/v1/suggestions"),
        ("/v1/sessions", "/v1/sessions"),
    ]
    for concrete, template in posts:
        path = concrete.format(sid=sid)

        @cfg
        @given(
            body=st.binary(max_size=2048),
            ctype=st.sampled_from(
                ["application/json", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""]
            ),
        )
        def raw_bytes(body: bytes, ctype: str) -> None:
            target.send(
                "POST",
                path,
                template,
                f"bytes {body[:80]!r} {ctype}",
                content=body,
                headers={"content-type": ctype} if ctype else {},
            )

        @cfg
        @given(body=_JSON)
        def any_json(body: Any) -> None:
            target.send("POST", path, template, f"json {body!r}"[:300], json=body)

        _run(raw_bytes)
        _run(any_json)

    @cfg
    @given(
        kind=_KINDS,
        url=st.none() | _HOSTILE_TEXT,
        title=st.none() | _HOSTILE_TEXT,
        text=st.none() | _HOSTILE_TEXT,
        article_id=st.none() | st.sampled_from(["a1", "a2", "missing", ""]) | _HOSTILE_TEXT,
        query=st.none() | _HOSTILE_TEXT,
        position=st.none() | st.integers(-5, 200),
    )
    def events(kind, url, title, text, article_id, query, position) -> None:
        body = {
            k: v
            for k, v in dict(
                kind=kind, url=url, title=title, text=text, article_id=article_id, query=query, position=position
            ).items()
            if v is not None
        }
        target.send(
            "POST", f"/v1/sessions/{sid}/events", "/v1/sessions/{session_id}/events", repr(body)[:300], json=body
        )

    @cfg
    @given(message=_HOSTILE_TEXT, k=st.none() | st.integers(-3, 30))
    def chats(message, k) -> None:
        body = {"message": message} if k is None else {"message": message, "k": k}
        target.send("POST", f"/v1/sessions/{sid}/chat", "/v1/sessions/{session_id}/chat", repr(body)[:300], json=body)

    @cfg
    @given(
        k=st.none() | st.integers(-3, 150).map(str) | _HOSTILE_TEXT,
        locale=st.none() | _HOSTILE_TEXT,
        tags=st.lists(_HOSTILE_TEXT, max_size=12),
        query=st.none() | _HOSTILE_TEXT,
    )
    def suggestions(k, locale, tags, query) -> None:
        params: list[tuple[str, str]] = [("tags", t) for t in tags]
        for name, v in (("k", k), ("locale", locale), ("query", query)):
            if v is not None:
                params.append((name, v))
        target.send(
            "GET",
            f"/v1/sessions/{sid}/suggestions",
            "/v1/sessions/{session_id}/suggestions",
            repr(params)[:300],
            params=params,
        )

    @cfg
    @given(
        page=st.fixed_dictionaries(
            {},
            optional={
                "url": _HOSTILE_TEXT,
                "title": _HOSTILE_TEXT,
                "text": _HOSTILE_TEXT,
                "article_id": _HOSTILE_TEXT,
                "k": st.integers(-3, 30),
                "locale": _HOSTILE_TEXT,
            },
        )
    )
    def pages(page) -> None:
        target.send("POST", "/v1/suggestions", "/v1/suggestions", repr(page)[:300], json=page)

    @cfg
    @given(
        sid_guess=_HOSTILE_TEXT.filter(lambda s: "/" not in s and "?" not in s and "#" not in s and s.strip()),
        method=st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH"]),
        tail=st.sampled_from(["", "/events", "/suggestions", "/chat", "/nope"]),
    )
    def foreign_ids(sid_guess, method, tail) -> None:
        from urllib.parse import quote

        path = f"/v1/sessions/{quote(sid_guess, safe='')}{tail}"
        target.send(
            method,
            path,
            "/v1/sessions/{guess}" + tail,
            f"{method} {path[:200]}",
            json={"kind": "search", "query": "x"} if method in ("POST", "PUT", "PATCH") else None,
        )

    for test in (events, chats, suggestions, pages, foreign_ids):
        _run(test)


def control_session_intact(target: Target, sid: str, n: int) -> bool:
    r = target.http.get(f"/v1/sessions/{sid}/suggestions")
    if target.app is None:
        return r.status_code == 200
    rec = target.app.state.recommender
    return r.status_code == 200 and [e.query for e in rec.events(sid)] == [f"control {i}" for i in range(n)]


def run(examples: int, url: str | None = None) -> dict[str, Any]:
    logging.getLogger("adapters").setLevel(logging.CRITICAL)  # expected refusals are not news
    target = Target(url)
    control = target.new_session()
    for i in range(5):
        target.http.post(f"/v1/sessions/{control}/events", json={"kind": "search", "query": f"control {i}"})
    t0 = time.perf_counter()
    fuzz_schemathesis(target, examples)
    t1 = time.perf_counter()
    fuzz_raw(target, examples)
    t2 = time.perf_counter()
    tally = target.tally
    return {
        "inputs": tally.inputs,
        "server_errors": tally.server_errors,
        "bad_error_shape": tally.bad_error_shape,
        "not_sent_client_refused": tally.unsendable,
        "still_up": target.http.get("/v1/health").status_code == 200,
        "control_session_intact": control_session_intact(target, control, 5),
        "seconds": {"schemathesis": round(t1 - t0, 1), "raw": round(t2 - t1, 1)},
        "statuses": dict(sorted(tally.statuses.items())),
        "per_operation": dict(sorted(tally.per_operation.items())),
        "failures": tally.failures,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=700, help="hypothesis max_examples per generator")
    ap.add_argument("--url", default=None, help="fuzz a running server instead of an in-process app")
    ap.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = ap.parse_args(argv)
    report = run(args.examples, args.url)
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    ok = (
        report["server_errors"] == 0
        and report["bad_error_shape"] == 0
        and report["still_up"]
        and report["control_session_intact"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
