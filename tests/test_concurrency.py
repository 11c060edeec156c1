"""8 threads x 10k events into one store: nothing lost, nothing stored twice.

Every thread appends 10k distinct events spread over 40 shared sessions, and re-delivers every fifth event of
its neighbour (a retry racing the original): the store must be atomic per append, so exactly one delivery
wins and all 80k events are kept once, each thread's in its own order.
"""

from __future__ import annotations

import threading

import pytest
from redis_server import redis_prefix, redis_url  # noqa: F401  (fixtures)

from plugin import InMemorySessionStore, SessionSettings, make_event

N_THREADS, PER_THREAD, N_SESSIONS = 8, 10_000, 40


def _hammer(store, n_threads: int = N_THREADS, per_thread: int = PER_THREAD) -> None:
    events = [
        [
            make_event(
                f"s{i % N_SESSIONS}",
                "page_view",
                url=f"https://site.test/{t}/{i}",
                ts=float(i),
                event_id=f"t{t}-e{i}",
                meta={"t": t, "i": i},
            )
            for i in range(per_thread)
        ]
        for t in range(n_threads)
    ]
    accepted = [0] * n_threads
    errors: list[BaseException] = []
    barrier = threading.Barrier(n_threads)

    def work(t: int) -> None:
        neighbour = events[(t + 1) % n_threads]
        try:
            barrier.wait()
            for i, e in enumerate(events[t]):
                accepted[t] += store.append(e)
                if i % 5 == 0:  # a retried delivery of the neighbour's event, racing the original
                    accepted[t] += store.append(neighbour[i])
        except BaseException as exc:  # surfaced below; a thread's exception would otherwise vanish
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors[:3]
    total = n_threads * per_thread
    assert sum(accepted) == total  # every event won exactly one of its deliveries
    sessions = [store.read(f"s{s}") for s in range(N_SESSIONS)]
    ids = [e.event_id for sess in sessions for e in sess]
    assert len(ids) == len(set(ids)) == total
    for sess in sessions:
        # appends interleave across threads, but each thread's own events keep their order
        for t in range(n_threads):
            seq = [e.meta["i"] for e in sess if e.meta["t"] == t]
            assert seq == sorted(seq)


SETTINGS = SessionSettings(max_events=N_THREADS * PER_THREAD, dedupe_window_seconds=0)


def test_in_memory_store_under_8_threads():
    _hammer(InMemorySessionStore(SETTINGS))


@pytest.mark.redis
@pytest.mark.slow
def test_redis_store_under_8_threads(redis_url, redis_prefix):  # noqa: F811
    from plugin.redis_store import RedisSessionStore

    _hammer(RedisSessionStore.from_url(redis_url, SETTINGS, prefix=redis_prefix))
