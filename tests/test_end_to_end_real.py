"""End to end with the real packaged all-MiniLM-L6-v2 over real stdlib documentation (pydoc)."""

from __future__ import annotations

import pytest

from plugin import SessionRecommender
from plugin.demo_kb import stdlib_articles

pytestmark = pytest.mark.real_model

SERIALIZATION = {
    "shelve",
    "marshal",
    "copyreg",
    "pickletools",
    "json.decoder",
    "json.encoder",
    "json.tool",
    "csv",
    "plistlib",
    "dbm",
    "xdrlib",
    "configparser",
    "tomllib",
    "json.scanner",
}
MODULES = sorted(
    SERIALIZATION
    | {
        "json",
        "pickle",
        "socket",
        "http.client",
        "asyncio",
        "math",
        "random",
        "statistics",
        "email.message",
        "smtplib",
        "urllib.request",
        "threading",
        "subprocess",
        "re",
        "string",
        "datetime",
        "calendar",
        "zipfile",
        "tarfile",
        "gzip",
        "logging",
        "unittest",
        "argparse",
    }
)


@pytest.fixture(scope="module")
def real_rec(real_encoder):
    arts = stdlib_articles(MODULES, progress=False)
    assert len(arts) >= 30
    return SessionRecommender.build(arts, encoder=real_encoder, progress=False)


def test_reading_json_and_pickle_suggests_serialization_never_what_was_read(real_rec):
    sid = "visitor"
    for mod in ("json", "pickle"):
        art = real_rec.kb.get(mod)
        real_rec.track(sid, "page_view", url=art.url, title=art.title)
    sug = real_rec.suggest(sid, k=3)
    ids = [s.article.id for s in sug]
    assert len(ids) == 3
    assert not {"json", "pickle"} & set(ids)
    assert set(ids) <= SERIALIZATION, ids
    assert all(s.reason.startswith("because you read") for s in sug)
    assert any("pickle" in s.drivers or "json" in s.drivers for s in sug)


def test_switching_topic_moves_the_suggestions(real_rec):
    sid = "switcher"
    real_rec.track(sid, url=real_rec.kb.get("pickle").url, title=real_rec.kb.get("pickle").title)
    real_rec.track(
        sid,
        url="https://blog.example/mail",
        title="Sending email from Python",
        text="How to compose an email message and send it through an SMTP server.",
    )
    ids = [s.article.id for s in real_rec.suggest(sid, k=2)]
    assert set(ids) & {"smtplib", "email.message"}, ids
    injected = real_rec.inject(sid, "You can use smtplib.", k=2)
    assert "**Related articles**" in injected
