"""The MCP server (the official ``mcp`` SDK): the knowledge base as tools for agents.

Tools: ``ask``, ``search``, ``ingest`` (documents, or a URL under the URL
policy), ``forget``, ``history`` and ``feeds`` (list, add, remove, poll), with typed
inputs and outputs (the output schemas are the API's models, so a tool gives what
the matching endpoint gives), answers carrying their citations (document ids,
titles, urls, dates). ``kb mcp`` serves them over stdio; ``kb serve`` at ``/mcp``
(streamable HTTP), behind the same token as the rest of the server. Errors come
back as tool errors with the one-line message the CLI prints.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import Field
from starlette.routing import BaseRoute

from kbase.errors import KbaseError
from kbase.server.models import (
    AnswerOut,
    DocumentIn,
    FeedsChangeOut,
    FeedsToolOut,
    ForgetReceipt,
    HistoryOut,
    IngestOut,
    PollOut,
    SearchOut,
    package_version,
    source_documents,
)
from kbase.server.service import Service
from kbase.sources.base import DEFAULT_MAX_BYTES

T = TypeVar("T")

INSTRUCTIONS = (
    "kbase is a knowledge base of facts extracted from news documents. It edits itself "
    "as documents arrive (a later article can make an earlier fact false) and forgets a "
    "document exactly. Use `ask` for an answer with citations (optionally as of a past "
    "date), `search` for the stored facts nearest a query, `history` for every version "
    "of a fact, `ingest` to add documents (as text, or by URL), `forget` to remove one as "
    "if never seen, and `feeds` to list, add, remove or poll the news feeds it follows."
)


def _one_line(text: str) -> str:
    return " ".join(text.split())


async def _tool(call: Awaitable[T]) -> T:
    """A tool's work; a kbase error becomes a tool error with its one-line message."""
    try:
        return await call
    except ToolError:
        raise
    except KbaseError as exc:
        raise ToolError(_one_line(str(exc))) from None
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ToolError(f"unexpected {type(exc).__name__}: {_one_line(first)}") from exc


def build_mcp(service: Service, *, max_body_bytes: int = DEFAULT_MAX_BYTES) -> MCPServer[Any]:
    """An MCP server whose tools call ``service``."""
    server: MCPServer[Any] = MCPServer(
        "kbase", instructions=INSTRUCTIONS, version=package_version(), log_level="WARNING"
    )

    @server.tool(name="ask", title="Ask the knowledge base")
    async def ask(
        question: Annotated[str, Field(min_length=1, description="The question.")],
        as_of: Annotated[
            date | None, Field(description="Answer as the knowledge base stood on this date.")
        ] = None,
        k: Annotated[int | None, Field(ge=1, le=100, description="Facts to retrieve.")] = None,
    ) -> AnswerOut:
        """Answer a question from the stored facts, now or as of a date, with the
        documents it cites (id, title, url, publication date)."""
        answer = await _tool(service.ask(question, k=k, as_of=as_of))
        return AnswerOut.of_answer(answer)

    @server.tool(name="search", title="Search the facts")
    async def search(
        query: Annotated[str, Field(min_length=1, description="The query.")],
        k: Annotated[int | None, Field(ge=1, le=100, description="Facts to retrieve.")] = None,
        as_of: Annotated[date | None, Field(description="Only facts valid on this date.")] = None,
    ) -> SearchOut:
        """The stored facts nearest a query, best first, each with the document it
        came from (no LLM)."""
        return SearchOut.of_hits(await _tool(service.search(query, k=k, as_of=as_of)))

    @server.tool(name="ingest", title="Add documents")
    async def ingest(
        documents: Annotated[
            list[DocumentIn] | None,
            Field(description="Documents: {id, text, title?, url?, published?}."),
        ] = None,
        url: Annotated[
            str | None,
            Field(description="Or an http(s) URL to fetch: a feed, a page, text or JSONL."),
        ] = None,
        id: Annotated[
            str | None, Field(description="With url: the id of its one document.")
        ] = None,
    ) -> IngestOut:
        """Store documents, given as text or fetched from a URL (http(s) only; no
        loopback or private address unless the server allows them); each edits the
        facts it reinforces, makes false or rewrites, at its place in publication
        order."""

        async def run() -> IngestOut:
            if (documents is None) == (url is None):
                raise ToolError("give either documents or url")
            if url is not None:
                report = await service.ingest_url(url, doc_id=id, max_bytes=max_body_bytes)
            else:
                assert documents is not None
                parsed = source_documents(documents, max_chars=max_body_bytes)
                report = await service.ingest(parsed)
            return IngestOut.of(report.to_dict())

        return await _tool(run())

    @server.tool(name="forget", title="Forget documents")
    async def forget(
        doc_ids: Annotated[
            list[str], Field(min_length=1, description="Ids of the documents to forget.")
        ],
    ) -> ForgetReceipt:
        """Forget documents exactly: the knowledge base becomes what it would be had
        they never been ingested. The receipt says what was removed, restored and
        replayed, and whether the index and SQL agree after it."""
        report, check = await _tool(service.forget(doc_ids))
        return ForgetReceipt.of_reports(report, check)

    @server.tool(name="history", title="A fact's history")
    async def history(
        fact_id: Annotated[int, Field(description="Id of any version of the fact.")],
    ) -> HistoryOut:
        """Every version of a fact, oldest first: when each was valid and the
        documents that created, reinforced and closed it."""
        versions = await _tool(service.history(fact_id))
        return HistoryOut.of({"versions": [v.to_dict() for v in versions]})

    @server.tool(name="feeds", title="News feeds")
    async def feeds(
        action: Annotated[
            Literal["list", "add", "remove", "poll"],
            Field(description="list them, add or remove urls, or poll every feed now."),
        ] = "list",
        urls: Annotated[
            list[str] | None, Field(description="For add and remove: feed addresses.")
        ] = None,
    ) -> FeedsToolOut:
        """The news feeds kbase follows: list them (last fetch, last new item,
        errors), subscribe to or unsubscribe from http(s) feeds, or poll every feed
        now (new and updated items are ingested). Gives the subscriptions after."""

        async def run() -> FeedsToolOut:
            out: dict[str, Any] = {"action": action}
            if action in ("add", "remove"):
                if not urls:
                    raise ToolError(f"{action} needs urls: give the feeds' addresses")
                change = await (
                    service.subscribe(urls) if action == "add" else service.unsubscribe(urls)
                )
                out["change"] = FeedsChangeOut.of(change.to_dict())
            elif action == "poll":
                out["poll"] = PollOut.of((await service.poll(max_bytes=max_body_bytes)).to_dict())
            out["feeds"] = [r.to_dict() for r in await service.feeds()]
            return FeedsToolOut.of(out)

        return await _tool(run())

    return server


@dataclass
class MountedMCP:
    """The MCP server's streamable HTTP endpoint, for the HTTP app to serve: its
    routes, and the session manager the app's lifespan must run."""

    server: MCPServer[Any]
    routes: list[BaseRoute]
    session_manager: StreamableHTTPSessionManager


def mount_mcp(
    service: Service, *, path: str = "/mcp", max_body_bytes: int = DEFAULT_MAX_BYTES
) -> MountedMCP:
    """The MCP endpoint at ``path``. The HTTP app's guard checks the token, the Host
    and the Origin of every request, so the SDK's own DNS-rebinding check is off."""
    server = build_mcp(service, max_body_bytes=max_body_bytes)
    app = server.streamable_http_app(
        streamable_http_path=path,
        max_request_body_size=max_body_bytes,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    return MountedMCP(server, list(app.routes), server.session_manager)
