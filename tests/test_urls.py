"""The url policy: only http(s) urls with a host and scheme-less relative references ever leave the plugin,
checked at ingest (the article stays, its url goes, with a warning) and again on every output."""

from __future__ import annotations

import logging

import pytest

from plugin import Article, HashingEncoder, KnowledgeBase, SessionRecommender, Suggestion, SuggestSettings
from plugin.inject import render
from plugin.urls import checked_article, safe_url

HOSTILE_URLS = [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "  javascript:alert(1)",
    "java\tscript:alert(1)",
    "java\nscript:alert(1)",
    "\x01javascript:alert(1)",
    "javascript\u200b:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "//evil.test/x",
    "/\\evil.test/x",
    "\\\\evil.test",
    "javascript&#58;alert(1)",
    "javascript&colon;alert(1)",
    "&#106;avascript:alert(1)",
    "%6Aavascript:alert(1)",
    "%2F%2Fevil.test",
    "https:evil.test",
    "https:///nohost",
    "mailto:a@b.test",
    'https://kb.test/"onmouseover="alert(1)',
    "file:///etc/passwd",
    # user info: a password handed to every visitor, or a host shown that is not the one opened
    "https://user:pass@kb.test/x",
    "https://kb.test@evil.test/",
    "HTTPS://kb.test%40evil.test/",
    "https://kb.test&#64;evil.test/",
    # invisible and bidi-control characters: a host that reads differently from where it goes
    "https://kb.te\u00adst/x",
    "https://kb.test/\u202etxt.exe",
    "https://kb.test/\u2066x\u2069",
    "/docs/\u061cx",
    # the rest of Unicode's default-ignorable characters, drawn as nothing: IDNA drops the variation selectors,
    # the combining grapheme joiner and Mongolian/shorthand format controls from a host, like the soft hyphen
    "https://ev\ufe0fil.test/x",
    "https://ev\U000e0100il.test/x",
    "https://ev\u034fil.test/x",
    "https://ev\u180bil.test/x",
    "https://ev\U0001bca0il.test/x",
    "https://kb.test/\U000e0041x",
    "https://kb.test/\u3164x",
    "https://kb.test/\u115fx",
    "https://kb.test/\uffa0x",
    "https://kb.test/\u17b4x",
    "https://kb.test/\u206ax",
    "https://kb.test/\ufff0x",
    "https://kb.test/\U0001d173x",
    # a ')' that would end a Markdown link `[title](url)` written around the url, opening a javascript: one
    "https://kb.test/a)[x](javascript:alert(1)",
    "/docs/a)(",
    "/docs/(a",
]
GOOD_URLS = [
    "https://kb.test/json",
    "HTTP://KB.test/a?b=1&c=2#x",
    "/docs/json",
    "guide/json.html",
    "#top",
    "https://kb.test/über",
    "https://en.wikipedia.test/wiki/Python_(programming_language)",  # balanced parentheses are fine
    "https://kb.test/users/@me?x=(1)(2)",  # '@' in the path is not user info
]


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_hostile_urls_are_refused(url):
    assert safe_url(url) == ""


@pytest.mark.parametrize("url", GOOD_URLS)
def test_http_and_relative_urls_pass_unchanged(url):
    assert safe_url(url) == url
    assert safe_url(f"  {url} ") == url


def test_ingest_keeps_the_article_and_drops_only_its_url_with_a_warning(caplog):
    evil = Article("evil", "Evil", "javascript:alert(1)", "json text", tags=("x",))
    good = Article("good", "Good", " https://kb.test/good ", "text")
    with caplog.at_level(logging.WARNING, logger="plugin.urls"):
        kb = KnowledgeBase([evil, good])
    assert kb.get("evil").url == "" and kb.get("evil").text == "json text" and kb.get("evil").tags == ("x",)
    assert kb.get("good").url == "https://kb.test/good"
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "'evil'" in warnings[0] and "only http(s)" in warnings[0]
    assert kb.find("javascript:alert(1)") is None
    assert checked_article(good) is not good and checked_article(kb.get("good")) is kb.get("good")


def _bypassing_ingest(rec: SessionRecommender, article: Article) -> None:
    """An article that skipped the ingest check (an older saved KB, a custom KnowledgeBase): the output check
    alone must hold."""
    rec.kb._by_id[article.id] = article


@pytest.fixture
def legacy(articles):
    rec = SessionRecommender.build(
        articles, encoder=HashingEncoder(256), progress=False, settings=SuggestSettings(min_score=-1.0, mmr_lambda=1.0)
    )
    evil = Article("ser-json", "JSON serialization guide", "javascript:alert(1)", "json")
    _bypassing_ingest(rec, evil)
    return rec, evil


def test_every_output_applies_the_policy(legacy):
    rec, evil = legacy
    s = Suggestion(evil, 0.9, "because", (), 0)
    assert s.to_dict()["url"] == ""
    assert "javascript" not in render([s], "markdown") and "javascript" not in render([s], "html")

    from adapters.http.app import SuggestionJSON
    from adapters.http.demo_site import _article_page

    row = SuggestionJSON()(s)
    assert row["url"] == "" and row["href"] == ""
    assert SuggestionJSON("/docs/{id}")(s)["href"] == "/docs/ser-json"
    assert "javascript" not in _article_page(evil)

    pytest.importorskip("langchain_core")
    from adapters.langchain.retriever import to_document
    from adapters.langchain.tool import format_suggestions

    assert to_document(s).metadata["url"] == ""
    assert "javascript" not in format_suggestions([s])


def test_user_info_and_a_markdown_break_out_leave_through_no_exit(articles):
    """Urls that pass a naive scheme check but carry a password, show a host they do not open, or end a Markdown
    link early: every output (JSON, Markdown, HTML, the tool, the retriever, the demo site) drops them."""
    rec = SessionRecommender.build(
        articles, encoder=HashingEncoder(256), progress=False, settings=SuggestSettings(min_score=-1.0, mmr_lambda=1.0)
    )
    from adapters.http.app import SuggestionJSON
    from adapters.http.demo_site import _article_page

    for url, marker in [
        ("https://admin:hunter2@kb.test/json", "hunter2"),
        ("https://kb.test@evil.test/json", "evil.test"),
        ("https://kb.test/json)[x](javascript:alert(1)", "javascript"),
    ]:
        evil = Article("ser-json", "JSON serialization guide", url, "json")
        _bypassing_ingest(rec, evil)
        s = Suggestion(evil, 0.9, "because", (), 0)
        assert s.to_dict()["url"] == "" and SuggestionJSON()(s)["href"] == ""
        for text in (render([s], "markdown"), render([s], "html"), _article_page(evil)):
            assert marker not in text, (url, text)
        pytest.importorskip("langchain_core")
        from adapters.langchain.retriever import to_document
        from adapters.langchain.tool import format_suggestions

        assert to_document(s).metadata["url"] == "" and marker not in to_document(s).page_content
        assert marker not in format_suggestions([s])
        assert safe_url(KnowledgeBase([evil]).get("ser-json").url) == ""  # and ingest drops it


def test_the_ingest_warning_names_a_refused_url_without_its_credentials(caplog):
    """The warning that names a dropped url must not copy the password or token the url carried into the log."""
    evil = Article("a", "A", "https://admin:hunter2@kb.test/x?token=SECRET#f", "text")
    with caplog.at_level(logging.WARNING, logger="plugin.urls"):
        assert KnowledgeBase([evil]).get("a").url == ""
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "'a'" in warning and "https://kb.test/x" in warning
    assert "hunter2" not in warning and "admin" not in warning and "SECRET" not in warning
