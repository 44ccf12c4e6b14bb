"""Small builders shared by tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import create_engine, text

from kbase.sources.base import SourceDocument


def news(doc_id: str, text: str, day: int = 1, month: int = 1) -> SourceDocument:
    """A dated document with the given id and text."""
    return SourceDocument(
        doc_id=doc_id,
        text=text,
        source="test",
        title=f"Title of {doc_id}",
        url=f"https://news.example.org/{doc_id}",
        published=datetime(2024, month, day),
    )


#: The Acme scenario of the real-model tests: two dated articles, the second
#: replacing the chief executive the first named (JSONL records, as `kb ingest` reads).
ACME_BOB = {
    "id": "acme-bob",
    "title": "Acme Robotics names Bob Marsh chief executive",
    "published": "2024-01-08",
    "url": "https://news.example.org/acme-bob",
    "text": "Acme Robotics, the warehouse-robot maker based in Leeds, named Bob Marsh as its "
    "chief executive on Monday. Bob Marsh previously ran the company's European sales team.",
}
ACME_ALICE = {
    "id": "acme-alice",
    "title": "Acme Robotics replaces Bob Marsh with Alice Chen",
    "published": "2024-05-02",
    "url": "https://news.example.org/acme-alice",
    "text": "Acme Robotics named Alice Chen its chief executive on Thursday, replacing Bob Marsh, "
    "who left the company. Alice Chen was previously the chief operating officer of Acme Robotics.",
}
#: The question the Acme scenario asks.
ACME_CEO = "Who is the chief executive of Acme Robotics?"


PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)


def default_url_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The URL policy's defaults: no proxies, no exception for private networks."""
    from kbase.sources.fetch import ALLOW_PRIVATE_ENV

    for variable in PROXY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv(ALLOW_PRIVATE_ENV, raising=False)


def no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Talk to 127.0.0.1 directly, whatever proxies the environment names, with the
    URL policy's loopback and private addresses allowed (KBASE_ALLOW_PRIVATE_URLS)."""
    for variable in PROXY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("KBASE_ALLOW_PRIVATE_URLS", "1")


@contextmanager
def local_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.block_on_close = False
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def rows_holding(url: str, canary: str) -> list[str]:
    """Every table of the store's schema whose rows, as text, hold the canary (bytea
    columns print as hex, so the hex of the canary is looked for too)."""
    engine = create_engine(url.replace("postgresql:", "postgresql+psycopg:"))
    try:
        with engine.connect() as connection:
            tables = connection.scalars(
                text(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
                )
            ).all()
            assert "documents" in tables
            found = []
            for table in tables:
                for needle in (canary, canary.encode("utf-8").hex()):
                    hits = connection.scalar(
                        text(f'SELECT count(*) FROM "{table}" t WHERE strpos(t::text, :n) > 0'),
                        {"n": needle},
                    )
                    if hits:
                        found.append(f"{table}: {hits} rows")
            return found
    finally:
        engine.dispose()
