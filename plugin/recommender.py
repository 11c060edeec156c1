"""SessionRecommender: the pipeline in one object.

track (session store + event log) -> embed (cached encoder / index vectors) -> intent (content STAMP)
-> FAISS search -> rules (seen, locale, tags, freshness, min score, MMR) -> suggestions with reasons -> inject.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urljoin

import numpy as np
from tqdm.auto import tqdm

from . import explain
from .chat import MAX_K, ChatPolicy, suggest_for_reply
from .config import SessionSettings, SuggestSettings
from .encoder import (
    CachedEncoder,
    EmbeddingCache,
    Encoder,
    content_key,
    sentence_encoder,
)
from .errors import ConfigError, DimensionMismatchError, EmptySessionError, IndexFormatError, UnknownArticleError
from .event_log import EventLog
from .events import INTENT_KINDS, Event, make_event, short_title
from .hubness import HubnessIndex
from .index import ArticleIndex
from .inject import inject_reply
from .knowledge_base import Article, KnowledgeBase
from .lexical import QUERY_CHARS, LexicalIndex, LexicalScores, TextKey, query_terms
from .page_contents import PageContents
from .persistence import is_trained, load_version, write_version
from .request import SuggestRequest
from .rules import Candidate, freshness_bonus, merge_cold_start, mmr_order, passing
from .session_rows import Rows, SessionRows, row_bytes, same_source
from .session_store import InMemorySessionStore, PageContent, SessionContext, SessionStore
from .suggestion import Suggestion
from .threads import pin_threads
from .titles import TitleIndex
from .urls import logged_url
from .versions import commit_version, current_version
from .zero_shot import IntentModel, ZeroShotIntent

__all__ = ["SessionRecommender"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

# Above this many articles `index_kind="auto"` picks ivf: exact flat search stops fitting a 2 ms budget. ivf
# rather than hnsw: it deletes and updates in place (hnsw keeps tombstones until a rebuild), and at a million
# articles hnsw (M 32) reached only recall@10 0.928 at ef_search 512 for 2.4 ms a search, where ivfpq gave 0.958 at
# 0.6 ms (bench/million.py, BENCHMARKS.md "A million articles", round 4).
_AUTO_IVF_ABOVE = 20_000
# Above this many `auto` picks ivfpq: at a million articles it searched at half ivf's CPU for the same recall; at
# 60,000 the two cost the same (bench/million.py, BENCHMARKS.md "A million articles").
_AUTO_IVFPQ_ABOVE = 500_000
_ENCODE_CHUNK = 128  # articles per encoder call: long ones make dozens of windows, and the bar should move


class SessionRecommender:
    def __init__(
        self,
        kb: KnowledgeBase,
        encoder: Encoder,
        index: ArticleIndex,
        *,
        store: SessionStore | None = None,
        intent_model: IntentModel | None = None,
        settings: SuggestSettings | None = None,
        session_settings: SessionSettings | None = None,
        event_log: EventLog | None = None,
        page_cache_size: int = 10_000,
        page_contents: PageContents | None = None,
        session_rows: SessionRows | None = None,
    ) -> None:
        if index.dim != encoder.dim:
            raise DimensionMismatchError(
                f"index holds {index.dim}-d vectors but encoder {encoder.name} gives {encoder.dim}-d; "
                "rebuild the index with this encoder"
            )
        if index.encoder_name and index.encoder_name != encoder.name:
            raise ConfigError(
                f"the index was built with encoder {index.encoder_name!r} but this recommender uses "
                f"{encoder.name!r}: vectors from two models are not comparable. Rebuild the index with this "
                "encoder (python -m plugin index SOURCE --out DIR --rebuild) or pass the original one"
            )
        self.kb = kb
        self.encoder = encoder if isinstance(encoder, CachedEncoder) else CachedEncoder(encoder)
        # Visitors' pages and queries get their own bounded cache: never saved with the index, and it cannot
        # grow with traffic the way a cache of everything ever posted would. 10,000 vectors of 384 floats is ~17 MB
        # a worker (50,000 was ~85 MB, filled over an hour of bench/wrk_load.py's traffic, every page a new text);
        # a read page's vector also lives in PageContents and the session store, so a miss here costs one encode.
        # Entries lapse after the session TTL: an erased session's words leave every worker's memory within it.
        self.session_settings = session_settings or SessionSettings()
        self.page_encoder = CachedEncoder(
            self.encoder.inner,
            EmbeddingCache(encoder.dim, encoder.name, page_cache_size, ttl_seconds=self.session_settings.ttl_seconds),
        )
        self.index = index
        self.version: str | None = None  # the index folder's version this was loaded from (None: built here or flat)
        # Texts and vectors of the pages the sessions hold (the stored events keep only their hash).
        self.pages = (
            page_contents if page_contents is not None else PageContents(ttl_seconds=self.session_settings.ttl_seconds)
        )
        # Each recent session's resolved context rows, so that a suggestion resolves only what was tracked since the
        # last one on this worker (`plugin.session_rows`); dropped when the KB changes, lapsing like the caches above
        self.rows = (
            session_rows if session_rows is not None else SessionRows(ttl_seconds=self.session_settings.ttl_seconds)
        )
        # whose memos `self.rows` gives back: this recommender's, written since its articles last changed (the memo
        # may be shared: `session_rows=` goes to every version a ReloadingRecommender loads)
        self._rows_owner = object()
        self.store: SessionStore = store if store is not None else InMemorySessionStore(self.session_settings)
        self.intent_model: IntentModel = intent_model or ZeroShotIntent(encoder.dim)
        if self.intent_model.input_dim != encoder.dim:
            raise DimensionMismatchError(
                f"intent model expects {self.intent_model.input_dim}-d items, encoder gives {encoder.dim}-d"
            )
        self.settings = settings or SuggestSettings()
        self._embeds_text = bool(getattr(encoder, "embeds_text", True))
        self.event_log = event_log
        # BM25's cached scores of read texts lapse after the session TTL too (an erased session's on every worker)
        self.lexical = LexicalIndex(self._lexical_corpus, ttl_seconds=self.session_settings.ttl_seconds)
        self.hubness = HubnessIndex(self._hubness_vectors)
        self.titles = TitleIndex(self._title_vectors)

    def _lexical_corpus(self) -> tuple[list[str], list[str]]:
        ids = [a for a in self.index.ids() if a in self.kb]
        return ids, [self.kb.get(a).embed_text() for a in ids]

    def _hubness_vectors(self, limit: int) -> tuple[list[str], np.ndarray] | None:
        if len(self.index) > limit:
            return None
        ids = self.index.ids()
        return ids, self._centred(self.index.vectors(ids))

    def _title_vectors(self, allow_encoding: bool) -> tuple[list[str], np.ndarray] | None:
        ids = [a for a in self.index.ids() if a in self.kb]
        titles = [self.kb.get(a).title for a in ids]
        if not allow_encoding and any(
            self.encoder.cache.get(content_key(self.encoder.name, t)) is None for t in titles
        ):
            return None  # a request does not embed titles: go without until warm() (see plugin.titles)
        return ids, self.encoder.encode(titles)

    def warm(self) -> None:
        """Build now what the first request would otherwise build (BM25 index, hubness discounts, title vectors,
        the index's mean vector), so that servers pay for it in their loading thread, not on a visitor's request."""
        if not self._embeds_text:
            return
        if self.settings.centre:
            self.index.mean_vector()  # reads every vector: seconds at a million articles
        if self.settings.lexical_weight > 0:
            self.lexical.warm()
        if self.settings.hubness_weight > 0:
            self.hubness.warm()
        if self.settings.title_weight > 0:
            self.titles.warm()

    # ------------------------------------------------------------ building and persistence

    @classmethod
    def build(
        cls,
        articles: Iterable[Article],
        *,
        encoder: Encoder | None = None,
        index_kind: Literal["auto", "flat", "ivf", "ivfpq", "hnsw"] = "auto",
        progress: bool = True,
        **kwargs: Any,
    ) -> SessionRecommender:
        """Embed and index the articles (tqdm progress); kwargs go to the constructor."""
        arts = list(articles)
        enc = encoder if encoder is not None else sentence_encoder()
        kind = index_kind
        if kind == "auto":
            n = len(arts)
            kind = "ivfpq" if n > _AUTO_IVFPQ_ABOVE else "ivf" if n > _AUTO_IVF_ABOVE else "flat"
        # ivf clusters once, on every article (train_at), not on the first chunk the loop below adds
        index = ArticleIndex(enc.dim, kind, encoder_name=enc.name, train_at=max(len(arts), 1))
        rec = cls(KnowledgeBase(), enc, index, **kwargs)
        rec.upsert_articles(arts, progress=progress)
        pin_threads()  # indexing used the libraries' threads; the built recommender serves one query at a time
        return rec

    def upsert_articles(self, articles: Sequence[Article], *, progress: bool = False) -> None:
        """Add or update articles without a rebuild; unchanged texts come from the embedding cache."""
        bar = tqdm(total=len(articles), desc="indexing", unit="art", disable=not progress)
        for start in range(0, len(articles), _ENCODE_CHUNK):
            chunk = list(articles[start : start + _ENCODE_CHUNK])
            vecs = self.encoder.encode_documents([a.embed_text() for a in chunk], [a.title for a in chunk])
            self.index.upsert([a.id for a in chunk], vecs)
            if self.settings.title_weight > 0 and self._embeds_text:
                self.encoder.encode([a.title for a in chunk])  # into the cache saved with the index (plugin.titles)
            for a in chunk:
                self.kb.upsert(a)
            bar.update(len(chunk))
        bar.close()
        self._rows_owner = object()  # after the last change: a memo a suggestion wrote meanwhile is not read back
        self.rows.clear()
        self.lexical.invalidate()
        self.hubness.invalidate()
        self.titles.invalidate()

    def remove_articles(self, ids: Sequence[str]) -> int:
        for aid in ids:
            self.kb.remove(aid)  # raises UnknownArticleError before anything changes for a bad id
        self.rows.clear()
        self.lexical.invalidate()
        self.hubness.invalidate()
        self.titles.invalidate()
        removed = self.index.remove(ids)
        self._rows_owner = object()  # (as in upsert_articles)
        return removed

    def save(self, directory: str | os.PathLike[str], *, keep_versions: int = 3) -> Path:
        """Save as the next version of `directory` (see `plugin.versions`): written in full under a
        temporary name, then committed by one atomic rename, so a server following the folder
        (`ReloadingRecommender`) never reads a half-written index. Returns the version's folder."""
        return commit_version(directory, self._write_version, keep=keep_versions)

    def _write_version(self, d: Path) -> None:
        write_version(self, d)

    @classmethod
    def load(
        cls, directory: str | os.PathLike[str], *, encoder: Encoder | None = None, **kwargs: Any
    ) -> SessionRecommender:
        """The committed version of an index folder (or a flat one from before versioning).

        With no `encoder`, the one the index was built with is made on first use only: suggesting for pages
        that are all in the index never loads the sentence-transformer."""
        pin_threads()  # a loaded index serves: one small query at a time (SESSION_SUGGEST_THREADS=0: opt out)
        tried = current_version(directory)
        try:
            return cls._load_version(directory, encoder, kwargs)
        except IndexFormatError:
            # Writers may have committed and pruned versions while this one was being read: retry once
            # with whatever is committed now.
            now = current_version(directory)
            if now is None or now == tried:
                raise
            return cls._load_version(directory, encoder, kwargs)

    @classmethod
    def _load_version(
        cls, directory: str | os.PathLike[str], encoder: Encoder | None, kwargs: dict[str, Any]
    ) -> SessionRecommender:
        return load_version(cls, directory, encoder, kwargs)

    # ------------------------------------------------------------ tracking

    def track(self, session_id: str, kind: str = "page_view", **fields: Any) -> Event | None:
        """Record what the visitor touched. Returns the stored event, or None for a duplicate.

        A url or article_id that names a KB article is linked to it; any other page is first-class and
        represented by the embedding of its title and text. The url is kept as logs keep it (`urls.logged_url`:
        no query string, fragment, path parameters or user info), once it has been looked up in the KB.
        """
        s = self.session_settings
        event = make_event(
            session_id,
            kind,
            max_text_chars=s.max_text_chars,
            max_title_chars=s.max_title_chars,
            max_url_chars=s.max_url_chars,
            **fields,
        )
        event, art = self._linked(event, resolve=event.kind in INTENT_KINDS)
        if event.url:
            # A reset token, a signed link's signature or `user:pass@` in the url the widget reports (`location.href`)
            # would sit in the session store for the session's TTL. Cut after the KB lookup above, which may need the
            # query (`?p=123` sites) and stored the article it found as article_id; after it nothing reads more of
            # the url than this (seen keys, reload dedupe, a page's label and, off the KB, its url-only text).
            event = replace(event, url=logged_url(event.url) or None)
        kept, content = event.slim(), None  # the store keeps the text once per hash, beside the session
        if event.kind == "search" and self._embeds_text:
            # a search's vector is kept by hash like a page's (its text: the query), so that a worker that did not
            # track it, or whose vector cache lost it, reads it back instead of embedding the query again on the
            # request (MiniLM: milliseconds, and a thread hop to keep it off the event loop)
            kept = replace(kept, text=None, content_ref=kept.content_hash())
        if event.kind in INTENT_KINDS and art is None:
            content = self.pages.get(kept.content_ref) if kept.content_ref else None
            if content is None and kept.content_ref and event.kind != "search":
                content = self._shared_page(kept.content_ref)
            if content is None:
                # embed now, so suggest() only reads the vector; and the BM25 terms, so a worker whose BM25 cache
                # lost the page reads them instead of tokenising it again (a page's text is the same in every request).
                # A page with text is embedded past the page cache: its vector lives in PageContents and the store,
                # which erase can find by the page's hash, while the cache's key hashes the whole text, which nothing
                # keeps to find it by. A search's vector stays in the vector cache (erase drops it there).
                page = kept.content_ref is not None and event.kind != "search"
                encode = self.page_encoder.inner.encode if page else self.page_encoder.encode
                vec = encode([event.content()])[0] if self._embeds_text else None
                terms = query_terms(event.content()) if kept.content_ref and self._lexical_on() else None
                text = event.query if event.kind == "search" else event.text  # what content() restores
                content = PageContent((text or "")[:QUERY_CHARS], vec, terms)
                if page and kept.content_ref:  # a search's vector is in the vector cache already
                    self.pages.put(kept.content_ref, content)
        stored = self.store.append(kept, content) if kept.content_ref and content else self.store.append(kept)
        if not stored:
            return None
        if self.event_log is not None:
            try:
                self.event_log.append(event)
            except OSError:
                logger.exception("could not append to the event log %s", self.event_log.path)
        return event

    def _shared_page(self, digest: str) -> PageContent | None:
        """A page this worker does not hold, read from the store when another session (and worker) stored it: one
        store round trip instead of an embedding (MiniLM: ~30 ms of CPU; a site's visitors read the same pages).
        None when the store cannot answer by hash alone, holds no such page, or holds it without what this
        recommender needs (a vector of its encoder's size: the index may have been rebuilt with another since)."""
        # getattr, not isinstance(SharedContents): the same structural test, without a runtime Protocol check's
        # cost on every page miss
        read: Callable[[str], PageContent | None] | None = getattr(self.store, "shared_content", None)
        if read is None:
            return None
        content = read(digest)
        if content is None:
            return None
        if self._embeds_text and (content.vector is None or content.vector.shape != (self.index.dim,)):
            return None
        if content.terms is None and self._lexical_on():
            return None
        self.pages.put(digest, content)
        return content

    def events(self, session_id: str) -> list[Event]:
        return self.store.read(session_id)

    def needs_encoding(self, events: Sequence[Event]) -> bool:
        """Whether suggesting from these events would run the text encoder (a page outside the KB whose
        embedding is not cached here, e.g. tracked by another worker): callers on an event loop can then
        move the call to a thread."""
        if not self._embeds_text:
            return False
        signal = [e for e in events if e.kind in INTENT_KINDS][-self.settings.max_context_events :]
        return any(
            e.content_ref is None  # a stored page's vector is read from the store, not embedded again
            and self._kb_article(e) is None  # (after the cheap test: a long session holds ~7 stored pages)
            and self.page_encoder.cache.get(content_key(self.encoder.name, e.content())) is None
            for e in signal
        )

    def embeds_on_track(self, kind: str, *, url: str | None = None, article_id: str | None = None) -> bool:
        """Whether `track` of such an event may run the text encoder: a search, or a page that names no indexed KB
        article (its text, or its url's words, are embedded). Callers on an event loop move those to a thread;
        every other event costs look-ups and one store write. Errs towards True (a page whose content this worker
        holds already is not embedded again, but counts here)."""
        if not self._embeds_text or kind not in INTENT_KINDS:
            return False
        if kind == "search":
            return True
        art = self.kb.find(article_id) if article_id else None
        if art is None and url:
            art = self.kb.find(url)
        return art is None or art.id not in self.index

    def context(self, session_id: str) -> SessionContext:
        """What a suggestion reads of the session (its newest intent events and seen keys), in one store read."""
        return self.store.context(session_id, self.settings.max_context_events)

    def erase(self, session_id: str) -> bool:
        # this worker's copies of the session's pages, and the vectors and BM25 scores of its words, go too (other
        # workers' pages and vectors lapse within the session TTL): every text suggest() may have embedded or scored
        # for it, a stored page's with its head. The memo goes first: it marks the session erased, so that a
        # suggestion of it in flight now drops what it puts in these caches after this (`suggest`)
        questions = self.rows.questions(session_id)
        self.rows.forget([session_id])
        # the questions' words before the store is read: the note of them is gone now, and a store that fails the
        # erase below (Redis unreachable: 503, retried) must not leave their vectors with nothing left to find them by
        self._forget_words((), questions)
        events = self.store.read(session_id)
        held = self.pages.for_events(self.store, session_id, events)
        restored = [_with_text(e, held[e.content_ref].text) for e in events if e.content_ref in held]
        self._forget_words([*events, *restored])
        existed = self.store.erase(session_id)
        if self.event_log is not None:
            existed = bool(self.event_log.erase_session(session_id)) or existed
        return existed

    def _forget_words(self, events: Sequence[Event], questions: Sequence[str] = ()) -> None:
        """Drop from this worker's caches every text suggest() may have embedded or scored for these events (a stored
        page's as restored among them) and questions: their vectors, BM25's scores (by text, or by content hash:
        `_text_key`) and the page contents they name."""
        texts = {e.content() for e in events} | set(questions)
        self.page_encoder.cache.forget(content_key(self.encoder.name, t) for t in texts)
        refs = list(dict.fromkeys(e.content_ref for e in events if e.content_ref))
        self.lexical.forget(texts, [("p", ref) for ref in refs])
        self.pages.forget(refs)

    def _linked(self, event: Event, *, resolve: bool = True) -> tuple[Event, Article | None]:
        """The event linked to the KB article its url names (when it names none by id), and the indexed article
        it stands for (None off the KB, or when `resolve` is False and the event named its article by id).
        The page's url is looked up once: the article found by it is the one the event stands for."""
        if event.article_id is None and event.url:
            art = self.kb.find(event.url)
            if art is None:
                return event, None
            return replace(event, article_id=art.id), art if art.id in self.index else None
        return event, self._kb_article(event) if resolve else None

    def _kb_article(self, event: Event) -> Article | None:
        art = self.kb.find(event.article_id) if event.article_id else None
        if art is None and event.kind != "search":
            art = self.kb.find(event.url)
        return art if art is not None and art.id in self.index else None

    # ------------------------------------------------------------ suggesting

    def _session_items(
        self, events: Sequence[Event], session_id: str | None = None
    ) -> tuple[np.ndarray, list[Event], list[str | None]]:
        """Vectors of the session's intent events (KB articles from the index, pages the store holds from their
        stored vectors, other pages from the embedding cache), the events themselves, and their article ids
        (None off the KB)."""
        rows = self._session_rows(events, session_id)
        return rows.vectors, list(rows.signal), list(rows.keys)

    def _session_rows(self, events: Sequence[Event], session_id: str | None = None) -> Rows:
        """`_session_items` with each row's BM25 name (`_text_key`). A session's rows its last suggestion on this
        worker resolved are copied from that suggestion's memo (`plugin.session_rows`): only the events tracked
        since are resolved."""
        signal = [e for e in events if e.kind in INTENT_KINDS][-self.settings.max_context_events :]
        names: list[TextKey | None]
        memoised = session_id is not None and self._embeds_text  # (an item-ID model's rows are its catalogue's)
        owner = self._rows_owner  # read before any look-up: rows of a KB that changes meanwhile are not read back
        memo = self.rows.get(session_id, owner) if memoised and session_id is not None else None
        if memo is None:
            vecs, resolved, keys, held = self._resolve_rows(signal, session_id)
            names = [self._text_key(e, k) for e, k in zip(resolved, keys)]
            sizes = [row_bytes(e) for e in resolved]
        else:
            prev, at = memo
            n = len(signal)
            vecs = np.empty((n, self.index.dim), dtype=np.float32)
            resolved, keys, held = list(signal), [None] * n, [True] * n
            names = [None] * n
            sizes = [0] * n
            src: list[int] = []
            dst: list[int] = []
            todo: list[int] = []
            for i, e in enumerate(signal):
                j = at.get(e.event_id)
                if j is not None and same_source(e, prev.signal[j]):
                    src.append(j)
                    dst.append(i)
                    resolved[i], keys[i], names[i] = prev.signal[j], prev.keys[j], prev.names[j]
                    sizes[i] = prev.sizes[j]
                else:
                    todo.append(i)
            if dst:
                vecs[dst] = prev.vectors[src]
            if todo:
                v, r, k, h = self._resolve_rows([signal[i] for i in todo], session_id)
                vecs[todo] = v
                for t, i in enumerate(todo):
                    resolved[i], keys[i], held[i] = r[t], k[t], h[t]
                    names[i] = self._text_key(r[t], k[t])
                    sizes[i] = row_bytes(r[t])
        rows = Rows(vecs, tuple(resolved), tuple(keys), tuple(names), tuple(held), tuple(sizes))
        if memoised and session_id is not None:
            self.rows.put(session_id, rows, owner)
        return rows

    def _resolve_rows(
        self, signal: list[Event], session_id: str | None
    ) -> tuple[np.ndarray, list[Event], list[str | None], list[bool]]:
        """`_session_items` for these events, looked up afresh; and per row whether a later suggestion may reuse it
        (not a page whose stored content had lapsed: embedded from what its event kept, it may be stored again)."""
        arts = [self._kb_article(e) for e in signal]
        if not self._embeds_text:  # an item-ID model only knows its catalogue
            signal = [e for e, a in zip(signal, arts) if a is not None]
            arts = [a for a in arts if a is not None]
        keys = [a.id if a is not None else None for a in arts]
        vecs = np.empty((len(signal), self.index.dim), dtype=np.float32)
        held = [True] * len(signal)
        kb_rows = [i for i, k in enumerate(keys) if k is not None]
        text_rows = [i for i, k in enumerate(keys) if k is None]
        if kb_rows:
            vecs[kb_rows] = self.index.vectors([k for k in keys if k is not None])
        if text_rows:
            # A search's vector is in this worker's vector cache, where track() or an earlier read put it, or else in
            # the store by its hash; pages are in `self.pages`, or else in the store. Searches are kept out of
            # `self.pages`, bounded for pages: a long session's three searches there pushed out its pages.
            cached = self.page_encoder.cache
            fetch: list[int] = []
            for i in text_rows:
                e = signal[i]
                if e.kind == "search" and e.content_ref is not None:
                    vec = cached.get(content_key(self.encoder.name, e.content()))
                    if vec is not None and vec.shape == (self.index.dim,):
                        vecs[i] = vec
                        continue
                fetch.append(i)
            pages = self.pages.for_events(self.store, session_id, [signal[i] for i in fetch])
            rest: list[int] = []
            for i in fetch:
                e = signal[i]
                content = pages.get(e.content_ref or "")
                if content is not None:  # a slim page gets its text's head back, for BM25 (which reads no further)
                    if e.kind != "search":  # (a search's text is its query, which it keeps)
                        signal[i] = _with_text(e, content.text)
                    # a vector from another encoder (the index was rebuilt with one since) has the wrong size
                    if content.vector is not None and content.vector.shape == (self.index.dim,):
                        vecs[i] = content.vector  # row by row: cheaper than stacking 16 rows first
                        if e.kind == "search":
                            cached.put(content_key(self.encoder.name, e.content()), content.vector)
                        continue
                rest.append(i)
            if rest:  # a page without text, a search, or one whose stored content expired: its words embedded
                vecs[rest] = self.page_encoder.encode([signal[i].content() for i in rest])
                for i in rest:
                    held[i] = False
        return vecs, signal, keys, held

    def suggest(
        self,
        session_id: str,
        k: int | None = None,
        *,
        locale: str | None = None,
        tags: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
        query: str | None = None,
        query_weight: float | None = None,
        min_score: float | None = None,
        exclude_seen: bool | None = None,
        context: SessionContext | None = None,
    ) -> list[Suggestion]:
        """Top-k articles for what this session is about, each with a reason.

        `query` blends a free-text question into the session intent (weight `query_weight`, default from the
        settings); with no session events the query alone is used. Raises EmptySessionError when there is neither.
        `context`: the session as `context(session_id)` just read it (saves reading it again).
        """
        req = SuggestRequest.resolve(
            self.settings,
            k,
            locale=locale,
            tags=tags,
            exclude=exclude,
            query=query,
            query_weight=query_weight,
            min_score=min_score,
            exclude_seen=exclude_seen,
        )
        ctx = context if context is not None else self.context(session_id)
        rows = self._session_rows(ctx.events, session_id)
        found = self._suggest_from(
            rows.vectors, list(rows.signal), list(rows.keys), ctx.events, req, seen=ctx.seen, names=rows.names
        )
        asked = (req.query,) if req.query and req.query.strip() else ()
        if self.rows.erased(session_id) or (asked and not self.rows.asked(session_id, asked[0])):
            # erased on this worker while this ran (after the context read: the HTTP routes read it first): what
            # this suggestion put in the caches came after the erase dropped them. (An erase that starts later
            # finds it there itself: the question through `rows.asked`.)
            self._forget_words([*ctx.events, *rows.signal], asked)
        return found

    def suggest_for(self, viewed: Sequence[str], k: int | None = None, **kwargs: Any) -> list[Suggestion]:
        """Suggestions for an ad-hoc list of viewed article ids or urls (no session needed)."""
        req = SuggestRequest.resolve(self.settings, k, **kwargs)
        arts = [self.kb.resolve(v) for v in viewed]
        events = [
            make_event("adhoc", "article_open", article_id=a.id, url=a.url or None, title=a.title, ts=float(i))
            for i, a in enumerate(arts)
        ]
        vecs, signal, keys = self._session_items(events)
        return self._suggest_from(vecs, signal, keys, events, req)

    def suggest_for_page(
        self,
        k: int | None = None,
        *,
        url: str | None = None,
        title: str | None = None,
        text: str | None = None,
        article_id: str | None = None,
        **kwargs: Any,
    ) -> list[Suggestion]:
        """Suggestions from the current page alone, for a visitor who did not consent to tracking.

        Nothing is kept: no session, no event-log line, and neither the page text's embedding nor its BM25 scores
        (nor a query's) are cached.
        kwargs as for `suggest` (locale, tags, exclude, query, ...).
        """
        req = SuggestRequest.resolve(self.settings, k, **kwargs)
        s = self.session_settings
        event = make_event(
            "no-consent",
            "page_view",
            url=url,
            title=title,
            text=text,
            article_id=article_id,
            ts=0.0,
            max_text_chars=s.max_text_chars,
            max_title_chars=s.max_title_chars,
            max_url_chars=s.max_url_chars,
        )
        event, art = self._linked(event)
        if art is not None:
            vecs = self.index.vectors([art.id])
        else:
            cached = self.page_encoder.cache.get(content_key(self.encoder.name, event.content()))
            vecs = cached[None, :] if cached is not None else self.encoder.inner.encode([event.content()])
        # the page is excluded as read by what it was just resolved to, not by looking it up again
        seen = frozenset(([f"a:{art.id}"] if art else []) + ([f"u:{event.url}"] if event.url else []))
        try:
            return self._suggest_from(
                np.asarray(vecs, np.float32), [event], [art.id if art else None], [event], req, seen=seen
            )
        finally:
            # Nothing kept: BM25's scores of an off-KB page's text, and a query's scores and vector, which the
            # suggestion cached by a digest of the text for the session TTL, go again (no erase could reach them).
            self._forget_words([event] if art is None else [], [req.query] if req.query else [])

    def _suggest_from(
        self,
        vecs: np.ndarray,
        signal: list[Event],
        keys: list[str | None],
        events: Sequence[Event],
        req: SuggestRequest,
        *,
        intent_model: IntentModel | None = None,
        seen: frozenset[str] | None = None,
        names: Sequence[TextKey | None] | None = None,
    ) -> list[Suggestion]:
        """`names`: each row's `_text_key`, where the caller has them (`_session_rows`)."""
        cfg = self.settings
        model = self.intent_model if intent_model is None else intent_model
        k, query, qw, floor = req.k, req.query, req.query_weight, req.floor
        locale, tags = req.locale, req.tags
        qvec = self.page_encoder.encode([query])[0] if query and query.strip() else None
        if not signal and qvec is None:
            raise EmptySessionError("the session has no page views, article opens or searches yet")

        seen_ids = set(req.exclude)
        seen_urls: set[str] = set()
        if req.exclude_seen and seen is not None:
            # Event.seen_keys: track() already resolved a KB page's url to its article id
            read_ids, read_urls = _split_seen(seen)
            seen_ids.update(self.index.holding(read_ids))
            seen_urls.update(read_urls)
        elif req.exclude_seen:
            for e in events:
                if e.kind in ("page_view", "article_open", "suggestion_click"):
                    art = self._kb_article(e)
                    if art is not None:
                        seen_ids.add(art.id)
                    if e.url:
                        seen_urls.add(e.url)

        # A model trained to score candidates its own way (plain cosine + learned candidate vectors) is served with
        # that score: the rule-based extras were tuned for the zero-shot intent (train-intent decides, on validation).
        plain = _plain_scoring(model)
        groups = (self._interests(vecs) if not plain else [list(range(len(signal)))]) if signal else [[]]
        shares = [1.0] if len(groups) == 1 else [cfg.newest_share, 1.0 - cfg.newest_share]
        attention = np.zeros(len(signal), dtype=np.float32)  # (L,)
        passes: list[_Pass] = []
        for rows, share in zip(groups, shares):
            cold, catalogue, learned, calibration, protected = None, None, None, None, frozenset[str]()
            if rows:
                intent = model.intent(vecs[rows], [keys[i] for i in rows])
                vector = intent.vector
                attention[rows] += share * intent.attention
                cold, catalogue, calibration = intent.cold_vector, intent.catalogue, intent.cold_calibration
                protected = intent.cold_protected
                if intent.learned_scores is not None and qvec is None:  # learned for reading, not for a question
                    learned = dict(zip(intent.learned_ids, intent.learned_scores.tolist()))
                if qvec is not None:
                    vector = _blend(vector, qvec, qw)
                    cold = None if cold is None else _blend(cold, qvec, qw)
            else:
                assert qvec is not None  # no pages read: then there is a query (EmptySessionError above otherwise)
                vector = qvec
            # made only if BM25's cache does not hold them by name: a stored page's text is its title and 4,000
            # characters joined anew each time
            texts = _Lazy(partial(self._row_text, signal, keys, rows), len(rows))
            row_names = (
                [names[i] for i in rows] if names is not None else [self._text_key(signal[i], keys[i]) for i in rows]
            )
            terms = _Lazy(partial(self._row_terms, signal, row_names, rows), len(rows))  # read on a BM25 miss only
            lexical = self._lexical_scores(texts, query, qw, row_names, terms)
            linked = self._linked_from([keys[i] for i in rows])
            titled = self.titles.query([keys[i] for i in rows]) if cfg.title_weight > 0 and self._embeds_text else None
            passes.append(_Pass(vector, cold, catalogue, learned, calibration, lexical, linked, titled, protected))

        # every interest's first index search in one call: a (G, D) query costs ~0.8 of G single ones on the
        # million-article ivfpq index, with the same hits (bench/million.py)
        first = self._first_hits([p.vector for p in passes], centre=not plain, pool=cfg.candidate_pool + len(seen_ids))
        ranked: list[list[tuple[Candidate, np.ndarray]]] = []
        for p, hits in zip(passes, first):
            vector, cold, catalogue, learned, calibration = p.vector, p.cold, p.catalogue, p.learned, p.calibration
            lexical, linked, titled = p.lexical, p.linked, p.titled
            if plain:
                pool = self._candidates(
                    vector, k, floor, seen_ids, seen_urls, locale, tags, learned=learned, centre=False, hits=hits
                )
            else:
                pool = self._candidates(
                    vector,
                    k,
                    floor,
                    seen_ids,
                    seen_urls,
                    locale,
                    tags,
                    lexical=lexical,
                    linked=linked,
                    learned=learned,
                    titled=titled,
                    hits=hits,
                )
            if cold is not None and catalogue is not None and plain:
                # articles added since the model was trained keep the rank the zero-shot recommender (its rules,
                # interests and all) shows them at, or are scored from that rank and score on the trained scale
                # when the model carries a calibration for it (plugin/cold_start.py); only those it ranks within
                # the model's cold_depth are shown, and none above the known successors the log is sure of
                zero = self._suggest_from(
                    vecs,
                    signal,
                    keys,
                    events,
                    req,
                    seen=seen,
                    intent_model=ZeroShotIntent(vecs.shape[1], model.config.zero_shot_temperature),  # type: ignore[attr-defined]
                )
                depth = model.config.cold_depth or len(zero)  # type: ignore[attr-defined]
                zero_cands = [Candidate(s.article, s.score, s.score) for s in zero[:depth]]
                if calibration is not None:
                    pool = self._pool_of(calibration.merge(pool.candidates(), zero_cands, catalogue))
                else:
                    pool = self._pool_of(merge_cold_start(pool.candidates(), zero_cands, catalogue, p.protected))
            elif cold is not None and catalogue is not None:
                # articles added since the model was trained keep their zero-shot rank
                cold_pool = self._candidates(
                    cold, k, floor, seen_ids, seen_urls, locale, tags, lexical=lexical, linked=linked
                )
                pool = self._pool_of(merge_cold_start(pool.candidates(), cold_pool.candidates(), catalogue))
            if not len(pool):
                ranked.append([])
                continue
            order = mmr_order(pool.score, pool.vectors, k, cfg.mmr_lambda)
            ranked.append([(pool.candidate(i), pool.vectors[i]) for i in order])

        labels = _Labels(self.kb, signal, keys)
        out = []
        for rank, (c, cvec) in enumerate(_share_slots(ranked, shares, k)):
            drivers = explain.drivers(attention, vecs, cvec, labels)
            out.append(Suggestion(c.article, c.score, explain.reason(drivers, query), tuple(drivers), rank))
        return out

    def _interests(self, vecs: np.ndarray) -> list[list[int]]:
        """Session rows split into the newest interest (pages close to the newest page) and the earlier one.

        A visitor who reads two pages on backups and then one on indexes has two interests; one averaged intent
        lands between them, on pages about neither. Closeness is the centred cosine (see `_centred`)."""
        cut = self.settings.topic_split
        n = len(vecs)
        if cut is None or n < 2 or not self._embeds_text:  # an item-ID model's session model sees the whole session
            return [list(range(n))]
        c = self._centred(vecs)  # (L, D)
        sims = c @ c[-1]  # (L,)
        newest = [i for i in range(n) if sims[i] >= cut or i == n - 1]
        earlier = [i for i in range(n) if i not in newest]
        return [newest, earlier] if earlier else [newest]

    def _centred(self, vecs: np.ndarray) -> np.ndarray:
        """Rows minus the KB's mean vector, re-normalised (unchanged when centring is off)."""
        if not (self.settings.centre and self._embeds_text):
            return vecs
        c = vecs - self.index.mean_vector()
        # np.linalg.norm's own arithmetic for a real array, without its dispatch (~5 us a call, 4 calls a pass)
        return c / np.maximum(np.sqrt(np.add.reduce(c * c, axis=-1, keepdims=True)), 1e-12)

    def _item_text(self, event: Event, key: str | None) -> str:
        art = self.kb.find(key) if key else None
        return art.embed_text() if art is not None else event.content()

    def _row_text(self, signal: Sequence[Event], keys: Sequence[str | None], rows: Sequence[int], j: int) -> str:
        return self._item_text(signal[rows[j]], keys[rows[j]])

    def _row_terms(
        self, signal: Sequence[Event], names: Sequence[TextKey | None], rows: Sequence[int], j: int
    ) -> str | None:
        """The stored BM25 terms of row j's text, where it is a stored page's (named by its content hash, see
        `_text_key`): the text restored from that content is the one its terms were made of when it was tracked."""
        name = names[j]
        if name is None or name[0] != "p":
            return None
        content = self.pages.get(signal[rows[j]].content_ref)
        return content.terms if content is not None else None

    def _text_key(self, event: Event, key: str | None) -> TextKey | None:
        """A name for `_item_text(event, key)` that BM25's cache can use instead of hashing the text (see
        `plugin.lexical`), or None. A KB page's text is its article's (BM25's cache is dropped when an article
        changes); a page whose stored text was restored has title + text, both fixed by its content hash, and a
        search its query, which its hash is of (`track`). Not a page whose stored content had lapsed: it stands
        for its title or else its url, which the hash may not cover."""
        if key is not None and key in self.kb:
            return ("a", key)
        if event.content_ref is not None and (event.text is not None or event.kind == "search"):
            return ("p", event.content_ref)  # a search's hash is its query's, which it always carries (`track`)
        return None

    def _linked_from(self, keys: Sequence[str | None]) -> set[str]:
        """Ids of the articles the read KB pages link to in their text (hrefs resolved against the page's url)."""
        if self.settings.link_weight <= 0:
            return set()
        out: set[str] = set()
        for key in keys:
            art = self.kb.find(key) if key else None
            if art is None:
                continue
            for href in art.meta.get("links") or ():
                if isinstance(href, str):
                    target = self.kb.find(urljoin(art.url, href) if art.url else href) or self.kb.find(href)
                    if target is not None and target.id != art.id:
                        out.add(target.id)
        return out

    def _lexical_scores(
        self,
        texts: Sequence[str],
        query: str | None,
        query_weight: float,
        text_keys: Sequence[TextKey | None] | None = None,
        terms: Sequence[str | None] | None = None,
    ) -> LexicalScores | None:
        """BM25 of the KB against what was read (and asked), for fusion; None when fusion is off. `text_keys`: the
        pages' names for BM25's cache (`_text_key`); `terms`: their stored BM25 terms, where known (`_row_terms`)."""
        if not self._lexical_on():
            return None
        has_query = bool(query and query.strip())
        page_w = (1.0 - query_weight if has_query else 1.0) / max(len(texts), 1)
        parts = _Lazy(lambda j: texts[j] if j < len(texts) else query or "", len(texts) + has_query)
        weights = [page_w] * len(texts) + ([query_weight if texts else 1.0] if has_query else [])
        names = list(text_keys) if text_keys is not None else [None] * len(texts)
        known = _Lazy(lambda j: terms[j] if terms is not None and j < len(texts) else None, len(texts) + has_query)
        return self.lexical.search(parts, weights, names + ([None] if has_query else []), known)

    def _lexical_on(self) -> bool:
        return self.settings.lexical_weight > 0 and self._embeds_text

    def _first_hits(
        self, vectors: Sequence[np.ndarray], *, centre: bool, pool: int
    ) -> list[list[tuple[str, float, int]] | None]:
        """Each interest's first index search (what `_candidates` searches with first), all in one call."""
        if not vectors:
            return []
        centred = centre and self.settings.centre and self._embeds_text
        queries = np.stack(vectors)  # (G, D)
        if centred:
            queries = queries - self.index.mean_vector()
        return list(self.index.search_rows(queries, pool))

    def _candidates(
        self,
        vector: np.ndarray,
        k: int,
        floor: float | None,
        seen_ids: set[str],
        seen_urls: set[str],
        locale: str | None,
        tags: Sequence[str] | None,
        lexical: LexicalScores | None = None,
        linked: set[str] | frozenset[str] = frozenset(),
        learned: dict[str, float] | None = None,
        centre: bool = True,
        titled: np.ndarray | None = None,
        hits: list[tuple[str, float, int]] | None = None,
    ) -> _Pool:
        """Index hits (plus the best lexical matches) that pass the rules, best first by fused score.

        Score = centred cosine - hubness_weight * r(article) (`plugin.hubness`) + lexical_weight * BM25 + link_weight
        (linked from a read page) + title_weight * title cosine (`plugin.titles`) + freshness; the floor applies to
        the plain cosine. A trained model's `learned` part (intent . u_a of the articles with a learned
        candidate vector) is added to their score, and the best of them by their whole score join the pool: the
        text search alone would miss an article whose learned part, not its text, makes it the next page.
        Filters can reject most of a fixed-size pool (a rare locale, a narrow tag), so the pool grows until k
        candidates pass or the index is exhausted. `hits`: the first search's, when the caller made it already
        (`_first_hits`).

        The candidates are scored as arrays in one pass; Candidate objects are made only for what is returned
        (`_Pool`): this per-candidate work was most of a suggestion's own cost (bench/session_length.py)."""
        cfg = self.settings
        centred = centre and cfg.centre and self._embeds_text
        # Searching with v - mean ranks by a.v - a.mean: the centred order up to each article's norm, which the
        # exact re-scoring below restores.
        search = vector - self.index.mean_vector() if centred else vector
        cvec = self._centred(vector[None, :])[0] if centred else vector  # (D,)
        want = cfg.candidate_pool  # unseen candidates taken from each list: the index's hits, BM25's, a model's own
        learned = {a: b for a, b in (learned or {}).items() if a in self.index}
        learned_ids = list(learned)
        if learned_ids:  # their whole score e_a . v + u_a . v: the small learned index beside FAISS's text search
            whole = self.index.vectors(learned_ids) @ vector + np.array(list(learned.values()), np.float32)  # (K,)
        while True:
            fetch = want + len(seen_ids)  # enough that `want` of them are unseen whatever the session has read
            if hits is None:
                hits = self.index.search_rows(search[None, :], fetch)[0]
            # The first `want` articles of each list that the session has not read: read ones go before their records
            # are looked up (the rules below would drop them anyway), and the pool is `want` however much was read
            # (it was fetch minus the read ones among them: a long session's 40 read articles made ~40 more
            # candidates to look up and score on every request, ~8 % of its cost, bench/length_parts.py).
            unseen = [h for h in hits if h[0] not in seen_ids][:want]
            lexical_top = [a for a in lexical.top(fetch) if a not in seen_ids][:want] if lexical is not None else []
            top_learned = (
                list(
                    islice(
                        (learned_ids[i] for i in np.argsort(-whole, kind="stable") if learned_ids[i] not in seen_ids),
                        want,
                    )
                )
                if learned_ids
                else []
            )
            ids = [
                aid
                for aid in dict.fromkeys([h[0] for h in unseen] + lexical_top + sorted(linked) + top_learned)
                if aid not in seen_ids
            ]
            found = [a for a in self.kb.find_many(ids) if a is not None]
            # each article's row, for "is it indexed" and for its vector: the hits carry theirs, the few others
            # (lexical, linked, learned) are looked up once -- a million-entry dict costs a cache miss or two an id
            row_of = {aid: r for aid, _, r in unseen}
            others = [a.id for a in found if a.id not in row_of]
            if others:
                row_of.update((a, r) for a, r in zip(others, self.index.rows(others).tolist()) if r >= 0)
            arts = passing(
                [a for a in found if a.id in row_of],
                exclude_ids=seen_ids,
                exclude_urls=seen_urls,
                locale=locale,
                tags=tags,
            )
            out = _Pool.empty(self.index.dim)
            if arts:
                aids = [a.id for a in arts]
                try:
                    avecs = self.index.vectors_at(np.array([row_of[a] for a in aids], dtype=np.int64))  # (n, D)
                except UnknownArticleError:  # a writer removed one since the search: search again
                    hits = None
                    continue
                rel = avecs @ vector  # (n,) plain cosine
                score = self._centred(avecs) @ cvec if centred else rel.copy()  # (n,)
                if lexical is not None:
                    score = score + cfg.lexical_weight * lexical.get(aids)
                if centred and cfg.hubness_weight > 0:
                    score = score - cfg.hubness_weight * self.hubness.get(aids)
                if titled is not None:
                    score = score + cfg.title_weight * self.titles.scores(titled, aids)
                if linked:
                    score = score + cfg.link_weight * np.array([a in linked for a in aids], dtype=np.float32)
                if learned:
                    score = score + np.array([learned.get(a, 0.0) for a in aids], dtype=np.float32)
                # float64 from here, as the per-candidate Python floats were: the floor and the order compare the
                # same numbers they did
                rel64, score64 = rel.astype(np.float64), score.astype(np.float64)  # (n,)
                if cfg.freshness_weight > 0:
                    score64 += [freshness_bonus(a, cfg.freshness_weight, cfg.freshness_half_life_days) for a in arts]
                keep = np.flatnonzero(rel64 >= floor) if floor is not None else np.arange(len(arts))  # (m,)
                best = keep[np.argsort(-score64[keep], kind="stable")]  # (m,) stable, as sorted() was
                out = _Pool([arts[i] for i in best.tolist()], rel64[best], score64[best], avecs[best])
            if len(out) >= k or len(hits) < fetch or fetch >= len(self.index):
                return out
            want *= 4
            hits = None

    def _pool_of(self, cands: Sequence[Candidate]) -> _Pool:
        """A merged list of candidates (cold start) as a pool, best first as given."""
        return _Pool(
            [c.article for c in cands],
            np.array([c.relevance for c in cands], dtype=np.float64),
            np.array([c.score for c in cands], dtype=np.float64),
            self.index.vectors([c.article.id for c in cands]) if cands else np.zeros((0, self.index.dim), np.float32),
            list(cands),
        )

    # ------------------------------------------------------------ search and the chat path

    def search(
        self, text: str, k: int = 5, *, session_id: str | None = None, session_weight: float = 0.0
    ) -> list[tuple[Article, float]]:
        """Plain knowledge-base search for responders: the k articles closest to `text`, best first, as
        (article, score). With a session and `session_weight` > 0 each score gains session_weight times the
        article's best cosine to the last five KB articles the session read, so "how do I load it back?" asked
        on the pickle page leans to pickle. Nothing is tracked or excluded; the text's embedding goes to the
        visitors' cache, never the saved one, and with a session it is noted as the session's question, which
        erase drops."""
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        qvec = self.page_encoder.encode([text])  # (1, D)
        if session_id is not None and not self.rows.asked(session_id, text):
            # the session's question, as typed (suggest() notes it cut and collapsed): noted, so that its erase
            # finds the vector; erased here while this ran, the vector came after the erase and goes now
            self._forget_words((), [text])
        out = [(a, float(s)) for a, s in ((self.kb.find(aid), s) for aid, s in self.index.search(qvec, k)[0]) if a]
        if not (session_id and session_weight > 0 and out):
            return out
        # the bounded context (newest intent events), not the whole session: only the last five reads count
        events = self.context(session_id).events
        read = [e.article_id for e in events if e.article_id and e.article_id in self.index][-5:]
        if not read:
            return out
        sims = self.index.vectors([a.id for a, _ in out]) @ self.index.vectors(read).T  # (k, read)
        nudged = [(a, s + session_weight * float(sims[i].max())) for i, (a, s) in enumerate(out)]
        return sorted(nudged, key=lambda hit: -hit[1])  # stable: ties keep the index's order

    def inject(
        self,
        session_id: str,
        reply: str,
        k: int | None = None,
        fmt: Literal["markdown", "html", "json"] = "markdown",
        *,
        query: str | None = None,
        exclude: Sequence[str] = (),
        policy: ChatPolicy | None = None,
    ) -> str | dict[str, Any]:
        """The reply with suggestions appended, chosen by the chat policy (`plugin.chat`; impressions are
        recorded with source "inject"). Never raises: on any failure the reply comes back unchanged."""
        try:
            pol = policy or ChatPolicy(k=min(self.settings.k, MAX_K) if k is None else k)
            found = suggest_for_reply(
                self, session_id, reply, policy=pol, source="inject", query=query, k=k, exclude=exclude
            ).suggestions
            return inject_reply(reply, found, fmt)
        except Exception:  # the chat path must never break a reply (an unknown fmt included)
            logger.warning("suggestions skipped for session %s", session_id[:8], exc_info=True)
            return {"reply": reply, "suggestions": []} if fmt == "json" else reply


@dataclass(frozen=True)
class _Pass:
    """What one interest's candidate pass needs, worked out for every interest before their searches are batched."""

    vector: np.ndarray  # (D,) the intent, blended with the question
    cold: np.ndarray | None  # (D,) zero-shot intent of a trained model, for articles it never saw
    catalogue: Any  # the articles the trained model knows (None: not a trained model)
    learned: dict[str, float] | None
    calibration: Any
    lexical: LexicalScores | None
    linked: set[str]
    titled: np.ndarray | None
    protected: frozenset[str] = frozenset()  # known articles no added one is merged above (Intent.cold_protected)


class _Pool:
    """One pass's candidates, best first, as arrays: what MMR reads. A `Candidate` is made only for each one
    returned (`candidate`), or for the whole list where a cold-start merge works on lists (`candidates`)."""

    def __init__(
        self,
        articles: list[Article],
        relevance: np.ndarray,
        score: np.ndarray,
        vectors: np.ndarray,
        made: list[Candidate] | None = None,
    ) -> None:
        self.articles = articles
        self.relevance = relevance  # (n,) float64: the plain cosine, as Candidate.relevance holds it
        self.score = score  # (n,) float64: the fused score, as Candidate.score holds it
        self.vectors = vectors  # (n, D) the index's vectors of the articles
        self._made = made

    @classmethod
    def empty(cls, dim: int) -> _Pool:
        return cls([], np.zeros(0), np.zeros(0), np.zeros((0, dim), np.float32))

    def __len__(self) -> int:
        return len(self.articles)

    def candidate(self, i: int) -> Candidate:
        if self._made is not None:
            return self._made[i]
        return Candidate(self.articles[i], float(self.relevance[i]), float(self.score[i]))

    def candidates(self) -> list[Candidate]:
        return [self.candidate(i) for i in range(len(self))]


def _plain_scoring(model: IntentModel) -> bool:
    """A trained content STAMP that asks to be served with the score it was trained on (`plain_scoring`)."""
    return is_trained(model) and bool(getattr(getattr(model, "config", None), "plain_scoring", False))


def _blend(vector: np.ndarray, qvec: np.ndarray, weight: float) -> np.ndarray:
    """The session intent with a question's vector mixed in, back to unit norm."""
    v = (1 - weight) * vector + weight * qvec
    return v / max(float(np.linalg.norm(v)), 1e-12)


def _quotas(shares: Sequence[float], k: int) -> list[int]:
    """k slots split by shares, largest remainder first (ties to the newer interest), at least one slot for each
    positive share while k allows."""
    raw = [s * k / max(sum(shares), 1e-12) for s in shares]
    quotas = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: (-(raw[i] - quotas[i]), i))[: k - sum(quotas)]:
        quotas[i] += 1
    for i, s in enumerate(shares):  # a positive share gets a slot, taken from the largest quota
        if s > 0 and quotas[i] == 0 and max(quotas) > 1:
            quotas[quotas.index(max(quotas))] -= 1
            quotas[i] = 1
    return quotas


def _share_slots(
    ranked: Sequence[Sequence[tuple[Candidate, np.ndarray]]], shares: Sequence[float], k: int
) -> list[tuple[Candidate, np.ndarray]]:
    """Merge each interest's ranked list into k slots: interest i gets about shares[i] * k of them (at least one
    when its share is positive), taken in turn, newest interest first; an interest that runs out leaves its slots
    to the others; an article already taken is skipped."""
    quotas = _quotas(shares, k)
    taken: list[tuple[Candidate, np.ndarray]] = []
    ids: set[str] = set()
    pos = [0] * len(ranked)

    def take(g: int) -> bool:
        while pos[g] < len(ranked[g]):
            c, v = ranked[g][pos[g]]
            pos[g] += 1
            if c.article.id not in ids:
                ids.add(c.article.id)
                taken.append((c, v))
                return True
        return False

    used = [0] * len(ranked)
    progress = True
    while len(taken) < k and progress:
        progress = False
        for g in range(len(ranked)):
            if len(taken) < k and used[g] < quotas[g] and take(g):
                used[g] += 1
                progress = True
    for g in range(len(ranked)):  # slots an interest could not fill go to the others, in order
        while len(taken) < k and take(g):
            pass
    return taken


class _Labels(Sequence[str]):
    """The session pages' names for reasons, each made when a reason first asks for it: reasons name at most two
    pages per suggestion, and naming all of a long session's pages on every request was part of what it cost
    over a short one (bench/session_length.py)."""

    def __init__(self, kb: KnowledgeBase, signal: Sequence[Event], keys: Sequence[str | None]) -> None:
        self._kb, self._signal, self._keys = kb, signal, keys
        self._made: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self._signal)

    def __getitem__(self, j: int) -> str:  # type: ignore[override]  # an int index is all drivers() uses
        if j not in self._made:
            key, e = self._keys[j], self._signal[j]
            # a KB page is named by its article's title even when the event carried only a url or id
            self._made[j] = short_title(self._kb.get(key).title) if key and key in self._kb else e.label()
        return self._made[j]


def _split_seen(seen: Iterable[str]) -> tuple[list[str], list[str]]:
    """Seen keys ('a:' + article id, 'u:' + url: `Event.seen_keys`) as (ids, urls), in one pass: a long session has
    ~100 and two filtered comprehensions cost twice this."""
    ids: list[str] = []
    urls: list[str] = []
    for key in seen:
        kind = key[:2]
        if kind == "a:":
            ids.append(key[2:])
        elif kind == "u:":
            urls.append(key[2:])
    return ids, urls


class _Lazy(Sequence[_T]):
    """Texts (or their terms) made when first asked for, by position."""

    def __init__(self, make: Callable[[int], _T], n: int) -> None:
        self._make, self._n = make, n
        self._made: dict[int, _T] = {}

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, j: int) -> _T:  # type: ignore[override]  # an int index is all BM25 uses
        if not 0 <= j < self._n:
            raise IndexError(j)
        if j not in self._made:
            self._made[j] = self._make(j)
        return self._made[j]


def _with_text(event: Event, text: str | None) -> Event:
    """`dataclasses.replace(event, text=text)` at a seventh of its cost: replace re-runs the constructor, and a long
    session restores the text of up to `max_context_events` pages on every request (half its extra cost over a
    short one, bench/session_length.py). Event is a plain frozen dataclass (no slots, no __post_init__)."""
    clone = object.__new__(Event)
    clone.__dict__.update(event.__dict__)
    clone.__dict__["text"] = text
    return clone
