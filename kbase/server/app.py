"""The HTTP API: JSON endpoints over one :class:`~kbase.server.service.Service`, its
OpenAPI schema at ``/openapi.json``, the MCP endpoint at ``/mcp`` and the web page
at ``/``.

Every answer is the JSON ``kb ... --json`` prints for the same request; every
error is ``{"error": one line}`` with a 4xx or 5xx status, never a traceback.
URLs (ingest by URL, feeds) are fetched under the URL policy of
:mod:`kbase.sources.fetch`: http(s) only, and no loopback or private address
unless the server allows them, with the download capped like the request body.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from kbase.errors import (
    BadModelOutput,
    DocumentError,
    InputError,
    KbaseError,
    LockTimeout,
    ModelUnavailable,
    NotFoundError,
)
from kbase.server.guard import Guard, is_loopback
from kbase.server.models import (
    AnswerOut,
    AskIn,
    DocumentDetailOut,
    DocumentIn,
    DocumentOut,
    ErrorOut,
    FactOut,
    FeedsChangeOut,
    FeedsIn,
    FeedsOut,
    ForgetReceipt,
    HealthOut,
    HistoryOut,
    IngestOut,
    PollOut,
    SearchOut,
    StatsOut,
    UrlIn,
    package_version,
    source_documents,
)
from kbase.server.service import Service
from kbase.sources.base import DEFAULT_MAX_BYTES

log = logging.getLogger("kbase.server")
STATIC = Path(__file__).parent / "static"

#: kbase errors and the HTTP status each answers with (the most specific class wins).
STATUS: list[tuple[type[KbaseError], int]] = [
    (NotFoundError, 404),
    (DocumentError, 404),
    (InputError, 400),
    (LockTimeout, 503),
    (ModelUnavailable, 503),
    (BadModelOutput, 502),
]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": text}
    for code, text in [
        (400, "Bad input"),
        (401, "Missing or wrong token"),
        (404, "Unknown id"),
        (413, "Request body too large"),
        (503, "Another writer holds the knowledge base, or the model is unavailable"),
    ]
}


def one_line(text: str) -> str:
    return " ".join(text.split())


def status_of(exc: KbaseError) -> int:
    for kind, status in STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": one_line(message)}, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    problems = []
    for problem in exc.errors()[:3]:
        where = ".".join(str(part) for part in problem.get("loc", ()) if part != "body")
        problems.append(f"{where or 'body'}: {problem.get('msg', 'invalid')}")
    return "; ".join(problems) or "invalid request"


def _install_error_handlers(app: FastAPI) -> None:
    async def kbase_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, KbaseError)
        status = status_of(exc)
        if status >= 500:
            log.warning("%s: %s", type(exc).__name__, exc)
        return error(status, str(exc), {"retry-after": "5"} if status == 503 else None)

    async def invalid(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error(400, _validation_message(exc))

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return error(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises it after this answer, for uvicorn to log the traceback.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return error(500, f"unexpected {type(exc).__name__}: {first} (see the server's log)")

    app.add_exception_handler(KbaseError, kbase_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


def _without_validation_responses(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """The OpenAPI schema without FastAPI's 422 answers: this API answers bad input
    with 400 and ``{"error": ...}`` like every other error."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi


def create_app(
    service: Service,
    *,
    host: str = "127.0.0.1",
    token: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BYTES,
    mcp: bool = True,
) -> Any:
    """The ASGI app serving ``service``, guarded (see :class:`Guard`) for a server
    bound to ``host``. With ``mcp``, the MCP tools are served at ``/mcp``
    (streamable HTTP). The models load on first use, or before with
    :meth:`Service.warm`."""
    from kbase.server.mcp_server import mount_mcp

    mounted = mount_mcp(service, max_body_bytes=max_body_bytes) if mcp else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if mounted is not None:
                await stack.enter_async_context(mounted.session_manager.run())
            yield

    app = FastAPI(
        title="kbase",
        version=package_version(),
        description=(
            "A knowledge base that edits itself as news arrives and forgets documents "
            "exactly. Every answer is what `kb ... --json` prints; every error is "
            '`{"error": "one line"}`.'
        ),
        lifespan=lifespan,
        docs_url=None,  # Swagger UI loads its scripts from a CDN: not offline
        redoc_url=None,
        responses=_ERRORS,
    )
    app.openapi = _without_validation_responses(app)  # type: ignore[method-assign]
    _install_error_handlers(app)
    _add_routes(app, service, max_body_bytes)
    if mounted is not None:
        app.router.routes.extend(mounted.routes)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    return Guard(app, token=token, loopback=is_loopback(host), max_body_bytes=max_body_bytes)


# Query parameters shared by endpoints (module level: FastAPI resolves annotations here).
K = Annotated[int | None, Query(ge=1, le=100, description="Facts to retrieve.")]
AsOf = Annotated[date | None, Query(description="The knowledge base as of this date.")]


def _add_routes(app: FastAPI, service: Service, max_body_bytes: int) -> None:
    @app.post("/ask", response_model=AnswerOut, tags=["questions"])
    async def ask(request: AskIn) -> AnswerOut:
        """Answer a question from the stored facts (now, or as of a date), citing the
        documents behind it."""
        answer = await service.ask(request.question, k=request.k, as_of=request.as_of)
        return AnswerOut.of_answer(answer)

    @app.get("/search", response_model=SearchOut, tags=["questions"])
    async def search(
        q: Annotated[str, Query(min_length=1, description="The query.")],
        k: K = None,
        as_of: AsOf = None,
    ) -> SearchOut:
        """The facts nearest a query, with provenance (no LLM)."""
        return SearchOut.of_hits(await service.search(q, k=k, as_of=as_of))

    @app.post("/documents", response_model=IngestOut, tags=["documents"])
    async def ingest(
        documents: Annotated[list[DocumentIn], Body(description="The documents to store.")],
    ) -> IngestOut:
        """Store documents, each at its place in publication order."""
        parsed = source_documents(documents, max_chars=max_body_bytes)
        return IngestOut.of((await service.ingest(parsed)).to_dict())

    @app.post("/documents/url", response_model=IngestOut, tags=["documents"])
    async def ingest_url(request: UrlIn) -> IngestOut:
        """Fetch a URL (a feed, a page, text or JSONL) and store its documents, as
        `kb ingest URL` does: http(s) only, no loopback or private address unless
        the server allows them, at most the request-body limit downloaded."""
        report = await service.ingest_url(request.url, doc_id=request.id, max_bytes=max_body_bytes)
        return IngestOut.of(report.to_dict())

    @app.get("/documents", response_model=list[DocumentOut], tags=["documents"])
    async def documents() -> list[DocumentOut]:
        """Every stored document, in publication order."""
        return [DocumentOut.of(d.to_dict()) for d in await service.documents()]

    @app.get("/documents/{doc_id:path}", response_model=DocumentDetailOut, tags=["documents"])
    async def document(doc_id: str) -> DocumentDetailOut:
        """A document, its text and the edits it caused."""
        return DocumentDetailOut.of((await service.document(doc_id)).to_dict())

    @app.delete("/documents/{doc_id:path}", response_model=ForgetReceipt, tags=["documents"])
    async def forget(doc_id: str) -> ForgetReceipt:
        """Forget a document exactly, as if it had never been ingested; the receipt
        says what was removed, restored and replayed, and whether `verify` holds."""
        report, check = await service.forget([doc_id])
        return ForgetReceipt.of_reports(report, check)

    @app.get("/facts", response_model=list[FactOut], tags=["facts"])
    async def facts(
        all: Annotated[bool, Query(description="Include retired and rewritten versions.")] = False,
        doc: Annotated[str | None, Query(description="Only facts this document created.")] = None,
        limit: Annotated[int | None, Query(ge=1, description="At most this many.")] = None,
    ) -> list[FactOut]:
        """Current facts (every version with `all`)."""
        rows = await service.facts(include_closed=all, doc_id=doc, limit=limit)
        return [FactOut.of(r.to_dict()) for r in rows]

    @app.get("/facts/{fact_id}/history", response_model=HistoryOut, tags=["facts"])
    async def history(fact_id: int) -> HistoryOut:
        """Every version of a fact, oldest first, and the documents behind each."""
        versions = await service.history(fact_id)
        return HistoryOut.of({"versions": [v.to_dict() for v in versions]})

    @app.get("/feeds", response_model=FeedsOut, tags=["feeds"])
    async def feeds() -> FeedsOut:
        """Every subscribed feed, with its last fetch, last new item and errors."""
        return FeedsOut.of({"feeds": [f.to_dict() for f in await service.feeds()]})

    @app.post("/feeds", response_model=FeedsChangeOut, tags=["feeds"])
    async def subscribe(request: FeedsIn) -> FeedsChangeOut:
        """Subscribe to feeds (`kb feeds add`); polling fetches them."""
        return FeedsChangeOut.of((await service.subscribe(request.urls)).to_dict())

    @app.delete("/feeds", response_model=FeedsChangeOut, tags=["feeds"])
    async def unsubscribe(
        url: Annotated[list[str], Query(min_length=1, description="A feed's address.")],
    ) -> FeedsChangeOut:
        """Unsubscribe from feeds (`kb feeds rm`); the documents they gave stay."""
        return FeedsChangeOut.of((await service.unsubscribe(url)).to_dict())

    @app.post("/feeds/poll", response_model=PollOut, tags=["feeds"])
    async def poll() -> PollOut:
        """Fetch every subscribed feed once and ingest what is new or updated
        (`kb poll`); one feed's failure is reported on it and the others go on."""
        return PollOut.of((await service.poll(max_bytes=max_body_bytes)).to_dict())

    @app.get("/stats", response_model=StatsOut, response_model_exclude_unset=True, tags=["status"])
    async def stats(
        documents: Annotated[bool, Query(description="Each document's LLM accounting.")] = False,
    ) -> StatsOut:
        """Totals: documents, facts, index size, LLM calls and tokens."""
        return StatsOut.of((await service.stats(per_document=documents)).to_dict())

    @app.get("/health", response_model=HealthOut, tags=["status"])
    async def health() -> HealthOut:
        """The server is up (``ready``: its models are loaded)."""
        settings = service.settings
        return HealthOut(
            ok=True,
            ready=service.ready,
            version=package_version(),
            strategy=settings.strategy,
            embedder=settings.embedder,
            llm=settings.llm,
        )
