"""Shared fixtures. Tests are offline and deterministic: a hashing encoder for most, the packaged
all-MiniLM-L6-v2 for the few marked `real_model`. One thread each for torch and faiss (2 shared cores)."""

from __future__ import annotations

import faiss
import pytest
import torch

from plugin import Article, HashingEncoder, SessionRecommender

torch.set_num_threads(1)
faiss.omp_set_num_threads(1)

# Two clearly separated topics plus a distractor: a session on one topic must get that topic's articles.
TOPIC_ARTICLES = [
    Article(
        "ser-json",
        "JSON serialization guide",
        "https://kb.test/json",
        "json encode decode serialize objects to text json dumps loads",
        tags=("data",),
        locale="en",
    ),
    Article(
        "ser-pickle",
        "Pickle serialization of python objects",
        "https://kb.test/pickle",
        "pickle serialize objects binary dump load protocol",
        tags=("data",),
        locale="en",
    ),
    Article(
        "ser-shelve",
        "Shelve persistent object storage",
        "https://kb.test/shelve",
        "shelve persistent storage of pickled objects serialize dictionary",
        tags=("data",),
        locale="en",
    ),
    Article(
        "ser-marshal",
        "Marshal internal object serialization",
        "https://kb.test/marshal",
        "marshal serialize objects binary format internal",
        tags=("data",),
        locale="en",
    ),
    Article(
        "ser-csv",
        "CSV files reading and writing",
        "https://kb.test/csv",
        "csv serialize rows text files reader writer",
        tags=("data",),
        locale="de",
    ),
    Article(
        "net-http",
        "HTTP client requests",
        "https://kb.test/http",
        "http client request response network socket url fetch",
        tags=("net",),
        locale="en",
    ),
    Article(
        "net-socket",
        "Socket programming basics",
        "https://kb.test/socket",
        "socket network tcp udp connect send receive",
        tags=("net",),
        locale="en",
    ),
    Article(
        "net-url",
        "URL parsing and quoting",
        "https://kb.test/url",
        "url parse quote network http address",
        tags=("net",),
        locale="en",
    ),
    Article(
        "net-ssl",
        "TLS and SSL sockets",
        "https://kb.test/ssl",
        "ssl tls socket network encryption certificate",
        tags=("net",),
        locale="en",
    ),
    Article(
        "misc-turtle",
        "Turtle graphics drawing",
        "https://kb.test/turtle",
        "turtle graphics drawing canvas pen colour",
        tags=("fun",),
        locale="en",
    ),
]


@pytest.fixture
def articles() -> list[Article]:
    return list(TOPIC_ARTICLES)


@pytest.fixture
def fake_encoder() -> HashingEncoder:
    return HashingEncoder(1024)


@pytest.fixture
def rec(articles, fake_encoder) -> SessionRecommender:
    """A recommender over the topic KB with the deterministic hashing encoder and no minimum score."""
    from plugin import SuggestSettings

    return SessionRecommender.build(
        articles, encoder=fake_encoder, progress=False, settings=SuggestSettings(min_score=-1.0, mmr_lambda=1.0)
    )


@pytest.fixture(scope="session")
def real_encoder():
    """The packaged all-MiniLM-L6-v2 (loaded once per test run)."""
    from plugin import SentenceTransformerEncoder

    return SentenceTransformerEncoder()
