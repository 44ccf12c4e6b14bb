"""What every request passes before it reaches the API, the MCP endpoint or the page:
the token, the Host and Origin checks, and the body size limit.

A pure ASGI middleware (it never buffers a response, so the MCP endpoint's event
streams pass through), answering refusals as the API answers errors:
``{"error": one line}``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import json
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Host names that reach this machine only.
LOOPBACK_NAMES = ("localhost",)
_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` serves this machine only."""
    name = host.strip("[]")
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


async def _refuse(send: Send, status: int, message: str, headers: list[tuple[str, str]]) -> None:
    body = json.dumps({"error": message}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _host_only(host_header: str) -> str:
    """The host name of a Host header value (``[::1]:8321`` -> ``::1``)."""
    return (urlsplit(f"//{host_header}").hostname or "").lower()


class Guard:
    """Refuse, before the app sees them: requests without the token (when one is
    set); on a loopback server, requests naming another Host (DNS rebinding);
    writes from a page of another origin (cross-site requests); and bodies over
    ``max_body_bytes`` (413)."""

    def __init__(
        self, app: ASGIApp, *, token: str | None, loopback: bool, max_body_bytes: int
    ) -> None:
        self.app = app
        self.token = token
        self.loopback = loopback
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if self.loopback and not self.token and not _is_loopback_name(_host_only(host)):
            await _refuse(
                send, 421, "this server answers only requests to 127.0.0.1 or localhost", []
            )
            return
        if self.token is not None and not self._authorised(headers.get("authorization", "")):
            await _refuse(
                send,
                401,
                "missing or wrong token: send the header Authorization: Bearer TOKEN",
                [("www-authenticate", "Bearer"), ("www-authenticate", 'Basic realm="kbase"')],
            )
            return
        if scope["method"] in _UNSAFE_METHODS and not _same_origin(headers.get("origin"), host):
            await _refuse(send, 403, "cross-origin writes are refused: call the API directly", [])
            return
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            await _refuse(send, 413, self._too_large(), [("connection", "close")])
            return
        await self._limited(scope, receive, send)

    def _authorised(self, authorization: str) -> bool:
        assert self.token is not None
        scheme, _, value = authorization.strip().partition(" ")
        given = value.strip()
        if scheme.lower() == "basic":  # the browser's login dialog: any user, the token
            try:
                given = base64.b64decode(given, validate=True).decode().partition(":")[2]
            except (binascii.Error, UnicodeDecodeError):
                return False
        elif scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.encode(), self.token.encode())

    def _too_large(self) -> str:
        return (
            f"the request body is larger than the limit of {self.max_body_bytes} bytes: "
            "send less per request"
        )

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the body on while it fits; past the limit, tell the app the client
        has gone, drop whatever it answers, and answer 413."""
        received = 0
        over = started = False

        async def counted_receive() -> Message:
            nonlocal received, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if over and not started:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except Exception:
            if not over or started:
                raise
        if over and not started:
            await _refuse(send, 413, self._too_large(), [("connection", "close")])


def _is_loopback_name(name: str) -> bool:
    return bool(name) and is_loopback(name)


def _same_origin(origin: str | None, host: str) -> bool:
    """No Origin header (not a browser), or a page of this server itself."""
    if origin is None:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()
