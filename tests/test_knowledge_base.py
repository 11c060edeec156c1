from __future__ import annotations

import json

import pytest

from plugin import Article, DataFormatError, KnowledgeBase, UnknownArticleError, load_articles


def test_jsonl_with_all_fields(tmp_path):
    p = tmp_path / "kb.jsonl"
    rows = [
        {
            "id": "a",
            "title": "A",
            "url": "https://x.test/a/",
            "text": "alpha",
            "tags": ["t"],
            "locale": "en",
            "updated_at": "2024-01-02T03:04:05Z",
        },
        {"id": "b", "title": "B", "updated_at": 1700000000},
    ]
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    arts = load_articles(p)
    assert [a.id for a in arts] == ["a", "b"]
    assert arts[0].tags == ("t",) and arts[0].updated_at.year == 2024 and arts[1].updated_at.tzinfo is not None
    kb = KnowledgeBase(arts)
    assert kb.find("http://X.test/a#frag").id == "a"  # scheme, host case, fragment and slash don't matter
    assert kb.find("https://x.test/zzz") is None
    with pytest.raises(UnknownArticleError, match="zzz"):
        kb.resolve("zzz")


@pytest.mark.parametrize(
    "content,match",
    [
        ('{"id": "a"}', "missing required field"),
        ('{"id": "a", "title": "A", "colour": 1}', "valid fields are"),
        ("{not json", r"kb.jsonl:1: invalid JSON"),
        ('{"id": "a", "title": "A"}\n{"id": "a", "title": "B"}', "duplicate article id 'a'"),
        ('{"id": "a", "title": "A", "updated_at": "yesterday"}', "not ISO-8601"),
        ("", "no articles found"),
    ],
)
def test_bad_jsonl_is_a_specific_error(tmp_path, content, match):
    p = tmp_path / "kb.jsonl"
    p.write_text(content)
    with pytest.raises(DataFormatError, match=match):
        load_articles(p)


@pytest.mark.parametrize(
    "fields,match",
    [
        ('"meta": [1]', "meta must be a JSON object"),
        ('"meta": "x"', "meta must be a JSON object"),
        ('"tags": 5', "tags must be a string or a list"),
        ('"tags": {"a": 1}', "tags must be a string or a list"),
        ('"tags": [["nested"]]', "tags must be a string or a list"),
        ('"locale": 5', "locale must be a string"),
        ('"url": ["https://x.test/a"]', "url must be a string"),
        ('"text": {"a": 1}', "text must be a string"),
        ('"updated_at": 1e20', "updated_at 1e\\+20 is not a unix time this platform holds"),
        ('"updated_at": NaN', "updated_at nan is not a unix time"),
        ('"updated_at": true', "updated_at True is not ISO-8601"),
    ],
)
def test_a_field_of_the_wrong_type_is_an_error_naming_the_line(tmp_path, fields, match):
    """Adversarial review round 1 (docs/security.md): these raised a bare TypeError, ValueError or OverflowError
    naming no line, or were coerced (a list became the url "['https://x.test/a']")."""
    p = tmp_path / "kb.jsonl"
    p.write_text('{"id": "ok", "title": "Fine"}\n{"id": "a", "title": "A", ' + fields + "}\n")
    with pytest.raises(DataFormatError, match=r"kb.jsonl:2: " + match):
        load_articles(p)


def test_non_utf8_file_names_the_byte(tmp_path):
    p = tmp_path / "kb.jsonl"
    p.write_bytes(b'{"id": "a", "title": "caf\xe9"}')
    with pytest.raises(DataFormatError, match=r"not valid UTF-8 \(byte 25\)"):
        load_articles(p)


def test_folder_of_markdown_and_html(tmp_path):
    (tmp_path / "guides").mkdir()
    (tmp_path / "guides" / "install.md").write_text(
        "---\ntitle: Installing\ntags: [setup, pip]\n---\n# ignored\nRun pip."
    )
    (tmp_path / "faq.md").write_text("# Frequently asked\n\nAnswers.")
    (tmp_path / "page.html").write_text(
        "<html><head><title>Page &amp; co</title><script>evil()</script></head>"
        "<body><nav>menu</nav><h1>Head &amp; co</h1><p>Body text</p></body></html>"
    )
    (tmp_path / "notes.txt").write_text("ignored")
    arts = {a.id: a for a in load_articles(tmp_path, base_url="https://docs.test")}
    assert set(arts) == {"guides/install.md", "faq.md", "page.html"}
    assert arts["guides/install.md"].title == "Installing" and arts["guides/install.md"].tags == ("setup", "pip")
    assert arts["faq.md"].title == "Frequently asked" and arts["faq.md"].url == "https://docs.test/faq.md"
    assert arts["page.html"].title == "Head & co"  # the page's own heading, not the site-styled <title>
    assert (
        "Body text" in arts["page.html"].text
        and "evil" not in arts["page.html"].text
        and "menu" not in arts["page.html"].text
    )


def test_missing_source_and_wrong_type(tmp_path):
    with pytest.raises(DataFormatError, match="does not exist"):
        load_articles(tmp_path / "nope.jsonl")
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(DataFormatError, match="give a .jsonl file or a folder"):
        load_articles(tmp_path / "x.csv")


def test_snippet_is_short_and_whole_words():
    a = Article("a", "A", text="word " * 100)
    assert len(a.snippet(40)) <= 40 and a.snippet(40).endswith("…")


def test_articles_sharing_a_url_and_entities_in_html_titles(tmp_path):
    kb = KnowledgeBase([Article("a", "A", "https://x.test/shared"), Article("b", "B", "https://x.test/shared")])
    assert kb.find("https://x.test/shared").id == "b"
    kb.remove("a")  # removing the other article must not unlink b's url
    assert kb.find("https://x.test/shared").id == "b"
    (tmp_path / "p.html").write_text("<title>Tags &amp;lt;b&amp;gt; explained</title><p>x</p>")
    assert load_articles(tmp_path)[0].title == "Tags &lt;b&gt; explained"


def test_page_urls_map_to_articles_the_way_browsers_send_them():
    kb = KnowledgeBase(
        [
            Article("index.html", "Docs home", "https://docs.test/en/index.html"),
            Article("topics/index.html", "Topics", "https://docs.test/en/topics/index.html"),
            Article(
                "topics/s.html",
                "Sessions",
                "https://docs.test/en/topics/s.html",
                meta={"canonical": "https://www.docs.test/stable/topics/sessions/"},
            ),
            Article("q3", "Dynamic 3", "https://help.test/article?id=3"),
            Article("q4", "Dynamic 4", "https://help.test/article?id=4"),
        ]
    )
    found = lambda u: (kb.find(u) or Article("-", "-")).id  # noqa: E731
    for u in (
        "https://docs.test/en/",
        "https://docs.test/en",
        "http://DOCS.test/en/index.html",
        "docs.test/en/index",
        "https://docs.test/en/?highlight=x",
        "https://docs.test/en/#top",
    ):
        assert found(u) == "index.html", u
    assert found("https://docs.test/en/topics/") == "topics/index.html"
    for u in (
        "https://docs.test/en/topics/s.html?highlight=cookie",
        "https://docs.test/en/topics/s.html#s-x",
        "https://docs.test/en/topics/s",
        "https://www.docs.test/stable/topics/sessions/",
        "https://www.docs.test/stable/topics/sessions/?utm_source=x#frag",
    ):
        assert found(u) == "topics/s.html", u
    # a query string that names the article still does
    assert found("https://help.test/article?id=3") == "q3" and found("https://help.test/article?id=4") == "q4"
    assert kb.find("https://docs.test/en/topics/other.html") is None
    kb.remove("topics/s.html")  # all its urls go with it
    assert (
        kb.find("https://www.docs.test/stable/topics/sessions/") is None
        and kb.find("https://docs.test/en/topics/s") is None
    )


def test_a_record_nested_past_the_decoders_limit_is_an_error_naming_the_line(tmp_path):
    p = tmp_path / "kb.jsonl"
    p.write_text(
        '{"id": "a", "title": "A"}\n{"id": "b", "title": "B", "meta": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
    )
    with pytest.raises(DataFormatError, match=r"kb.jsonl:2: JSON nested too deep"):
        load_articles(p)
