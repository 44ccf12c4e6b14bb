"""The URL policy (issue 19): only http(s), and only hosts whose every address is
public, on the first request and on every redirect, the connection pinned to the
checked address; private networks only when allowed explicitly.

The servers are real HTTP servers on 127.0.0.1. A "public" host is simulated by a
resolver that names a public address and a network that carries connections to
that address to one of the local servers (``socket.create_connection`` re-routed):
the policy sees the public address, the bytes go over a real socket.
"""

from __future__ import annotations

import importlib
import socket
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import pytest

from cli import main
from kbase.config import Settings
from kbase.errors import FetchError
from kbase.kb import KnowledgeBase
from kbase.sources import read_source
from kbase.sources.conditional import fetch_if_changed
from kbase.sources.fetch import ALLOW_PRIVATE_ENV, fetch, non_public
from tests.helpers import default_url_policy, local_server

FEED = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Internal</title>
<item><guid>inside-1</guid><pubDate>Mon, 01 Jan 2024 00:00:00 GMT</pubDate>
<description>The internal service says the CEO of Acme is Alice.</description></item>
</channel></rss>"""
PUBLIC_IP = "93.184.216.34"
# The module, not the function kbase.sources re-exports under the same name.
fetch_module = importlib.import_module("kbase.sources.fetch")


class Internal(BaseHTTPRequestHandler):
    """A service on another port that must not be reached: it counts its requests."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(FEED)))
        self.end_headers()
        self.wfile.write(FEED)

    def log_message(self, format: str, *args: object) -> None:
        pass


class Redirector(BaseHTTPRequestHandler):
    """Answers every request with a redirect to :attr:`target` (the path kept)."""

    target: ClassVar[str] = ""
    status: ClassVar[int] = 302

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("Location", f"{self.target}{self.path}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(autouse=True)
def default_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    default_url_policy(monkeypatch)


@pytest.fixture
def internal() -> Iterator[str]:
    Internal.seen = []
    with local_server(Internal) as url:
        yield url


@pytest.fixture
def redirector(internal: str) -> Iterator[str]:
    """A server on 127.0.0.1 redirecting to the internal one, on another port."""
    Redirector.target, Redirector.status = internal, 302
    with local_server(Redirector) as url:
        yield url


class Network:
    """Resolves ``*.public.test`` to a public address and carries connections to that
    address to a local server; records what was resolved and connected to."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.answers: dict[str, list[list[str]]] = {}
        self.resolved: list[str] = []
        self.connected: list[tuple[str, int]] = []
        self.routes: dict[str, int] = {}
        real_resolve = fetch_module.resolve
        real_connect = socket.create_connection

        def resolve(host: str, port: int) -> list[str]:
            if host not in self.answers:
                return real_resolve(host, port)
            self.resolved.append(host)
            answers = self.answers[host]
            return answers.pop(0) if len(answers) > 1 else answers[0]

        def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
            self.connected.append(address)
            host, _port = address
            if host in self.routes:
                return real_connect(("127.0.0.1", self.routes[host]), *args, **kwargs)
            return real_connect(address, *args, **kwargs)

        monkeypatch.setattr(fetch_module, "resolve", resolve)
        monkeypatch.setattr(socket, "create_connection", create_connection)

    def public_host(self, name: str, local_url: str, *answers: list[str]) -> str:
        """``http://name:port``: ``name`` resolves to ``answers`` in turn (default: the
        public address), which leads to the local server at ``local_url``."""
        port = int(local_url.rsplit(":", 1)[1])
        self.answers[name] = list(answers) or [[PUBLIC_IP]]
        self.routes[PUBLIC_IP] = port
        return f"http://{name}:{port}"


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> Network:
    return Network(monkeypatch)


# -- the addresses ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("100.64.0.1", "not a public"),  # carrier-grade NAT
    ],
)
def test_internal_addresses_are_named_as_such(address: str, kind: str) -> None:
    import ipaddress

    found = non_public(ipaddress.ip_address(address))
    assert found is not None and kind in found


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    import ipaddress

    assert non_public(ipaddress.ip_address(address)) is None


# -- the first request -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "2130706433", "0x7f.1"]
)
def test_a_loopback_url_is_refused_by_default_without_a_request(internal: str, host: str) -> None:
    port = internal.rsplit(":", 1)[1]
    url = f"http://{host}:{port}/feed.xml"

    with pytest.raises(FetchError) as caught:
        read_source(url)

    message = str(caught.value)
    assert "\n" not in message
    assert "loopback address" in message
    assert f"{ALLOW_PRIVATE_ENV}=1" in message and "--allow-private-urls" in message
    assert Internal.seen == []


def test_a_loopback_url_is_fetched_when_private_addresses_are_allowed(
    internal: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (by_argument,) = read_source(f"{internal}/feed.xml", allow_private=True)
    monkeypatch.setenv(ALLOW_PRIVATE_ENV, "1")
    (by_environment,) = read_source(f"{internal}/feed.xml")

    assert by_argument.doc_id == by_environment.doc_id == "inside-1"
    assert Internal.seen == ["/feed.xml", "/feed.xml"]


def test_the_argument_overrides_the_environment(
    internal: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ALLOW_PRIVATE_ENV, "1")

    with pytest.raises(FetchError, match="loopback address"):
        fetch(f"{internal}/feed.xml", max_bytes=10_000, timeout=5, allow_private=False)
    assert Internal.seen == []


# -- redirects ---------------------------------------------------------------------------------
def test_a_local_redirect_to_another_port_is_refused_by_default_and_followed_when_allowed(
    redirector: str, internal: str
) -> None:
    with pytest.raises(FetchError, match="loopback address"):
        read_source(f"{redirector}/feed.xml")
    assert Internal.seen == []

    (document,) = read_source(f"{redirector}/feed.xml", allow_private=True)

    assert document.doc_id == "inside-1"
    assert Internal.seen == ["/feed.xml"]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_from_a_public_host_to_an_internal_port_is_refused(
    network: Network, internal: str, status: int
) -> None:
    Redirector.target, Redirector.status = internal, status
    with local_server(Redirector) as local:
        public = network.public_host("news.public.test", local)

        with pytest.raises(FetchError) as caught:
            read_source(f"{public}/feed.xml")

    message = str(caught.value)
    assert message.startswith(f"could not fetch {public}/feed.xml: it redirects to {internal}")
    assert "loopback address" in message and "--allow-private-urls" in message
    assert Internal.seen == []  # the internal service never saw a request
    assert network.connected == [(PUBLIC_IP, int(local.rsplit(":", 1)[1]))]


def test_a_feed_poll_refuses_the_same_redirect(network: Network, internal: str) -> None:
    Redirector.target, Redirector.status = internal, 301
    with local_server(Redirector) as local:
        public = network.public_host("feeds.public.test", local)

        with pytest.raises(FetchError, match=r"it redirects to .* loopback address"):
            fetch_if_changed(
                f"{public}/feed.xml", etag=None, last_modified=None, max_bytes=10_000, timeout=5
            )
        answer = fetch_if_changed(
            f"{public}/feed.xml",
            etag=None,
            last_modified=None,
            max_bytes=10_000,
            timeout=5,
            allow_private=True,
        )

    assert answer.download is not None and b"inside-1" in answer.download.data
    assert answer.moved_to == f"{internal}/feed.xml"
    assert Internal.seen == ["/feed.xml"]


def test_a_public_host_is_fetched(network: Network, internal: str) -> None:
    public = network.public_host("plain.public.test", internal)

    (document,) = read_source(f"{public}/feed.xml")

    assert document.doc_id == "inside-1"


# -- resolution: every address, once, pinned ---------------------------------------------------
def test_one_internal_address_among_public_ones_refuses_the_host(
    network: Network, internal: str
) -> None:
    public = network.public_host("mixed.public.test", internal, [PUBLIC_IP, "10.0.0.7"])

    with pytest.raises(FetchError, match=r"mixed\.public\.test \(10\.0\.0\.7\) is a private"):
        read_source(f"{public}/feed.xml")

    assert network.connected == [] and Internal.seen == []


def test_the_connection_goes_to_the_checked_address_whatever_the_name_resolves_to_later(
    network: Network, internal: str
) -> None:
    # DNS rebinding: the first answer is public, every later one loopback. The name
    # is resolved once, where the connection is made, and the socket connects to
    # the address that was checked.
    public = network.public_host("rebind.public.test", internal, [PUBLIC_IP], ["127.0.0.1"])

    (document,) = read_source(f"{public}/feed.xml")

    assert document.doc_id == "inside-1"
    assert network.resolved == ["rebind.public.test"]
    assert [host for host, _ in network.connected] == [PUBLIC_IP]


def test_a_name_that_resolves_to_loopback_is_refused(network: Network, internal: str) -> None:
    public = network.public_host("evil.public.test", internal, ["127.0.0.1"])

    with pytest.raises(FetchError, match=r"evil\.public\.test \(127\.0\.0\.1\) is a loopback"):
        read_source(f"{public}/feed.xml")

    assert network.connected == [] and Internal.seen == []


# -- the commands ------------------------------------------------------------------------------
def test_kb_ingest_and_kb_poll_refuse_a_loopback_feed_unless_allowed(
    tmp_path: Path,
    internal: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "kb"
    KnowledgeBase.open(folder, settings=Settings(embedder="fake", llm="fake")).close()
    url = f"{internal}/feed.xml"

    def kb(*args: str) -> tuple[int, str]:
        """The real entry point (its error handling); the exit code and all it printed."""
        monkeypatch.setattr(sys, "argv", ["kb", "--kb", str(folder), *args])
        code = 0
        try:
            main()
        except SystemExit as exit_info:
            code = int(exit_info.code or 0)
        printed = capsys.readouterr()
        return code, printed.out + printed.err

    code, printed = kb("ingest", url)
    assert code != 0 and len(printed.strip().splitlines()) == 1
    assert "loopback address" in printed and "--allow-private-urls" in printed
    assert kb("feeds", "add", url)[0] == 0
    code, printed = kb("poll")
    assert code != 0 and "loopback address" in printed
    assert Internal.seen == []

    assert kb("ingest", "--allow-private-urls", url)[0] == 0
    assert kb("poll", "--allow-private-urls")[0] == 0
    with KnowledgeBase.open(folder) as opened:
        assert [d.doc_id for d in opened.documents()] == ["inside-1"]
    assert Internal.seen == ["/feed.xml", "/feed.xml"]
