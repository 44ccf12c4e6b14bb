"""URLs through the server (issue 17 under issue 19's URL policy): ingest by URL and
the feeds (list, add, remove, poll now) over the HTTP API and the MCP tools, on
real HTTP servers on 127.0.0.1, with the fake models.

By default the server refuses loopback and private addresses, redirects included;
a server started with private URLs allowed fetches them, with the download capped
like a request body.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import anyio
import httpx
import pytest
from mcp import Client

from kbase.server.app import create_app
from kbase.server.service import Service
from kbase.sources.fetch import ALLOW_PRIVATE_ENV
from tests.helpers import default_url_policy, local_server
from tests.test_server import FAKE, assert_error, live, structured, tool_error

BOB = (
    "bob",
    "Mon, 08 Jan 2024 09:00:00 GMT",
    "The chief executive of Acme is Bob Marsh.",
)
ALICE = (
    "alice",
    "Thu, 02 May 2024 09:00:00 GMT",
    "The chief executive of Acme is Alice Chen.",
)


def rss(*items: tuple[str, str, str]) -> bytes:
    entries = "".join(
        f"<item><guid>{guid}</guid><title>{guid}</title><pubDate>{date}</pubDate>"
        f"<link>https://news.example.org/{guid}</link><description>{text}</description></item>"
        for guid, date, text in items
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Acme news</title>{entries}'
        "</channel></rss>"
    ).encode()


class Site(BaseHTTPRequestHandler):
    """Feeds by path, a redirect to another server, and a record of what was asked."""

    feeds: ClassVar[dict[str, bytes]] = {}
    redirect_to: ClassVar[str] = ""
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        if self.path == "/elsewhere.xml" and self.redirect_to:
            self.send_response(302)
            self.send_header("Location", self.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = self.feeds.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(autouse=True)
def default_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    default_url_policy(monkeypatch)


@pytest.fixture
def site() -> Iterator[str]:
    Site.feeds = {"/news.xml": rss(BOB), "/big.xml": rss(*[BOB] * 200)}
    Site.redirect_to, Site.seen = "", []
    with local_server(Site) as url:
        yield url


@contextmanager
def served(
    folder: Path, *, allow_private_urls: bool | None = None, **options: Any
) -> Iterator[httpx.Client]:
    service = Service.open(folder, settings=FAKE, allow_private_urls=allow_private_urls)
    try:
        with (
            live(create_app(service, **options)) as url,
            httpx.Client(base_url=url, timeout=60) as client,
        ):
            yield client
    finally:
        service.close()


# -- ingest by URL ---------------------------------------------------------------------------
def test_ingest_by_url_refuses_loopback_addresses_and_local_paths_by_default(
    tmp_path: Path, site: str
) -> None:
    with served(tmp_path / "kb") as client:
        refused = client.post("/documents/url", json={"url": f"{site}/news.xml"})
        assert_error(refused, 400, "loopback address", "--allow-private-urls")
        for spec in ("file:///etc/passwd", "/etc/passwd", "-", "ftp://example.org/feed.xml"):
            assert_error(client.post("/documents/url", json={"url": spec}), 400)
        assert_error(client.post("/documents/url", json={}), 400, "url")
        assert client.get("/documents").json() == []
    assert Site.seen == []


def test_a_public_looking_redirect_to_another_local_port_is_refused_too(
    tmp_path: Path, site: str
) -> None:
    # A second server on another port: the "internal service".
    with local_server(Site) as internal:
        Site.redirect_to = f"{internal}/news.xml"
        with served(tmp_path / "kb") as client:
            refused = client.post("/documents/url", json={"url": f"{site}/elsewhere.xml"})
        assert_error(refused, 400, "loopback address")
    assert Site.seen == []


def test_ingest_by_url_when_private_addresses_are_allowed(tmp_path: Path, site: str) -> None:
    with local_server(Site) as internal:
        Site.redirect_to = f"{internal}/news.xml"
        with served(tmp_path / "kb", allow_private_urls=True, max_body_bytes=4000) as client:
            report = client.post("/documents/url", json={"url": f"{site}/elsewhere.xml"})
            assert report.status_code == 200, report.text
            assert [d["doc_id"] for d in report.json()["stored"]] == ["bob"]
            named = client.post("/documents/url", json={"url": f"{site}/news.xml", "id": "b2"})
            assert [d["doc_id"] for d in named.json()["stored"]] == ["b2"]
            # The download is capped like a request body.
            too_big = client.post("/documents/url", json={"url": f"{site}/big.xml"})
            assert_error(too_big, 400, "too big", "4000 bytes")
            answer = client.post("/ask", json={"question": "Who is the chief executive of Acme?"})
            assert "Bob Marsh" in answer.json()["answer"]
            assert answer.json()["citations"][0]["url"] == "https://news.example.org/bob"
    assert Site.seen == ["/elsewhere.xml", "/news.xml", "/news.xml", "/big.xml"]


def test_the_environment_allows_private_addresses_for_the_server_too(
    tmp_path: Path, site: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ALLOW_PRIVATE_ENV, "1")
    with served(tmp_path / "kb") as client:
        report = client.post("/documents/url", json={"url": f"{site}/news.xml"})
        assert report.status_code == 200, report.text
    with served(tmp_path / "kb2", allow_private_urls=False) as client:
        assert_error(client.post("/documents/url", json={"url": f"{site}/news.xml"}), 400)


# -- feeds -------------------------------------------------------------------------------------
def test_feeds_add_list_poll_and_remove_over_the_api(tmp_path: Path, site: str) -> None:
    feed = f"{site}/news.xml"
    with served(tmp_path / "kb", allow_private_urls=True) as client:
        added = client.post("/feeds", json={"urls": [feed]})
        assert added.status_code == 200, added.text
        assert added.json() == {"added": [feed], "already": [], "removed": []}
        assert client.post("/feeds", json={"urls": [feed]}).json()["already"] == [feed]
        assert [f["url"] for f in client.get("/feeds").json()["feeds"]] == [feed]

        first = client.post("/feeds/poll").json()
        assert first["new"] == 1 and first["failed"] == 0
        assert first["feeds"][0]["status"] == "stored"
        Site.feeds["/news.xml"] = rss(BOB, ALICE)
        second = client.post("/feeds/poll").json()
        assert second["new"] == 1 and second["feeds"][0]["unchanged"] == 1
        assert [d["doc_id"] for d in client.get("/documents").json()] == ["bob", "alice"]
        listed = client.get("/feeds").json()["feeds"][0]
        assert listed["documents"] == 2 and listed["last_status"] == "new"

        removed = client.delete("/feeds", params={"url": feed})
        assert removed.json() == {"added": [], "already": [], "removed": [feed]}
        assert client.get("/feeds").json() == {"feeds": []}
        assert_error(client.delete("/feeds", params={"url": feed}), 404, "not subscribed")
        assert_error(client.post("/feeds", json={"urls": ["file:///etc/passwd"]}), 400, "file")
        assert_error(client.post("/feeds", json={"urls": []}), 400, "urls")
        # The documents the feed gave stay.
        assert len(client.get("/documents").json()) == 2


def test_polling_a_loopback_feed_fails_on_that_feed_by_default(tmp_path: Path, site: str) -> None:
    with served(tmp_path / "kb") as client:
        client.post("/feeds", json={"urls": [f"{site}/news.xml"]})
        report = client.post("/feeds/poll").json()
        assert report["all_failed"] is True
        assert "loopback address" in report["feeds"][0]["error"]
        assert "loopback address" in client.get("/feeds").json()["feeds"][0]["error"]
        assert client.get("/documents").json() == []
    assert Site.seen == []


# -- MCP ---------------------------------------------------------------------------------------
def test_the_mcp_ingest_and_feeds_tools_take_urls(tmp_path: Path, site: str) -> None:
    feed = f"{site}/news.xml"

    async def scenario(mcp: Client) -> None:
        tools = {tool.name: tool for tool in (await mcp.list_tools()).tools}
        assert set(tools["feeds"].input_schema["properties"]) == {"action", "urls"}
        assert {"documents", "url", "id"} <= set(tools["ingest"].input_schema["properties"])

        stored = structured(await mcp.call_tool("ingest", {"url": feed, "id": "from-url"}))
        assert [d["doc_id"] for d in stored["stored"]] == ["from-url"]
        assert "either" in tool_error(await mcp.call_tool("ingest", {}))
        assert "file" in tool_error(await mcp.call_tool("ingest", {"url": "file:///etc/passwd"}))

        added = structured(await mcp.call_tool("feeds", {"action": "add", "urls": [feed]}))
        assert added["change"]["added"] == [feed] and added["feeds"][0]["url"] == feed
        polled = structured(await mcp.call_tool("feeds", {"action": "poll"}))
        # The document ingested by URL came from the same address: both count.
        assert polled["poll"]["new"] == 1 and polled["feeds"][0]["documents"] == 2
        listed = structured(await mcp.call_tool("feeds", {}))
        assert listed["action"] == "list" and listed["change"] is None
        assert "urls" in tool_error(await mcp.call_tool("feeds", {"action": "remove"}))
        removed = structured(await mcp.call_tool("feeds", {"action": "remove", "urls": [feed]}))
        assert removed["change"]["removed"] == [feed] and removed["feeds"] == []

    with served(tmp_path / "kb", allow_private_urls=True) as client:

        async def main() -> None:
            async with Client(str(client.base_url).rstrip("/") + "/mcp") as mcp:
                await scenario(mcp)

        anyio.run(main)


def test_the_mcp_ingest_tool_refuses_loopback_urls_by_default(tmp_path: Path, site: str) -> None:
    with served(tmp_path / "kb") as client:

        async def main() -> None:
            async with Client(str(client.base_url).rstrip("/") + "/mcp") as mcp:
                message = tool_error(await mcp.call_tool("ingest", {"url": f"{site}/news.xml"}))
                assert "loopback address" in message and "--allow-private-urls" in message

        anyio.run(main)
    assert Site.seen == []
