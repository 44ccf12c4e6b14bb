"""Feeds as subscriptions: add, list, remove and export them, poll each once, and
watch them (poll in a loop until told to stop).

A poll fetches each feed with a conditional request (its last ETag and
Last-Modified): a 304 costs no parse and no model call. A feed that answered is
parsed by the feed reader of :mod:`kbase.sources` and its items are ingested by
:func:`kbase.ops.ingest.ingest`, each document in its own transaction: new items
are stored, edited ones become new versions, unchanged ones cost nothing, and
forgotten ones are left out. A feed's validators are stored only once all its
items are, so a poll that stops half-way fetches that feed in full next time.
One feed's failure (network, HTTP status, bad XML, a bomb, a model error) is
recorded on it and the others go on. A feed is never polled by two processes at
once (a per-feed lock), and a server's Retry-After is honoured.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, object_session

from kbase.errors import KbaseError, NotFoundError
from kbase.locking import try_named_lock
from kbase.ops.ingest import ingest
from kbase.reports import (
    FeedPoll,
    FeedRow,
    FeedsChange,
    IngestReport,
    PollProgress,
    PollReport,
    iso_time,
)
from kbase.runtime import Runtime
from kbase.sources.base import DEFAULT_MAX_BYTES, SourceDocument
from kbase.sources.conditional import FeedAnswer, RetryLater, fetch_if_changed
from kbase.sources.feeds import read_feed
from kbase.sources.fetch import check_url
from kbase.sources.fields import check_parsed_size, storable
from kbase.sources.files import check_bytes
from kbase.sources.messages import one_line, plural, shown_url, without_credentials
from kbase.sources.opml import Subscription, write_opml
from kbase.store import feeds as store
from kbase.store.models import Feed

log = logging.getLogger("kbase")

#: Seconds between polls of one feed in ``kb watch`` by default.
DEFAULT_EVERY = 15 * 60.0
#: The longest a failing feed waits (failure backoff doubles up to it), and the
#: longest Retry-After honoured.
MAX_WAIT = 24 * 3600.0
#: The longest ``watch`` sleeps before looking at the subscriptions again.
_WAKE = 60.0

PollProgressFn = Callable[[PollProgress], None]


def now() -> datetime:
    """Naive UTC, like every stored time."""
    return datetime.now(UTC).replace(tzinfo=None)


# -- subscriptions ----------------------------------------------------------------------
def add(rt: Runtime, subscriptions: Sequence[Subscription]) -> FeedsChange:
    """Subscribe to feeds (an http(s) URL each; checked before any is added)."""
    for sub in subscriptions:
        check_url(sub.url)
    change = FeedsChange()
    with rt.session() as session, session.begin():
        for sub in dict((s.url, s) for s in subscriptions).values():
            shown = shown_url(sub.url)
            feed = store.find_feed(session, sub.url)
            if feed is not None:
                if sub.title and not feed.title:
                    feed.title = sub.title
                change.already.append(shown)
                continue
            session.add(Feed(url=sub.url, title=sub.title, added_at=now(), failures=0))
            change.added.append(shown)
    return change


def remove(rt: Runtime, urls: Sequence[str]) -> FeedsChange:
    """Unsubscribe (stored documents stay); an unknown URL is an error."""
    change = FeedsChange()
    with rt.session() as session, session.begin():
        feeds = store.all_feeds(session)
        for url in dict.fromkeys(urls):
            found = [f for f in feeds if url in (f.url, without_credentials(f.url))]
            if not found:
                raise NotFoundError(
                    f"not subscribed to {shown_url(url)}: list the feeds with `kb feeds list`"
                )
            for feed in found:
                session.delete(feed)
                feeds.remove(feed)
                change.removed.append(shown_url(feed.url))
    return change


def listing(rt: Runtime) -> list[FeedRow]:
    """Every subscription with its last fetch, its last new item and its errors."""

    def read(session: Session) -> list[FeedRow]:
        feeds = store.all_feeds(session)
        sources = [without_credentials(f.url) for f in feeds]
        latest = store.latest_documents(session, sources)
        rows = []
        for feed, source in zip(feeds, sources, strict=True):
            count, last = latest.get(source, (0, None))
            rows.append(
                FeedRow(
                    url=shown_url(feed.url),
                    title=feed.title,
                    added_at=iso_time(feed.added_at),
                    last_fetch_at=iso_time(feed.last_fetch_at),
                    last_status=feed.last_status,
                    last_ok_at=iso_time(feed.last_ok_at),
                    error=feed.error,
                    failures=feed.failures,
                    retry_at=iso_time(feed.retry_at),
                    documents=count,
                    last_new_at=iso_time(last.ingested_at) if last else None,
                    last_new_id=last.doc_id if last else None,
                    last_new_title=last.title if last else None,
                )
            )
        return rows

    return rt.read(read)


def export(rt: Runtime) -> str:
    """The subscriptions as an OPML document (addresses without credentials)."""
    feeds = rt.read(store.all_feeds)
    return write_opml([Subscription(without_credentials(f.url), f.title) for f in feeds])


# -- polling ----------------------------------------------------------------------------
@dataclass
class _Fetched:
    feed: Feed
    result: FeedPoll
    answer: FeedAnswer
    documents: list[SourceDocument]


def poll(
    rt: Runtime,
    *,
    urls: Sequence[str] | None = None,
    timeout: float = 20.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    should_stop: Callable[[], bool] | None = None,
    progress: PollProgressFn | None = None,
    allow_private: bool | None = None,
) -> PollReport:
    """Fetch every subscribed feed (or those of ``urls``) once and ingest what is new
    or updated; see the module's docstring. ``should_stop`` is asked between feeds
    and between documents. A feed on a loopback or private address fails unless
    ``allow_private`` (None: ``$KBASE_ALLOW_PRIVATE_URLS``)."""
    started = time.perf_counter()
    stop = should_stop or (lambda: False)
    report = PollReport()
    feeds = rt.read(store.all_feeds)
    if urls is not None:
        wanted = set(urls)
        feeds = [f for f in feeds if f.url in wanted]
    with ExitStack() as held:
        fetched: list[_Fetched] = []
        for position, feed in enumerate(feeds):
            if stop():
                report.interrupted = True
                break
            if progress is not None:
                progress(PollProgress("fetch", position, len(feeds), 0, shown_url(feed.url)))
            result = FeedPoll(url=shown_url(feed.url), status="failed")
            report.feeds.append(result)
            if feed.retry_at is not None and feed.retry_at > now():
                result.status, result.retry_at = "waiting", iso_time(feed.retry_at)
                continue
            if not held.enter_context(try_named_lock(rt.folder, rt.engine, f"feed:{feed.url}")):
                result.status = "busy"
                continue
            one = _fetch(
                rt, feed, result, timeout=timeout, max_bytes=max_bytes, allow_private=allow_private
            )
            if one is not None:
                fetched.append(one)
        if progress is not None and feeds:
            progress(PollProgress("fetch", len(feeds), len(feeds), 0, ""))
        _ingest_all(rt, fetched, report, stop, progress)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _fetch(
    rt: Runtime,
    feed: Feed,
    result: FeedPoll,
    *,
    timeout: float,
    max_bytes: int,
    allow_private: bool | None,
) -> _Fetched | None:
    """Fetch and parse one feed; what is left to ingest (None: nothing, the outcome is
    recorded on the feed already)."""
    started = time.perf_counter()
    try:
        answer = fetch_if_changed(
            feed.url,
            etag=feed.etag,
            last_modified=feed.last_modified,
            max_bytes=max_bytes,
            timeout=timeout,
            allow_private=allow_private,
        )
    except RetryLater as exc:
        wait = None if exc.retry_after is None else min(exc.retry_after, MAX_WAIT)
        _failed(rt, feed, result, exc, retry_after=wait)
        return None
    except KbaseError as exc:
        _failed(rt, feed, result, exc)
        return None
    finally:
        result.seconds = round(time.perf_counter() - started, 3)
    if answer.not_modified:
        result.status = "not modified"
        _succeeded(rt, feed, result, answer)
        return None
    try:
        documents = _documents(feed, answer, max_bytes)
    except Exception as exc:  # whatever a hostile feed makes the parser raise
        _failed(rt, feed, result, _plain(exc))
        return None
    return _Fetched(feed, result, answer, documents)


def _documents(feed: Feed, answer: FeedAnswer, max_bytes: int) -> list[SourceDocument]:
    """The feed's items, read as :func:`kbase.sources.read_source` reads a feed."""
    assert answer.download is not None
    name = shown_url(feed.url)
    source = without_credentials(answer.moved_to or feed.url)
    data = check_bytes(name, answer.download.data, max_bytes)
    documents = read_feed(name, source, data, charset=answer.download.charset)
    check_parsed_size(name, documents, max_bytes)
    return [storable(name, document) for document in documents]


def _ingest_all(
    rt: Runtime,
    fetched: list[_Fetched],
    report: PollReport,
    stop: Callable[[], bool],
    progress: PollProgressFn | None,
) -> None:
    """Ingest each fetched feed's items (a feed's items as one batch, in publication
    order), recording each feed's outcome."""
    seen: set[str] = set()
    total = sum(len(f.documents) for f in fetched)
    done = stored = 0
    for one in fetched:
        result = one.result
        documents = [d for d in one.documents if d.doc_id not in seen]
        result.duplicates = len(one.documents) - len(documents)
        if result.duplicates:
            result.warnings.append(
                f"{plural(result.duplicates, 'item')} left out: another feed of this poll "
                "listed the same ids"
            )
        seen.update(d.doc_id for d in documents)
        if stop():
            result.status = "interrupted"
            report.interrupted = True
            _interrupted(rt, one.feed)
            continue
        base_done, base_stored = done, stored

        def tick(
            state: dict[str, object],
            shown: str = shown_url(one.feed.url),
            base: tuple[int, int] = (base_done, base_stored),
        ) -> None:
            if progress is not None:
                count, new = state.get("documents"), state.get("stored")
                at = base[0] + (count if isinstance(count, int) else 0)
                stored = base[1] + (new if isinstance(new, int) else 0)
                progress(PollProgress("ingest", at, total, stored, shown))

        started = time.perf_counter()
        try:
            ingested = ingest(
                rt,
                documents,
                progress=tick if progress is not None else None,
                skip_forgotten=True,
                should_stop=stop,
            )
        except Exception as exc:  # one feed's items: the other feeds go on
            result.seconds += round(time.perf_counter() - started, 3)
            _failed(rt, one.feed, result, _plain(exc))
            done += len(one.documents)
            continue
        result.seconds = round(result.seconds + time.perf_counter() - started, 3)
        _count(result, ingested)
        done += len(one.documents)
        stored += len(ingested.stored)
        if progress is not None:
            progress(PollProgress("ingest", done, total, stored, shown_url(one.feed.url)))
        if ingested.stopped:
            result.status = "interrupted"
            report.interrupted = True
            _interrupted(rt, one.feed)
            continue
        if ingested.failed:  # not stored: the feed is fetched in full next time, to retry
            left_out = ", ".join(repr(d.doc_id) for d in ingested.failed[:5])
            _failed(rt, one.feed, result, KbaseError(
                f"{plural(len(ingested.failed), 'item')} not stored, the model's answers did "
                f"not parse: {left_out}; the next poll retries them"))  # fmt: skip
            continue
        result.status = "stored"
        _succeeded(rt, one.feed, result, one.answer)


def _plain(exc: Exception) -> Exception:
    """``exc`` as a feed's error: kbase's own as they are, others named by type."""
    if isinstance(exc, KbaseError):
        return exc
    log.debug("unexpected error while polling a feed", exc_info=exc)
    return KbaseError(f"unexpected {type(exc).__name__}: {one_line(exc, 200)}")


def _count(result: FeedPoll, ingested: IngestReport) -> None:
    updated = set(ingested.updated)
    result.updated = sum(1 for d in ingested.stored if d.doc_id in updated)
    result.new = len(ingested.stored) - result.updated
    result.unchanged = len(ingested.unchanged)
    result.forgotten = len(ingested.forgotten)
    result.llm_calls, result.model_calls = ingested.llm_calls, ingested.model_calls
    result.documents_replayed = ingested.documents_replayed
    for doc in ingested.stored:
        result.warnings += [f"{doc.doc_id}: {w}" for w in doc.warnings]


# -- recording a feed's outcome ---------------------------------------------------------
@contextmanager
def _feed_row(rt: Runtime, feed: Feed) -> Iterator[Feed | None]:
    """The feed's row in a short transaction of its own (None: unsubscribed meanwhile)."""
    with rt.session() as session, session.begin():
        yield session.get(Feed, feed.id)


def _succeeded(rt: Runtime, feed: Feed, result: FeedPoll, answer: FeedAnswer) -> None:
    with _feed_row(rt, feed) as row:
        if row is None:
            return
        row.last_fetch_at = row.last_ok_at = now()
        row.last_status = "not modified" if answer.not_modified else "new"
        row.etag, row.last_modified = answer.etag, answer.last_modified
        row.error, row.failures, row.retry_at = None, 0, None
        if answer.moved_to and answer.moved_to != row.url:
            _move(rt, row, answer.moved_to, result)


def _move(rt: Runtime, row: Feed, target: str, result: FeedPoll) -> None:
    """Follow a permanent redirect: the subscription takes the new address (or goes,
    when that address is subscribed already)."""
    session = object_session(row)
    assert session is not None
    result.moved_to = shown_url(target)
    if store.find_feed(session, target) is not None:
        session.delete(row)
        result.warnings.append(f"moved to {shown_url(target)}, which is subscribed already")
        return
    row.url = target
    result.warnings.append(f"moved permanently to {shown_url(target)}: the subscription follows")


def _failed(
    rt: Runtime,
    feed: Feed,
    result: FeedPoll,
    exc: Exception,
    *,
    retry_after: float | None = None,
) -> None:
    result.status, result.error = "failed", one_line(exc, 300)
    with _feed_row(rt, feed) as row:
        if row is None:
            return
        row.last_fetch_at = now()
        row.last_status, row.error = "failed", result.error
        row.failures = (row.failures or 0) + 1
        row.retry_at = None if retry_after is None else now() + timedelta(seconds=retry_after)
        result.retry_at = iso_time(row.retry_at)


def _interrupted(rt: Runtime, feed: Feed) -> None:
    """A feed stopped before its items were all stored: its validators stay as they
    were, so the next poll fetches it in full."""
    with _feed_row(rt, feed) as row:
        if row is not None:
            row.last_fetch_at, row.last_status = now(), "interrupted"


# -- watching ---------------------------------------------------------------------------
def due_feeds(feeds: Sequence[Feed], every: float, at: datetime) -> list[Feed]:
    """The feeds due at ``at``: never fetched, or ``every`` seconds after their last
    fetch, longer after failures (doubling up to :data:`MAX_WAIT`), never before the
    server's Retry-After."""
    return [f for f in feeds if (store.due_at(f, every, MAX_WAIT) or at) <= at]


def watch(
    rt: Runtime,
    *,
    every: float = DEFAULT_EVERY,
    stop: threading.Event,
    on_poll: Callable[[PollReport], None],
    timeout: float = 20.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    progress: PollProgressFn | None = None,
    allow_private: bool | None = None,
) -> int:
    """Poll the due feeds, sleep until the next one is due, and again, until ``stop``
    is set (it is asked between feeds and documents too, so a stop never leaves a
    document half-stored); returns how many polls ran."""
    polls = 0
    #: Feeds another process was polling: looked at again after a while.
    later: dict[str, datetime] = {}
    while not stop.is_set():
        feeds = rt.read(store.all_feeds)
        moment = now()
        due = [f for f in due_feeds(feeds, every, moment) if later.get(f.url, moment) <= moment]
        if due:
            report = poll(
                rt,
                urls=[f.url for f in due],
                timeout=timeout,
                max_bytes=max_bytes,
                should_stop=stop.is_set,
                progress=progress,
                allow_private=allow_private,
            )
            polls += 1
            busy = {f.url for f, r in zip(due, report.feeds, strict=False) if r.status == "busy"}
            later = {url: now() + timedelta(seconds=_WAKE) for url in busy}
            on_poll(report)
            feeds = rt.read(store.all_feeds)
        moment = now()
        upcoming = [
            max(store.due_at(f, every, MAX_WAIT) or moment, later.get(f.url, moment)) for f in feeds
        ]
        wait = min([(d - moment).total_seconds() for d in upcoming], default=_WAKE)
        stop.wait(min(max(wait, 0.05), _WAKE))
    return polls
