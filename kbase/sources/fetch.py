"""Downloading http(s) URLs: every hop's address checked, the connection pinned to
it, redirects followed and checked, the body capped, errors made plain.

The URL policy: only ``http`` and ``https``, and only hosts whose every address is
public. A host that resolves to a loopback, private, link-local, multicast,
reserved or unspecified address (or any address that is not globally routable) is
refused, on the first request and on every redirect, unless private addresses
are allowed explicitly (``allow_private``, else ``$KBASE_ALLOW_PRIVATE_URLS``).
The address is checked where the connection is made and the socket connects to
that very address, so a name that resolves to something else a moment later (DNS
rebinding) cannot switch it. Environment proxies are not used: through a proxy
the address could not be checked.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from kbase.errors import FetchError, InputError
from kbase.sources.files import too_big
from kbase.sources.messages import one_line, shown_url

#: Redirects followed before giving up.
MAX_REDIRECTS = 5
USER_AGENT = "kbase/0.1 (+knowledge-base ingest)"
#: Set to 1 to let URLs reach loopback and private addresses (an intranet feed, tests).
ALLOW_PRIVATE_ENV = "KBASE_ALLOW_PRIVATE_URLS"
_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, "
    "text/html;q=0.8, application/x-ndjson;q=0.8, text/markdown;q=0.8, text/plain;q=0.7, */*;q=0.1"
)
REDIRECTS = frozenset({301, 302, 303, 307, 308})
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):")
# Schemes that need no "//" to be recognised (single letters are Windows drive names).
_BARE_SCHEMES = frozenset({"file", "data", "ftp", "ftps", "sftp", "mailto", "javascript", "about"})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_TRUE = frozenset({"1", "true", "yes", "on"})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Download:
    """The body and headers of one fetched URL."""

    url: str  # after redirects
    data: bytes
    content_type: str | None

    @property
    def charset(self) -> str | None:
        """The ``charset`` parameter of the Content-Type header, if any."""
        if not self.content_type:
            return None
        for parameter in self.content_type.split(";")[1:]:
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "charset" and value.strip().strip("\"'"):
                return value.strip().strip("\"'")
        return None


@dataclass(frozen=True)
class Reply:
    """The first answer that is not a redirect: its status and headers, the body
    when the status is 2xx, and the redirects that led to it."""

    url: str
    status: int
    reason: str
    headers: httpx.Headers
    #: The body of a 2xx answer (None for any other status).
    data: bytes | None
    #: Each redirect followed: its status and the address it led to.
    hops: tuple[tuple[int, str], ...]

    def download(self) -> Download:
        """The 2xx answer as a :class:`Download`."""
        assert self.data is not None
        return Download(self.url, self.data, self.headers.get("content-type"))


def is_url(spec: str) -> bool:
    """Whether ``spec`` looks like a URL: ``scheme://...`` or a ``file:``/``data:``-style prefix."""
    match = _SCHEME.match(spec)
    if match is None:
        return False
    return spec[match.end() :].startswith("//") or match.group(1).lower() in _BARE_SCHEMES


def check_url(url: str) -> None:
    """Refuse a URL that is not plain ``http``/``https`` with a host."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise InputError(f"{shown_url(url)} is not a valid URL ({one_line(exc)})") from None
    if parts.scheme.lower() not in ("http", "https"):
        scheme = parts.scheme or url.split(":", 1)[0]
        raise InputError(
            f"{shown_url(url)}: {one_line(scheme, 20)!r} URLs are not supported: "
            "give an http:// or https:// URL, or a local path"
        )
    if not parts.hostname:
        raise InputError(f"{shown_url(url)} has no host name: give a full http(s) URL")


def private_urls_allowed(allow_private: bool | None = None) -> bool:
    """``allow_private`` if given, else whether ``$KBASE_ALLOW_PRIVATE_URLS`` is set."""
    if allow_private is not None:
        return allow_private
    return os.environ.get(ALLOW_PRIVATE_ENV, "").strip().lower() in _TRUE


# -- the address policy -------------------------------------------------------------------
def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, NAT64), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def non_public(address: IPAddress) -> str | None:
    """What makes ``address`` internal (``"a loopback address"``...), or None when it
    is a public unicast address."""
    for each in (_embedded_ipv4(address), address):
        if each is None:
            continue
        for test, kind in (
            (each.is_unspecified, "an unspecified address"),
            (each.is_loopback, "a loopback address"),
            (each.is_link_local, "a link-local address"),
            (each.is_multicast, "a multicast address"),
            (each.is_reserved, "a reserved address"),
            (each.is_private, "a private address"),
            (not each.is_global, "not a public address"),
        ):
            if test:
                return kind
    return None


class Refused(Exception):
    """A connection the URL policy refused (why, in words)."""


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to for a TCP connection, in the resolver's order."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise httpcore.ConnectError(f"cannot resolve {host} ({exc})") from None
    addresses: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        ip = str(sockaddr[0]).split("%", 1)[0]  # an IPv6 zone index is not part of the address
        if ip not in addresses:
            addresses.append(ip)
    return addresses


def checked_addresses(host: str, port: int, *, allow_private: bool) -> list[str]:
    """The addresses to connect to for ``host``: all of them, once every one passed
    the policy (one internal address refuses the host)."""
    addresses = resolve(host, port)
    if not addresses:
        raise httpcore.ConnectError(f"{host} has no address")
    if allow_private:
        return addresses
    for ip in addresses:
        kind = non_public(ipaddress.ip_address(ip))
        if kind is not None:
            named = host if host == ip else f"{host} ({ip})"
            raise Refused(f"{named} is {kind}")
    return addresses


class _PinnedBackend(httpcore.NetworkBackend):
    """Connections to checked addresses only: the host is resolved once, each of its
    addresses checked, and the socket connected to one of those addresses."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._plain = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = checked_addresses(host, port, allow_private=self.allow_private)
        last: Exception | None = None
        for ip in addresses:
            try:
                return self._plain.connect_tcp(ip, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        raise Refused("unix sockets are not fetched")

    def sleep(self, seconds: float) -> None:
        self._plain.sleep(seconds)


class _PinnedTransport(httpx.HTTPTransport):
    """httpx's transport (its request and error mapping) over :class:`_PinnedBackend`."""

    def __init__(self, allow_private: bool) -> None:
        super().__init__(trust_env=False)
        # httpx has no argument for the network backend: its pool is replaced by one
        # with the same defaults (tests/test_url_policy.py fails if this stops working).
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=httpx.Limits().max_connections,
            network_backend=_PinnedBackend(allow_private),
        )


# -- one GET, redirects followed ------------------------------------------------------------
def request(
    url: str,
    *,
    headers: Mapping[str, str],
    max_bytes: int,
    timeout: float,
    allow_private: bool | None = None,
) -> Reply:
    """GET ``url``, following at most :data:`MAX_REDIRECTS` redirects, each address
    under the URL policy; the body of a 2xx answer is read (at most ``max_bytes``).

    ``timeout`` bounds each network step and the whole download. A refused address,
    a connection problem, a timeout or too many redirects raises :class:`FetchError`.
    """
    check_url(url)
    deadline = time.monotonic() + timeout
    shown = shown_url(url)
    hops: list[tuple[int, str]] = []
    current = url
    transport = _PinnedTransport(private_urls_allowed(allow_private))
    sent = {"User-Agent": USER_AGENT, **headers}
    try:
        with httpx.Client(
            timeout=timeout, follow_redirects=False, headers=sent, transport=transport
        ) as client:
            for _ in range(MAX_REDIRECTS + 1):
                with client.stream("GET", current) as response:
                    status = response.status_code
                    if status in REDIRECTS and "location" in response.headers:
                        current = _redirect_target(shown, current, response.headers["location"])
                        hops.append((status, current))
                        continue
                    data = None
                    if 200 <= status < 300:
                        data = read_capped(shown, response, max_bytes, deadline, timeout)
                    return Reply(
                        current,
                        status,
                        response.reason_phrase,
                        response.headers,
                        data,
                        tuple(hops),
                    )
    except Refused as exc:
        raise _refusal(shown, url, current, str(exc)) from None
    except httpx.TimeoutException:
        raise timed_out(shown, timeout) from None
    except httpx.InvalidURL as exc:
        raise InputError(f"{shown} is not a valid URL ({one_line(exc)})") from None
    except httpx.HTTPError as exc:
        raise FetchError(
            f"could not fetch {shown}: {describe_error(exc)}; check the address and your network"
        ) from None
    raise FetchError(
        f"could not fetch {shown}: more than {MAX_REDIRECTS} redirects; check the address"
    )


def _refusal(shown: str, url: str, current: str, why: str) -> FetchError:
    where = "" if current == url else f"it redirects to {shown_url(current)}, and "
    return FetchError(
        f"could not fetch {shown}: {where}{one_line(why, 120)}, which is not fetched: to "
        f"fetch from private networks, set {ALLOW_PRIVATE_ENV}=1 or pass --allow-private-urls"
    )


def fetch(
    url: str, *, max_bytes: int, timeout: float, allow_private: bool | None = None
) -> Download:
    """GET ``url`` under the URL policy (see :func:`request`); an answer other than
    2xx raises :class:`FetchError`."""
    reply = request(
        url,
        headers={"Accept": _ACCEPT},
        max_bytes=max_bytes,
        timeout=timeout,
        allow_private=allow_private,
    )
    if reply.data is None:
        status = f"HTTP {reply.status} {reply.reason}"
        raise FetchError(
            f"could not fetch {shown_url(url)}: {one_line(status, 80)}; check the address"
        )
    return reply.download()


def _redirect_target(shown: str, current: str, location: str) -> str:
    target = urljoin(current, location.strip())
    try:
        check_url(target)
    except InputError as exc:
        raise FetchError(
            f"could not fetch {shown}: it redirects to {shown_url(target)}, which is refused "
            f"({one_line(exc, 120)}); only http and https redirects are followed"
        ) from None
    return target


def read_capped(
    shown: str, response: httpx.Response, max_bytes: int, deadline: float, timeout: float
) -> bytes:
    """The body of ``response``, refused past ``max_bytes`` or the ``deadline``."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(str(too_big(shown, int(declared), max_bytes)))
    chunks: list[bytes] = []
    received = 0
    for chunk in response.iter_bytes():
        received += len(chunk)
        if received > max_bytes:
            raise FetchError(str(too_big(shown, None, max_bytes)))
        if time.monotonic() > deadline:
            raise timed_out(shown, timeout)
        chunks.append(chunk)
    return b"".join(chunks)


def timed_out(shown: str, timeout: float) -> FetchError:
    """The error for a download of ``shown`` that took longer than ``timeout``."""
    return FetchError(
        f"could not fetch {shown}: no complete answer within {timeout:g} s; "
        "check the address or allow more time"
    )


def describe_error(exc: httpx.HTTPError) -> str:
    """An HTTP failure in a few words, for a one-line message."""
    if isinstance(exc, httpx.ConnectError):
        return f"connection failed ({one_line(exc, 100) or 'refused'})"
    if isinstance(exc, httpx.TooManyRedirects):
        return f"more than {MAX_REDIRECTS} redirects"
    return one_line(exc, 120) or type(exc).__name__
