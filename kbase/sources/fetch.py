"""Downloading one http(s) URL: redirects checked, size capped, errors made plain."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from kbase.errors import FetchError, InputError
from kbase.sources.files import too_big
from kbase.sources.messages import one_line, shown_url

#: Redirects followed before giving up.
MAX_REDIRECTS = 5
USER_AGENT = "kbase/0.1 (+knowledge-base ingest)"
_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, "
    "text/html;q=0.8, application/x-ndjson;q=0.8, text/markdown;q=0.8, text/plain;q=0.7, */*;q=0.1"
)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):")
# Schemes that need no "//" to be recognised (single letters are Windows drive names).
_BARE_SCHEMES = frozenset({"file", "data", "ftp", "ftps", "sftp", "mailto", "javascript", "about"})


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


def fetch(url: str, *, max_bytes: int, timeout: float) -> Download:
    """GET ``url`` with at most :data:`MAX_REDIRECTS` http(s) redirects and ``max_bytes`` of body.

    ``timeout`` bounds each network step and the whole download. Connection problems,
    timeouts and non-2xx answers raise :class:`FetchError`.
    """
    check_url(url)
    deadline = time.monotonic() + timeout
    shown = shown_url(url)
    headers = {"User-Agent": USER_AGENT, "Accept": _ACCEPT}
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, headers=headers) as client:
            current = url
            for _ in range(MAX_REDIRECTS + 1):
                with client.stream("GET", current) as response:
                    if response.status_code in _REDIRECTS and "location" in response.headers:
                        current = _redirect_target(shown, current, response.headers["location"])
                        continue
                    if not 200 <= response.status_code < 300:
                        status = f"HTTP {response.status_code} {response.reason_phrase}"
                        raise FetchError(
                            f"could not fetch {shown}: {one_line(status, 80)}; check the address"
                        )
                    data = read_capped(shown, response, max_bytes, deadline, timeout)
                    return Download(current, data, response.headers.get("content-type"))
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


def _redirect_target(shown: str, current: str, location: str) -> str:
    target = urljoin(current, location.strip())
    scheme = urlsplit(target).scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchError(
            f"could not fetch {shown}: it redirects to {shown_url(target)}, "
            "and only http and https redirects are followed"
        )
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
