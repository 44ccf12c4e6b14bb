"""Running the server: ``kb serve`` (HTTP, with uvicorn) and ``kb mcp`` (stdio)."""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from kbase.errors import ConfigError
from kbase.server.guard import is_loopback
from kbase.server.service import Service
from kbase.sources.base import DEFAULT_MAX_BYTES

log = logging.getLogger("kbase.server")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8321


def check_binding(host: str, token: str | None) -> None:
    """Safe by default: a server reachable from other machines needs a token."""
    if token is not None and not token.strip():
        raise ConfigError("the token is empty: give --token a secret (or set KBASE_TOKEN)")
    if not is_loopback(host) and token is None:
        raise ConfigError(
            f"binding to {host} serves other machines: give --token SECRET (or set "
            "KBASE_TOKEN), which every request must send as Authorization: Bearer SECRET"
        )


def uvicorn_config(
    service: Service,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BYTES,
    log_level: str = "info",
) -> Any:
    """The uvicorn configuration of the HTTP server over ``service``."""
    import uvicorn

    from kbase.server.app import create_app

    check_binding(host, token)
    app = create_app(service, host=host, token=token, max_body_bytes=max_body_bytes)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        # Two header-reading rounds of a slow client, not a request's whole duration.
        timeout_keep_alive=5,
        server_header=False,
    )


def serve_http(service: Service, **options: Any) -> None:
    """Serve ``service`` over HTTP until interrupted (see :func:`uvicorn_config`),
    the models loaded first: a model that cannot load fails here, not mid-request."""
    import uvicorn

    config = uvicorn_config(service, **options)
    service.warm()
    # Ctrl-C: uvicorn finishes the requests in flight, shuts down, then re-raises it.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run()


def _warm(service: Service) -> None:
    try:
        service.warm()
    except Exception as exc:  # the first tool call reports it to the client
        log.warning("the models did not load: %s", " ".join(str(exc).split()))


def serve_stdio(service: Service, *, warm: bool = True) -> None:
    """Serve the MCP tools over standard input and output until the client leaves.
    The models load in the background, so the client's handshake is answered at once."""
    import anyio

    from kbase.server.mcp_server import build_mcp

    if warm:
        threading.Thread(target=_warm, args=(service,), name="kbase-warm", daemon=True).start()
    anyio.run(build_mcp(service).run_stdio_async)
