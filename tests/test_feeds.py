"""Feeds as subscriptions (issue 16): ``kb feeds``, ``kb poll`` and ``kb watch``
against a real HTTP server on 127.0.0.1 whose feeds change between polls.

The server (:class:`Site`) serves each feed with an ETag and a Last-Modified and
answers 304 to a request that sends the current one; it can also answer 404, bad
XML, slowly, 429 with Retry-After, or with a permanent or temporary redirect.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner, Result

from cli import cli
from kbase.config import Settings
from kbase.errors import InputError
from kbase.kb import KnowledgeBase
from kbase.llm.fake import world_llm
from kbase.locking import try_named_lock
from kbase.ops.feeds import due_feeds
from kbase.reports import PollReport
from kbase.sources.conditional import retry_after_seconds
from kbase.sources.opml import Subscription, read_opml, write_opml
from kbase.store.feeds import id_hash
from kbase.store.models import Feed, ForgottenId, Meta
from tests.conftest import ON_POSTGRES, OpenKB
from tests.helpers import PROXY_VARIABLES, local_server, no_proxies

ROOT = Path(__file__).resolve().parents[1]


def item(doc_id: str, text: str, day: int = 1, month: int = 1) -> dict[str, Any]:
    return {"id": doc_id, "text": text, "day": day, "month": month}


def rss(items: list[dict[str, Any]]) -> bytes:
    """An RSS 2.0 feed of ``items``, newest first as feeds list them."""
    from datetime import UTC, datetime

    body = "".join(
        f"<item><guid>{i['id']}</guid><title>About {i['id']}</title>"
        f"<link>https://news.example.org/{i['id']}</link>"
        f"<pubDate>{format_datetime(datetime(2024, i['month'], i['day'], tzinfo=UTC))}</pubDate>"
        f"<description>{i['text']}</description></item>"
        for i in reversed(items)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>News</title>'
        f"<link>https://news.example.org/</link>{body}</channel></rss>"
    ).encode()


class Site(BaseHTTPRequestHandler):
    """Feeds by path: ``bodies`` (each served with an ETag and a Last-Modified that
    change with it) and special paths (``modes``)."""

    bodies: ClassVar[dict[str, bytes]] = {}
    versions: ClassVar[dict[str, int]] = {}
    #: Path -> "404", "slow", "busy", "moved:/target", "temporary:/target", "no-validators".
    modes: ClassVar[dict[str, str]] = {}
    #: Every request: (path, If-None-Match, If-Modified-Since).
    seen: ClassVar[list[tuple[str, str | None, str | None]]] = []

    @classmethod
    def publish(cls, path: str, body: bytes) -> None:
        if cls.bodies.get(path) != body:
            cls.bodies[path] = body
            cls.versions[path] = cls.versions.get(path, 0) + 1

    def do_GET(self) -> None:
        path = self.path
        Site.seen.append(
            (path, self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since"))
        )
        mode = Site.modes.get(path, "")
        if mode == "404":
            self.send_error(404, "Not Found")
            return
        if mode == "slow":
            time.sleep(3)
        if mode == "busy":
            self.send_response(429)
            self.send_header("Retry-After", "3600")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if mode.startswith(("moved:", "temporary:")):
            self.send_response(301 if mode.startswith("moved:") else 302)
            self.send_header("Location", mode.split(":", 1)[1])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path not in Site.bodies:
            self.send_error(404, "Not Found")
            return
        version = Site.versions[path]
        etag = f'"v{version}"'
        modified = f"Mon, {version:02d} Jan 2024 00:00:00 GMT"
        if mode != "no-validators" and self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        body = Site.bodies[path]
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(body)))
        if mode != "no-validators":
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", modified)
        self.end_headers()
        with contextlib.suppress(OSError):  # the client gave up (a timeout test)
            self.wfile.write(body)

    def handle(self) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            super().handle()  # the client may stop reading (an error status, a timeout)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def site(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    no_proxies(monkeypatch)
    Site.bodies, Site.versions, Site.modes, Site.seen = {}, {}, {}, []
    with local_server(Site) as url:
        yield url


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts feedparser's parses (each feed body read)."""
    import feedparser

    count = [0]
    original = feedparser.parse

    def counting(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(feedparser, "parse", counting)
    return count


BOB = item("acme-bob", "The CEO of Acme is Bob.", day=8)
ALICE = item("acme-alice", "The CEO of Acme is Alice.", day=2, month=5)
GLOBEX = item("globex", "The CEO of Globex is Dana.", day=3, month=6)


def by_url(report: PollReport, url: str) -> Any:
    (found,) = [f for f in report.feeds if f.url == url]
    return found


# -- polling --------------------------------------------------------------------------------
def test_new_items_are_ingested_once_and_an_unchanged_feed_costs_no_parse_or_model_call(
    open_kb: OpenKB, site: str, parses: list[int]
) -> None:
    llm = world_llm()
    kb = open_kb(llm=llm)
    url = f"{site}/news.xml"
    Site.publish("/news.xml", rss([BOB]))
    kb.subscribe([url])

    first = by_url(kb.poll(), url)
    assert (first.status, first.new, first.unchanged) == ("stored", 1, 0)
    assert parses[0] == 1 and llm.calls > 0

    calls = llm.calls
    again = by_url(kb.poll(), url)
    assert again.status == "not modified"
    assert parses[0] == 1 and llm.calls == calls  # a 304: no parse, no model call
    assert Site.seen[-1] == ("/news.xml", '"v1"', "Mon, 01 Jan 2024 00:00:00 GMT")

    Site.publish("/news.xml", rss([BOB, ALICE]))
    third = by_url(kb.poll(), url)
    assert (third.new, third.unchanged, third.updated) == (1, 1, 0)
    assert [d.doc_id for d in kb.documents()] == ["acme-bob", "acme-alice"]
    assert "Alice" in kb.ask("Who is the CEO of Acme?").answer

    row = kb.feeds()[0]
    assert (row.documents, row.last_status, row.error) == (2, "new", None)
    assert row.last_new_id == "acme-alice"


def test_a_feed_with_no_validators_costs_no_model_call_for_items_already_stored(
    open_kb: OpenKB, site: str
) -> None:
    llm = world_llm()
    kb = open_kb(llm=llm)
    Site.publish("/plain.xml", rss([BOB, ALICE]))
    Site.modes["/plain.xml"] = "no-validators"
    kb.subscribe([f"{site}/plain.xml"])
    kb.poll()
    calls = llm.calls
    second = kb.poll().feeds[0]
    assert (second.status, second.new, second.unchanged) == ("stored", 0, 2)
    assert llm.calls == calls
    assert Site.seen[-1] == ("/plain.xml", None, None)


def test_an_edited_item_becomes_a_new_version(open_kb: OpenKB, site: str) -> None:
    kb = open_kb()
    Site.publish("/news.xml", rss([BOB, ALICE]))
    kb.subscribe([f"{site}/news.xml"])
    kb.poll()
    assert "Alice" in kb.ask("Who is the CEO of Acme?").answer

    Site.publish("/news.xml", rss([BOB, item("acme-alice", "The CEO of Acme is Carol.", 2, 5)]))
    result = kb.poll().feeds[0]
    assert (result.status, result.new, result.updated, result.unchanged) == ("stored", 0, 1, 1)
    assert kb.document("acme-alice").version == 2
    assert "Carol" in kb.ask("Who is the CEO of Acme?").answer
    assert kb.verify(deep=True).ok


def test_a_forgotten_item_is_not_brought_back_until_allowed_again(
    open_kb: OpenKB, site: str
) -> None:
    kb = open_kb()
    Site.publish("/news.xml", rss([BOB, ALICE]))
    kb.subscribe([f"{site}/news.xml"])
    kb.poll()
    kb.forget(["acme-alice"])
    assert "Bob" in kb.ask("Who is the CEO of Acme?").answer

    # The feed changes (so it is read in full) and still lists the forgotten item.
    Site.publish("/news.xml", rss([BOB, ALICE, GLOBEX]))
    result = kb.poll().feeds[0]
    assert (result.new, result.unchanged, result.forgotten) == (1, 1, 1)
    assert [d.doc_id for d in kb.documents()] == ["acme-bob", "globex"]
    assert "Bob" in kb.ask("Who is the CEO of Acme?").answer

    # Forgotten with --allow-again: the next poll (in full, though the feed did not
    # change) brings it back.
    kb.forget(["acme-bob"], allow_again=True)
    back = kb.poll().feeds[0]
    assert (back.status, back.new, back.forgotten) == ("stored", 1, 1)
    assert "acme-bob" in [d.doc_id for d in kb.documents()]
    # An id forgotten earlier is let back by --allow-again --missing-ok.
    kb.forget(["acme-alice"], missing_ok=True, allow_again=True)
    Site.publish("/news.xml", rss([BOB, ALICE, GLOBEX, item("x", "The CEO of X is Y.", 1, 7)]))
    assert kb.poll().feeds[0].new == 2
    assert kb.verify(deep=True).ok


def test_an_explicit_ingest_of_a_forgotten_document_stores_it_and_polls_take_it_again(
    open_kb: OpenKB, site: str
) -> None:
    from tests.helpers import news

    kb = open_kb()
    Site.publish("/news.xml", rss([BOB]))
    kb.subscribe([f"{site}/news.xml"])
    kb.poll()
    kb.forget(["acme-bob"])
    assert kb.ingest([news("acme-bob", "The CEO of Acme is Bob.", day=8)]).stored
    assert kb.runtime.read(lambda s: s.query(ForgottenId).count()) == 0


def test_one_failing_feed_does_not_stop_the_others(open_kb: OpenKB, site: str) -> None:
    kb = open_kb()
    Site.publish("/good.xml", rss([BOB]))
    Site.publish("/bad.xml", b'<?xml version="1.0"?><rss version="2.0"><channel><<</rss>')
    Site.modes["/gone.xml"] = "404"
    Site.publish("/slow.xml", rss([ALICE]))
    Site.modes["/slow.xml"] = "slow"
    laughs = '<!DOCTYPE rss [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    Site.publish("/bomb.xml", rss([GLOBEX]).replace(b"<rss", laughs.encode() + b"<rss", 1))
    Site.publish("/huge.xml", rss([item(f"h{i}", "The CEO of H is Z. " * 50) for i in range(9)]))
    names = ("gone", "bad", "slow", "bomb", "huge", "good")
    kb.subscribe([f"{site}/{name}.xml" for name in names])

    report = kb.poll(timeout=1.0, max_bytes=8000)
    statuses = {f.url.rsplit("/", 1)[1]: f.status for f in report.feeds}
    assert statuses == {f"{name}.xml": "failed" for name in names[:-1]} | {"good.xml": "stored"}
    errors = {f.url.rsplit("/", 1)[1]: f.error or "" for f in report.feeds}
    assert "HTTP 404" in errors["gone.xml"]
    assert "not a valid feed" in errors["bad.xml"]
    assert "within 1 s" in errors["slow.xml"]
    assert "declares XML entities" in errors["bomb.xml"]
    assert "too big" in errors["huge.xml"]
    assert not report.all_failed
    assert [d.doc_id for d in kb.documents()] == ["acme-bob"]
    rows = {r.url.rsplit("/", 1)[1]: r for r in kb.feeds()}
    assert rows["gone.xml"].failures == 1 and "HTTP 404" in (rows["gone.xml"].error or "")
    assert rows["good.xml"].failures == 0


def test_retry_after_is_honoured_and_a_permanent_redirect_moves_the_subscription(
    open_kb: OpenKB, site: str
) -> None:
    kb = open_kb()
    Site.modes["/busy.xml"] = "busy"
    Site.modes["/old.xml"] = f"moved:{site}/new.xml"
    Site.modes["/hop.xml"] = f"temporary:{site}/new2.xml"
    Site.publish("/new.xml", rss([BOB]))
    Site.publish("/new2.xml", rss([ALICE]))
    kb.subscribe([f"{site}/busy.xml", f"{site}/old.xml", f"{site}/hop.xml"])

    first = kb.poll()
    busy = by_url(first, f"{site}/busy.xml")
    assert busy.status == "failed" and busy.retry_at is not None
    assert "wait 3600 s" in (busy.error or "")
    moved = by_url(first, f"{site}/old.xml")
    assert moved.moved_to == f"{site}/new.xml" and moved.new == 1
    assert {r.url for r in kb.feeds()} == {
        f"{site}/busy.xml",
        f"{site}/new.xml",  # followed: permanent
        f"{site}/hop.xml",  # kept: temporary
    }
    requests = len([s for s in Site.seen if s[0] == "/busy.xml"])
    second = kb.poll()
    assert by_url(second, f"{site}/busy.xml").status == "waiting"
    assert len([s for s in Site.seen if s[0] == "/busy.xml"]) == requests  # not asked again
    assert by_url(second, f"{site}/new.xml").status == "not modified"
    assert not second.all_failed


def test_a_feed_another_process_is_polling_is_skipped(open_kb: OpenKB, site: str) -> None:
    kb = open_kb()
    url = f"{site}/news.xml"
    Site.publish("/news.xml", rss([BOB]))
    kb.subscribe([url])
    with try_named_lock(kb.folder, kb.runtime.engine, f"feed:{url}") as taken:
        assert taken
        assert kb.poll().feeds[0].status == "busy"
    assert Site.seen == []
    assert kb.poll().feeds[0].status == "stored"


def test_a_poll_stopped_between_documents_leaves_the_rest_for_the_next_poll(
    open_kb: OpenKB, site: str
) -> None:
    kb = open_kb()
    Site.publish("/news.xml", rss([BOB, ALICE, GLOBEX]))
    kb.subscribe([f"{site}/news.xml"])
    asked = [0]

    def stop_after_one() -> bool:
        asked[0] += 1
        return len(kb.documents()) >= 1

    first = kb.poll(should_stop=stop_after_one).feeds[0]
    assert (first.status, first.new) == ("interrupted", 1)
    assert kb.verify(deep=True).ok
    second = kb.poll().feeds[0]  # in full: the validators were not stored
    assert (second.status, second.new, second.unchanged) == ("stored", 2, 1)


def test_watch_backs_off_a_failing_feed(open_kb: OpenKB, site: str) -> None:
    kb = open_kb()
    Site.modes["/gone.xml"] = "404"
    Site.publish("/news.xml", rss([BOB]))
    kb.subscribe([f"{site}/gone.xml", f"{site}/news.xml"])
    stop = threading.Event()
    reports: list[PollReport] = []

    def on_poll(report: PollReport) -> None:
        reports.append(report)
        if len([s for s in Site.seen if s[0] == "/news.xml"]) == 4:
            stop.set()

    thread = threading.Thread(target=lambda: kb.watch(stop=stop, every=1.0, on_poll=on_poll))
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    gone = [s for s in Site.seen if s[0] == "/gone.xml"]
    news = [s for s in Site.seen if s[0] == "/news.xml"]
    # The healthy feed every second (4 fetches in about 3 s); the failing one 2 s
    # after its first failure, then 4 s after its second.
    assert len(news) == 4 and len(gone) == 2

    from datetime import timedelta

    feeds = kb.runtime.read(lambda s: s.query(Feed).order_by(Feed.id).all())
    assert [f.failures for f in feeds] == [2, 0]
    latest = max(f.last_fetch_at for f in feeds if f.last_fetch_at)
    assert due_feeds(feeds, 60.0, latest) == []
    # Two failures in a row: due 4 intervals after the last fetch; the healthy feed after one.
    soon, late = latest + timedelta(seconds=61), latest + timedelta(seconds=241)
    assert [f.url for f in due_feeds(feeds, 60.0, soon)] == [feeds[1].url]
    assert len(due_feeds(feeds, 60.0, late)) == 2


# -- the command line -----------------------------------------------------------------------
@pytest.fixture
def kb_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "kb"
    KnowledgeBase.open(folder, settings=Settings(embedder="fake", llm="fake")).close()
    return folder


def kb(kb_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--kb", str(kb_dir), *args], catch_exceptions=False)


def test_poll_prints_a_line_per_feed_and_fails_only_when_every_feed_failed(
    kb_dir: Path, site: str
) -> None:
    Site.publish("/news.xml", rss([BOB]))
    Site.modes["/gone.xml"] = "404"
    assert kb(kb_dir, "feeds", "add", f"{site}/news.xml", f"{site}/gone.xml").exit_code == 0

    result = kb(kb_dir, "poll")
    assert result.exit_code == 0
    assert f"{site}/news.xml: 1 new, 0 updated, 0 unchanged" in result.stdout
    assert f"{site}/gone.xml: failed: could not fetch" in result.stderr
    assert "Polled 2 feeds" in result.stdout

    quiet = kb(kb_dir, "poll", "-q")
    assert quiet.exit_code == 0 and quiet.stdout == ""
    assert "gone.xml: failed" in quiet.stderr  # something failed: said even with -q

    kb(kb_dir, "feeds", "rm", f"{site}/gone.xml")
    assert kb(kb_dir, "poll", "-q").output == ""  # nothing failed: nothing printed

    Site.modes["/news.xml"] = "404"
    everything = kb(kb_dir, "poll", "--json")
    assert everything.exit_code == 1
    assert json.loads(everything.stdout)["all_failed"] is True

    listing = json.loads(kb(kb_dir, "feeds", "list", "--json").stdout)
    assert [(r["url"], r["documents"], r["failures"]) for r in listing] == [
        (f"{site}/news.xml", 1, 1)
    ]
    assert "HTTP 404" in listing[0]["error"]
    shown = kb(kb_dir, "feeds", "list").stdout
    assert "last new item" in shown and "acme-bob" in shown and "error (1 failure" in shown


def test_forget_allow_again_and_the_record_it_keeps_otherwise(kb_dir: Path, site: str) -> None:
    Site.publish("/news.xml", rss([BOB, ALICE]))
    kb(kb_dir, "feeds", "add", f"{site}/news.xml")
    kb(kb_dir, "poll", "-q")
    assert kb(kb_dir, "forget", "acme-bob").exit_code == 0
    again = kb(kb_dir, "forget", "--allow-again", "acme-alice")
    assert "Polls may bring them back" in again.output
    with KnowledgeBase.open(kb_dir) as opened:
        rows = opened.runtime.read(lambda s: [r.id_hash for r in s.query(ForgottenId)])
        key = opened.runtime.read(lambda s: s.get(Meta, "forget_key").value)
    assert rows == [id_hash(bytes.fromhex(key), "acme-bob")]
    polled = kb(kb_dir, "poll")
    assert "1 new, 0 updated, 0 unchanged, 1 forgotten left out" in polled.stdout


def test_opml_import_and_export_round_trip(kb_dir: Path, tmp_path: Path) -> None:
    opml = tmp_path / "subs.opml"
    opml.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<opml version="1.0"><head><title>Mine</title>'
        "</head><body>"
        '<outline text="Tech"><outline text="A &amp; B &lt;news&gt; &quot;daily&quot;" '
        'type="rss" xmlUrl="https://a.example/feed?x=1&amp;y=2"/></outline>'
        '<outline text="Plain" type="rss" xmlUrl="http://b.example/rss.xml"/>'
        '<outline text="Not a feed" type="rss" xmlUrl="ftp://c.example/x"/>'
        "</body></opml>"
    )
    added = kb(kb_dir, "feeds", "add", "--opml", str(opml))
    assert added.exit_code == 0, added.output
    assert "Subscribed to 2 feeds" in added.output

    exported = kb(kb_dir, "feeds", "export", "--opml").stdout
    path = tmp_path / "out.opml"
    path.write_text(exported)
    assert read_opml(str(path)) == [
        Subscription("https://a.example/feed?x=1&y=2", 'A & B <news> "daily"'),
        Subscription("http://b.example/rss.xml", "Plain"),
    ]
    # Into another knowledge base and out again: the same document.
    other = tmp_path / "other"
    KnowledgeBase.open(other, settings=Settings(embedder="fake", llm="fake")).close()
    kb(other, "feeds", "add", "--opml", str(path))
    assert kb(other, "feeds", "export").stdout == exported
    again = kb(kb_dir, "feeds", "add", "--opml", str(opml))
    assert "Subscribed to 0 feeds (2 already subscribed)" in again.output


def test_opml_that_is_not_a_subscription_list_is_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.opml"
    bomb.write_text(
        '<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY a "aaaaaaaaaa">]>'
        '<opml><body><outline xmlUrl="http://x.example/&a;"/></body></opml>'
    )
    with pytest.raises(InputError, match="declares XML entities"):
        read_opml(str(bomb))
    empty = tmp_path / "empty.opml"
    empty.write_text("<opml><body></body></opml>")
    with pytest.raises(InputError, match="lists no http"):
        read_opml(str(empty))
    assert "&amp;" in write_opml([Subscription("http://x.example/?a=1&b=2", "x\x01y")])


def test_feeds_commands_refuse_what_is_not_a_feed_address(kb_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["--kb", str(kb_dir), "feeds", "add", "file:///etc/passwd"])
    assert result.exit_code != 0
    assert CliRunner().invoke(cli, ["--kb", str(kb_dir), "feeds", "add"]).exit_code == 2
    assert "No feeds" in kb(kb_dir, "feeds", "list").output
    assert "No feeds" in kb(kb_dir, "poll").output
    rm = CliRunner().invoke(cli, ["--kb", str(kb_dir), "feeds", "rm", "http://x.example/"])
    assert rm.exit_code != 0
    bad = CliRunner().invoke(cli, ["--kb", str(kb_dir), "watch", "--every", "soon"])
    assert bad.exit_code == 2 and "not a duration" in bad.output


def test_retry_after_reads_seconds_and_dates() -> None:
    from datetime import UTC, datetime

    at = datetime(2024, 1, 1, tzinfo=UTC)
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds("Mon, 01 Jan 2024 00:02:00 GMT", at) == 120.0
    assert retry_after_seconds("Sun, 31 Dec 2023 00:00:00 GMT", at) == 0.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


@pytest.mark.skipif(ON_POSTGRES, reason="reads the SQLite file directly")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_watch_leaves_a_store_that_verify_deep_passes(
    kb_dir: Path, site: str, signum: int
) -> None:
    many = [item(f"n{i:03d}", f"The CEO of Firm{i} is Person{i}.", 1 + i % 28) for i in range(40)]
    Site.publish("/many.xml", rss(many))
    kb(kb_dir, "feeds", "add", f"{site}/many.xml")
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
    watcher = subprocess.Popen(
        [sys.executable, str(ROOT / "cli.py"), "--kb", str(kb_dir), "watch", "--every", "1s"],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        stored = 0
        while stored < 3 and time.monotonic() < deadline and watcher.poll() is None:
            time.sleep(0.05)
            with sqlite3.connect(kb_dir / "kbase.db", timeout=30) as db:
                stored = db.execute("SELECT count(*) FROM documents").fetchone()[0]
        assert stored >= 3, watcher.stderr.read() if watcher.stderr else ""
        watcher.send_signal(signum)
        _out, err = watcher.communicate(timeout=60)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    assert watcher.returncode == 0, err
    assert "Stopping after the current document" in err and "Stopped;" in err
    with sqlite3.connect(kb_dir / "kbase.db") as db:
        count = db.execute("SELECT count(*) FROM documents").fetchone()[0]
    assert 3 <= count < 40  # stopped part-way
    verified = kb(kb_dir, "verify", "--deep")
    assert verified.exit_code == 0, verified.output
    status = json.loads(kb(kb_dir, "feeds", "list", "--json").stdout)[0]["last_status"]
    assert status == "interrupted"
    # The next poll reads the feed in full and stores the rest.
    polled = json.loads(kb(kb_dir, "poll", "--json").stdout)["feeds"][0]
    assert polled["new"] == 40 - count and polled["unchanged"] == count


# -- the real models ------------------------------------------------------------------------
ACME_BOB = item(
    "acme-bob",
    "Acme Robotics, the warehouse-robot maker based in Leeds, named Bob Marsh as its "
    "chief executive on Monday. Bob Marsh previously ran the company's European sales team.",
    day=8,
)
ACME_ALICE = item(
    "acme-alice",
    "Acme Robotics named Alice Chen its chief executive on Thursday, replacing Bob Marsh, "
    "who left the company. Alice Chen was previously the chief operating officer of Acme "
    "Robotics.",
    day=2,
    month=5,
)


@pytest.mark.real
def test_a_subscribed_feed_polled_twice_answers_with_the_new_chief_executive(
    tmp_path: Path, site: str
) -> None:
    folder = tmp_path / "kb"

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, ["--kb", str(folder), *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    Site.publish("/acme.xml", rss([ACME_BOB]))
    run("feeds", "add", f"{site}/acme.xml")
    first = json.loads(run("poll", "--json"))["feeds"][0]
    assert first["new"] == 1
    ceo = "Who is the chief executive of Acme Robotics?"
    assert "Bob" in json.loads(run("ask", "--json", ceo))["answer"]

    Site.publish("/acme.xml", rss([ACME_BOB, ACME_ALICE]))
    second = json.loads(run("poll", "--json"))["feeds"][0]
    assert (second["new"], second["unchanged"]) == (1, 1)
    answer = json.loads(run("ask", "--json", ceo))
    assert "Alice" in answer["answer"] and "Bob" not in answer["answer"]
    assert "acme-alice" in [c["doc_id"] for c in answer["citations"]]
