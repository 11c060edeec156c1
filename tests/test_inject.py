from __future__ import annotations

import logging

from plugin import Article, Suggestion, inject_reply
from plugin.inject import links_in, safe_url


def _s(aid, title, url, reason="because you read json"):
    return Suggestion(Article(aid, title, url), 0.9, reason, ("json",))


def test_markdown_block_appended_and_existing_links_not_repeated():
    sugs = [_s("a", "Pickle guide", "https://kb.test/pickle"), _s("b", "Shelve guide", "https://kb.test/shelve/")]
    out = inject_reply("See https://kb.test/shelve for details.", sugs, "markdown")
    assert out.startswith("See https://kb.test/shelve for details.\n\n**Related articles**")
    assert "[Pickle guide](<https://kb.test/pickle>) — because you read json" in out
    assert out.count("kb.test/shelve") == 1


def test_markdown_and_html_escape_titles_and_drop_unsafe_urls():
    evil = _s("x", "<img src=x onerror=alert(1)> [click](javascript:alert(1))", "javascript:alert(1)")
    md = inject_reply("ok", [evil], "markdown")
    assert "](javascript" not in md and "\\[click\\]" in md and "\\<img" in md
    html = inject_reply("ok", [evil], "html")
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "href" not in html  # the unsafe url is not linked at all
    assert (
        safe_url("/docs/json") == "/docs/json" and safe_url("//evil.test") == "" and safe_url("data:text/html,x") == ""
    )


def test_json_form_is_structured():
    out = inject_reply("hi", [_s("a", "Pickle", "https://kb.test/p")], "json")
    assert out["reply"] == "hi"
    assert out["suggestions"][0]["id"] == "a" and out["suggestions"][0]["reason"].startswith("because")


def test_nothing_to_add_leaves_the_reply_untouched():
    assert inject_reply("hello", [], "markdown") == "hello"
    assert (
        inject_reply("hello https://kb.test/p", [_s("a", "P", "https://kb.test/p")], "html")
        == "hello https://kb.test/p"
    )
    assert links_in('<a href="/docs/x">x</a> and (/docs/y)') == {"/docs/x", "/docs/y"}


def test_recommender_inject_never_breaks_the_reply(rec, caplog, monkeypatch):
    assert rec.inject("unknown-session", "plain reply") == "plain reply"
    assert rec.inject("unknown-session", "plain reply", fmt="json") == {"reply": "plain reply", "suggestions": []}
    rec.track("s", article_id="ser-json")

    def boom(*a, **k):
        raise RuntimeError("index on fire")

    monkeypatch.setattr(rec.index, "search", boom)
    monkeypatch.setattr(rec.index, "search_rows", boom)  # the candidate pass's search (hits with their rows)
    with caplog.at_level(logging.WARNING):
        assert rec.inject("s", "still here") == "still here"
    assert "suggestions skipped" in caplog.text


def test_recommender_inject_adds_topical_block(rec):
    rec.track("s", article_id="ser-json")
    rec.track("s", article_id="ser-pickle")
    out = rec.inject("s", "Use json.dumps.", k=2)
    assert "**Related articles**" in out and "kb.test/json" not in out and "kb.test/pickle" not in out


def test_urls_that_could_break_out_of_a_link_are_not_linked():
    evil = _s("x", "Shoes", "https://a.test/x>)[pwn](javascript:alert(1)")
    md = inject_reply("ok", [evil], "markdown")
    assert "javascript" not in md.split("Shoes", 1)[1].split("—", 1)[0] and "](<" not in md
    for bad in ('https://a.test/"onmouseover=x', "https://a.test/a b", "https://a.test/\nx", "/x<y"):
        assert safe_url(bad) == ""
    assert safe_url("https://a.test/path?q=1&r=2#frag") == "https://a.test/path?q=1&r=2#frag"


def test_inject_never_raises_on_a_bad_k_or_format(rec):
    rec.track("s", "page_view", url="https://kb.test/json", title="JSON serialization guide")
    assert rec.inject("s", "reply", k=0) == "reply"
    assert rec.inject("s", "reply", k=500) == "reply"
    assert rec.inject("s", "reply", fmt="yaml") == "reply"  # type: ignore[arg-type]
    assert "Related articles" in rec.inject("s", "reply", k=2)
