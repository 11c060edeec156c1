"""Replaying visits through the HTTP API, so the server's own event log records them as it would a visitor's.

It sends the events the widget sends, one per `POST …/events` (the widget batches the same events through
`…/events/batch`; both endpoints store them alike).

Per page of a visit: POST a page_view (url and title, as the widget sends them); GET suggestions and POST a
suggestion_impression for each one shown; when the next page of the visit is among them, POST a
suggestion_click for it before its page_view (the visitor reached it through the suggestion). The visit
decides where the visitor goes; suggestions only change how the step is logged. Used by the learning-loop
benchmark and its test (`bench/learning_loop.py`, `tests/test_learning_loop.py`) with an `httpx.AsyncClient`:
on `httpx.ASGITransport` (`in_process_client`) the app runs in the caller's event loop, ~5x faster than
Starlette's TestClient, whose every call hops threads; on a real URL it drives a running server.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tqdm.auto import tqdm

from plugin import Article

__all__ = ["HTTPClient", "ReplayStats", "in_process_client", "replay_visits"]


class HTTPClient(Protocol):
    async def get(self, url: str, **kwargs: Any) -> Any: ...

    async def post(self, url: str, **kwargs: Any) -> Any: ...


def in_process_client(app: Any) -> Any:
    """An httpx.AsyncClient that calls the ASGI app directly (no sockets, no threads of its own)."""
    import httpx

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@dataclass(frozen=True)
class ReplayStats:
    visits: int
    session_ids: tuple[str, ...] = field(repr=False)  # one per visit, in replay order
    page_views: int
    impressions: int
    clicks: int  # steps whose next page was among the suggestions shown

    @property
    def click_through(self) -> float:
        """Share of steps (page -> next page) taken through a shown suggestion."""
        steps = self.page_views - self.visits
        return self.clicks / steps if steps else 0.0


def _ok(response: Any) -> Any:
    if response.status_code >= 400:
        raise RuntimeError(
            f"{response.request.method} {response.request.url} -> {response.status_code}: {response.text}"
        )
    return response.json() if response.status_code != 204 else None


async def replay_visits(
    client: HTTPClient,
    visits: Iterable[Sequence[Article]],
    *,
    k: int = 5,
    progress: bool = False,
    total: int | None = None,
) -> ReplayStats:
    """Log each visit (articles in reading order) through the API; returns what was logged."""
    sids: list[str] = []
    views = shown_n = clicks = 0
    for visit in tqdm(visits, desc="logging visits via the API", unit="visit", total=total, disable=not progress):
        sid = _ok(await client.post("/v1/sessions"))["session_id"]
        events = f"/v1/sessions/{sid}/events"
        clicked: dict[str, Any] | None = None
        for i, art in enumerate(visit):
            if clicked is not None:
                _ok(await client.post(events, json=clicked))
            page = {"url": art.url} if art.url else {"article_id": art.id}
            _ok(await client.post(events, json={"kind": "page_view", "title": art.title, **page}))
            views += 1
            clicked = None
            if i + 1 == len(visit):
                break
            shown = _ok(await client.get(f"/v1/sessions/{sid}/suggestions", params={"k": k}))["suggestions"]
            for s in shown:
                _ok(
                    await client.post(
                        events, json={"kind": "suggestion_impression", "article_id": s["id"], "position": s["rank"]}
                    )
                )
            shown_n += len(shown)
            hit = next((s for s in shown if s["id"] == visit[i + 1].id), None)
            if hit is not None:
                clicked = {"kind": "suggestion_click", "article_id": hit["id"], "position": hit["rank"]}
                clicks += 1
        sids.append(sid)
    return ReplayStats(len(sids), tuple(sids), views, shown_n, clicks)
