"""`python -m plugin serve` is the production app: signed ids, body and rate limits, no Host-derived redirects;
the quick-start settings are options over the environment it reads."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
from net_helpers import free_port, stop_processes, wait_until_healthy

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from adapters.http.cli import serve_environment  # noqa: E402
from plugin.errors import ConfigError  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _args(**kw):
    base = {
        "index": "/srv/index",
        "event_log": None,
        "redis_url": None,
        "article_url_template": None,
        "secret": None,
        "bind_cookie": False,
        "api_docs": False,
        "workers": 1,
    }
    return argparse.Namespace(**{**base, **kw})


def test_options_map_to_the_environment_and_a_secret_is_always_set(capsys):
    env = serve_environment(
        _args(event_log="/tmp/e.jsonl", redis_url="redis://r/0", bind_cookie=True, article_url_template="/docs/{id}"),
        {},
    )
    assert env["SESSION_SUGGEST_INDEX"] == "/srv/index" and env["SESSION_SUGGEST_EVENT_LOG"] == "/tmp/e.jsonl"
    assert env["REDIS_URL"] == "redis://r/0" and env["SESSION_SUGGEST_BIND_COOKIE"] == "1"
    assert env["SESSION_SUGGEST_ARTICLE_URL_TEMPLATE"] == "/docs/{id}"
    assert len(env["SESSION_SUGGEST_SECRET"]) >= 32 and "drawn for this run" in capsys.readouterr().err
    kept = serve_environment(_args(), {"SESSION_SUGGEST_SECRET": "k" * 40})
    assert kept["SESSION_SUGGEST_SECRET"] == "k" * 40
    assert "SESSION_SUGGEST_API_DOCS" not in kept  # Swagger UI (a CDN's script) only when asked for
    assert serve_environment(_args(api_docs=True), kept)["SESSION_SUGGEST_API_DOCS"] == "1"
    assert (
        serve_environment(_args(secret="c" * 40), {"SESSION_SUGGEST_SECRET": "k" * 40})["SESSION_SUGGEST_SECRET"]
        == "c" * 40
    )


def test_several_workers_without_a_shared_store_are_refused():
    """Each worker would hold its own sessions and revocations while the kernel spreads a visitor's connections
    over them: half a session per suggestion, an erase that reaches one copy."""
    with pytest.raises(ConfigError, match="--redis-url"):
        serve_environment(_args(workers=2), {"SESSION_SUGGEST_SECRET": "k" * 40})
    assert serve_environment(_args(workers=2, redis_url="redis://r/0"), {"SESSION_SUGGEST_SECRET": "k" * 40})
    assert serve_environment(_args(workers=2), {"SESSION_SUGGEST_SECRET": "k" * 40, "REDIS_URL": "redis://r/0"})


def test_a_bad_malloc_arena_setting_is_refused_before_any_worker_starts():
    """Each worker reads SESSION_SUGGEST_MALLOC_ARENAS at start-up: a bad value failed every worker (a traceback
    per worker, or a restart loop under a supervisor that restarts them), not once with the setting named."""
    env = {"SESSION_SUGGEST_SECRET": "k" * 40, "REDIS_URL": "redis://r/0"}
    with pytest.raises(ConfigError, match="SESSION_SUGGEST_MALLOC_ARENAS"):
        serve_environment(_args(workers=2), {**env, "SESSION_SUGGEST_MALLOC_ARENAS": "two"})
    assert serve_environment(_args(workers=2), {**env, "SESSION_SUGGEST_MALLOC_ARENAS": "0"})


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from conftest import TOPIC_ARTICLES

    from plugin import HashingEncoder, SessionRecommender, SuggestSettings

    index_dir = tmp_path_factory.mktemp("index")
    SessionRecommender.build(
        TOPIC_ARTICLES, encoder=HashingEncoder(256), progress=False, settings=SuggestSettings(min_score=-1.0)
    ).save(index_dir)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_SUGGEST_") and k != "REDIS_URL"}
    env.update({"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "plugin", "serve", "--index", str(index_dir), "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, proc, "plugin serve")
        yield url
    finally:
        stop_processes(proc)


def test_serve_is_the_hardened_app(served):
    sid = httpx.post(served + "/v1/sessions").json()["session_id"]
    assert len(sid) == 48  # a signed id, not the development app's 43-character one
    big = httpx.post(f"{served}/v1/sessions/{sid}/events", json={"kind": "page_view", "text": "x" * 70_000})
    assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"
    page = httpx.post(served + "/v1/suggestions", json={"url": "https://kb.test/json"})  # the no-consent route
    assert page.status_code == 200 and page.json()["suggestions"]


def test_no_redirect_takes_its_location_from_the_host_header(served):
    r = httpx.get(served + "/v1/health/", headers={"Host": "evil.test"}, follow_redirects=False)
    assert r.status_code == 404 and "location" not in r.headers
    r = httpx.post(served + "/v1/sessions/", headers={"Host": "evil.test"}, follow_redirects=False)
    assert r.status_code in (404, 405) and "location" not in r.headers
