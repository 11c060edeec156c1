"""What suggestions did: click-through rates per article and per position, and how sessions that clicked
a suggestion differ from those that did not. Pure functions over logged events (no I/O)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from .events import Event

__all__ = ["CTRRow", "SessionEffect", "FeedbackReport", "feedback_report", "format_report"]

_READS = ("page_view", "article_open")


@dataclass(frozen=True)
class CTRRow:
    key: str  # article id, or the position as a string
    impressions: int
    clicks: int

    @property
    def ctr(self) -> float:
        return self.clicks / self.impressions if self.impressions else 0.0


@dataclass(frozen=True)
class SessionEffect:
    sessions: int  # sessions with any event
    shown: int  # sessions that were shown at least one suggestion
    clicked: int  # sessions that clicked at least one suggestion
    clicks_followed: int  # clicks after which the clicked article was read in the same session
    clicks: int
    reads_per_clicking_session: float  # mean page views/article opens in sessions that clicked
    reads_per_other_shown_session: float  # the same for shown-but-never-clicked sessions


@dataclass(frozen=True)
class FeedbackReport:
    by_article: list[CTRRow]  # most impressions first
    by_position: list[CTRRow]  # position 0 first
    effect: SessionEffect


def feedback_report(events: Iterable[Event]) -> FeedbackReport:
    imp_a: dict[str, int] = defaultdict(int)
    clk_a: dict[str, int] = defaultdict(int)
    imp_p: dict[int, int] = defaultdict(int)
    clk_p: dict[int, int] = defaultdict(int)
    sessions: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        sessions[e.session_id].append(e)
        key = e.article_id or e.url or "?"
        if e.kind == "suggestion_impression":
            imp_a[key] += 1
            if e.position is not None:
                imp_p[e.position] += 1
        elif e.kind == "suggestion_click":
            clk_a[key] += 1
            if e.position is not None:
                clk_p[e.position] += 1

    shown = clicked = followed = n_clicks = 0
    reads_click: list[int] = []
    reads_other: list[int] = []
    for evs in sessions.values():
        evs.sort(key=lambda e: e.ts)
        reads = sum(e.kind in _READS for e in evs)
        was_shown = any(e.kind == "suggestion_impression" for e in evs)
        clicks = [i for i, e in enumerate(evs) if e.kind == "suggestion_click"]
        shown += was_shown
        if clicks:
            clicked += 1
            reads_click.append(reads)
        elif was_shown:
            reads_other.append(reads)
        for i in clicks:
            n_clicks += 1
            target = evs[i].article_id or evs[i].url
            followed += any(e.kind in _READS and target in (e.article_id, e.url) for e in evs[i + 1 :])

    def mean(xs: list[int]) -> float:
        return sum(xs) / len(xs) if xs else 0.0

    by_article = sorted(
        (CTRRow(a, imp_a.get(a, 0), clk_a.get(a, 0)) for a in set(imp_a) | set(clk_a)),
        key=lambda r: (-r.impressions, -r.clicks, r.key),
    )
    by_position = [CTRRow(str(p), imp_p.get(p, 0), clk_p.get(p, 0)) for p in sorted(set(imp_p) | set(clk_p))]
    effect = SessionEffect(len(sessions), shown, clicked, followed, n_clicks, mean(reads_click), mean(reads_other))
    return FeedbackReport(by_article, by_position, effect)


def _table(title: str, rows: list[CTRRow], limit: int) -> list[str]:
    out = [f"| {title} | impressions | clicks | CTR |", "|---|---:|---:|---:|"]
    out += [f"| {r.key} | {r.impressions} | {r.clicks} | {r.ctr:.1%} |" for r in rows[:limit]]
    if len(rows) > limit:
        out.append(f"| … {len(rows) - limit} more | | | |")
    return out


def format_report(report: FeedbackReport, *, limit: int = 20) -> str:
    """The report as Markdown tables."""
    e = report.effect
    lines = [
        "## CTR by position",
        *_table("position", report.by_position, limit),
        "",
        "## CTR by article",
        *_table("article", report.by_article, limit),
        "",
        "## Sessions",
        f"- sessions: {e.sessions}; shown suggestions: {e.shown}; clicked one: {e.clicked}"
        + (f" ({e.clicked / e.shown:.1%} of those shown)" if e.shown else ""),
        f"- clicks followed by reading the clicked article: {e.clicks_followed} of {e.clicks}",
        f"- pages read per session: {e.reads_per_clicking_session:.2f} in sessions that clicked, "
        f"{e.reads_per_other_shown_session:.2f} in sessions shown suggestions that did not",
    ]
    return "\n".join(lines)
