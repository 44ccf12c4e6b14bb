"""Small builders shared by tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

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


PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)


def no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Talk to 127.0.0.1 directly, whatever proxies the environment names."""
    for variable in PROXY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


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
