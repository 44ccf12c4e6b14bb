"""The server over real HTTP on 127.0.0.1: uvicorn in a thread on a free port, an
httpx client, the fake models (and, marked ``real``, the embedded ones)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
import uvicorn
from click.testing import CliRunner
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel

from cli import cli
from kbase.config import Settings
from kbase.errors import ConfigError
from kbase.llm.base import LLMBackend, LLMRequest, LLMResponse
from kbase.llm.fake import world_llm
from kbase.locking import writer_lock
from kbase.server import models
from kbase.server.app import create_app
from kbase.server.run import check_binding
from kbase.server.service import Service
from tests.helpers import ACME_ALICE, ACME_BOB, ACME_CEO

FAKE = Settings(embedder="fake", llm="fake")
CEO = "Who is the chief executive of Acme?"
BOB = {
    "id": "bob",
    "title": "Acme names Bob Marsh",
    "url": "https://news.example.org/bob",
    "published": "2024-01-08",
    "text": "The chief executive of Acme is Bob Marsh.",
}
ALICE = {
    "id": "alice",
    "title": "Acme replaces Bob Marsh with Alice Chen",
    "url": "https://news.example.org/alice",
    "published": "2024-05-02",
    "text": "The chief executive of Acme is Alice Chen.",
}


@contextmanager
def live(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
    """``app`` served by uvicorn on a free port of ``host``; yields its base URL on
    127.0.0.1."""
    config = uvicorn.Config(app, host=host, port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


@contextmanager
def served(
    folder: Path,
    *,
    backend: Callable[[], LLMBackend] | None = None,
    settings: Settings = FAKE,
    **options: Any,
) -> Iterator[tuple[httpx.Client, Service]]:
    service = Service.open(folder, settings=settings, backend=backend)
    try:
        with (
            live(create_app(service, **options)) as url,
            httpx.Client(base_url=url, timeout=60) as client,
        ):
            yield client, service
    finally:
        service.close()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[httpx.Client, Service]]:
    with served(tmp_path / "kb") as both:
        yield both


@pytest.fixture
def client(api: tuple[httpx.Client, Service]) -> httpx.Client:
    return api[0]


def ingest(client: httpx.Client, *documents: dict[str, str]) -> dict[str, Any]:
    response = client.post("/documents", json=list(documents))
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def assert_error(response: httpx.Response, status: int, *words: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"] and "\n" not in body["error"]
    assert "Traceback" not in body["error"]
    for word in words:
        assert word in body["error"], body["error"]
    message: str = body["error"]
    return message


# -- questions ------------------------------------------------------------------------
def test_ask_now_and_as_of_a_date_with_citations(api: tuple[httpx.Client, Service]) -> None:
    client, service = api
    report = ingest(client, BOB, ALICE)
    assert [d["doc_id"] for d in report["stored"]] == ["bob", "alice"]
    assert report["stored"][1]["facts_rewritten"] == 1

    now = client.post("/ask", json={"question": CEO})
    assert now.status_code == 200, now.text
    assert "Alice Chen" in now.json()["answer"]
    assert now.json()["citations"][0] == {
        "doc_id": "alice",
        "title": ALICE["title"],
        "url": ALICE["url"],
        "published": "2024-05-02",
    }
    # The same JSON as `kb ask --json`.
    assert now.json() == service.writer.ask(CEO).to_dict()

    past = client.post("/ask", json={"question": CEO, "as_of": "2024-03-01", "k": 3})
    assert "Bob Marsh" in past.json()["answer"]
    assert [c["doc_id"] for c in past.json()["citations"]] == ["bob"]


def test_search_now_and_as_of(client: httpx.Client) -> None:
    ingest(client, BOB, ALICE)
    hits = client.get("/search", params={"q": "chief executive of Acme", "k": 3}).json()
    assert hits["facts"][0]["citation"]["url"] == ALICE["url"]
    assert set(hits["facts"][0]) == {"id", "text", "doc_id", "score", "citation"}
    past = client.get("/search", params={"q": "chief executive of Acme", "as_of": "2024-03-01"})
    assert [f["doc_id"] for f in past.json()["facts"]] == ["bob"]
    before = client.get("/search", params={"q": "Acme", "as_of": "2023-01-01"}).json()
    assert before == {"facts": []}


# -- documents ------------------------------------------------------------------------
def test_documents_list_show_and_forget_with_a_receipt(api: tuple[httpx.Client, Service]) -> None:
    client, service = api
    ingest(client, BOB, ALICE)
    listed = client.get("/documents").json()
    assert [d["doc_id"] for d in listed] == ["bob", "alice"]
    assert listed == [d.to_dict() for d in service.writer.documents()]

    shown = client.get("/documents/alice").json()
    assert shown["text"] == ALICE["text"] and shown["version"] == 1
    assert [e["relation"] for e in shown["edits"]] == ["rewritten", "created"]

    receipt = client.delete("/documents/alice")
    assert receipt.status_code == 200, receipt.text
    body = receipt.json()
    assert body["forgotten"] == ["alice"] and body["facts_restored"] == 1
    assert body["facts_removed"] >= 1
    assert body["verify_ok"] is True and body["verify_problems"] == []
    assert "Bob Marsh" in client.post("/ask", json={"question": CEO}).json()["answer"]
    assert_error(client.get("/documents/alice"), 404, "alice")
    assert_error(client.delete("/documents/alice"), 404, "alice")


def test_document_ids_with_slashes_and_odd_characters(client: httpx.Client) -> None:
    doc = {**BOB, "id": "https://news.example.org/2024/01/bob?x=1"}
    ingest(client, doc)
    quoted = httpx.URL("/documents/").join(
        "https%3A%2F%2Fnews.example.org%2F2024%2F01%2Fbob%3Fx%3D1"
    )
    assert client.get(str(quoted)).json()["doc_id"] == doc["id"]
    assert client.delete(str(quoted)).json()["forgotten"] == [doc["id"]]


def test_facts_and_a_facts_history(client: httpx.Client) -> None:
    ingest(client, BOB, ALICE)
    current = client.get("/facts").json()
    assert [f["text"] for f in current] == ["The chief executive of Acme is Alice Chen."]
    every = client.get("/facts", params={"all": "true"}).json()
    bob = next(f for f in every if "Bob" in f["text"])
    assert bob["current"] is False and bob["close_reason"] == "rewritten"
    assert client.get("/facts", params={"doc": "bob", "all": "true"}).json() == [bob]
    assert client.get("/facts", params={"limit": 1, "all": "true"}).json() == every[:1]

    versions = client.get(f"/facts/{bob['id']}/history").json()["versions"]
    assert [v["current"] for v in versions] == [False, True]
    assert versions[0]["closed_by"] == "alice"
    assert versions[0]["valid_from"] == {"seq": 1, "doc_id": "bob", "published": "2024-01-08"}
    assert versions[1]["replaces"] == bob["id"]
    assert {"relation": "created", "doc_id": "alice", "published": "2024-05-02"} in versions[1][
        "evidence"
    ]
    assert_error(client.get("/facts/999999/history"), 404, "999999")


def test_stats_and_health(client: httpx.Client) -> None:
    health = client.get("/health").json()
    assert health["ok"] is True and health["llm"] == "fake" and health["embedder"] == "fake"
    ingest(client, BOB, ALICE)
    stats = client.get("/stats").json()
    assert stats["documents"] == 2 and stats["facts_current"] == 1
    assert stats["facts_closed"] == 1 and stats["index_vectors"] == 2
    assert "per_document" not in stats
    per = client.get("/stats", params={"documents": "true"}).json()["per_document"]
    assert [d["doc_id"] for d in per] == ["bob", "alice"]


def test_the_openapi_schema_lists_every_endpoint(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["info"]["title"] == "kbase"
    assert {
        "/ask": {"post"},
        "/search": {"get"},
        "/documents": {"get", "post"},
        "/documents/url": {"post"},
        "/documents/{doc_id}": {"get", "delete"},
        "/facts": {"get"},
        "/facts/{fact_id}/history": {"get"},
        "/feeds": {"get", "post", "delete"},
        "/feeds/poll": {"post"},
        "/stats": {"get"},
        "/health": {"get"},
    } == {path: set(ops) for path, ops in schema["paths"].items()}
    assert "422" not in json.dumps(schema["paths"])
    assert "DocumentIn" in schema["components"]["schemas"]


def test_the_web_page_is_served_from_the_package(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/static/app.js"' in page.text
    script = client.get("/static/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert client.get("/static/style.css").status_code == 200
    assert_error(client.get("/static/../app.py"), 404)


def undeclared(model: BaseModel, where: str = "") -> list[str]:
    """Keys of a validated output that its model (or a nested one) does not declare."""
    out = [f"{where}{key}" for key in model.model_extra or {}]
    for name in type(model).model_fields:
        value = getattr(model, name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, BaseModel):
                out += undeclared(item, f"{where}{name}.")
    return out


def test_the_models_declare_every_key_the_reports_give(client: httpx.Client) -> None:
    """A report that gained a key passes it through, but the schemas must say so."""
    report = ingest(client, BOB, ALICE)
    fact = client.get("/facts", params={"all": "true"}).json()[0]["id"]
    outputs: list[tuple[type[BaseModel], Any]] = [
        (models.IngestOut, report),
        (models.AnswerOut, client.post("/ask", json={"question": CEO}).json()),
        (models.SearchOut, client.get("/search", params={"q": "Acme"}).json()),
        (models.DocumentDetailOut, client.get("/documents/alice").json()),
        (models.HistoryOut, client.get(f"/facts/{fact}/history").json()),
        (models.StatsOut, client.get("/stats", params={"documents": "true"}).json()),
        (models.ForgetReceipt, client.delete("/documents/alice").json()),
    ]
    outputs += [(models.DocumentOut, d) for d in client.get("/documents").json()]
    outputs += [(models.FactOut, f) for f in client.get("/facts").json()]
    for model, data in outputs:
        assert undeclared(model.model_validate(data)) == [], model.__name__


# -- errors ---------------------------------------------------------------------------
def test_bad_requests_are_one_line_errors(client: httpx.Client) -> None:
    assert_error(client.post("/ask", json={"question": CEO, "as_of": "March"}), 400, "as_of")
    assert_error(client.post("/ask", json={"question": CEO, "k": 0}), 400, "k")
    assert_error(client.post("/ask", json={}), 400, "question")
    assert_error(client.get("/search", params={"q": "x", "k": "many"}), 400, "k")
    assert_error(client.get("/search"), 400, "q")
    assert_error(
        client.post("/ask", content=b"{not json", headers={"content-type": "application/json"}),
        400,
        "JSON",
    )
    assert_error(client.post("/documents", json=[{"id": "x"}]), 400, "text")
    assert_error(client.post("/documents", json=[]), 400, "no documents")
    bad_date = {**BOB, "published": "someday"}
    assert_error(client.post("/documents", json=[bad_date]), 400, "published")
    assert_error(client.post("/documents", json=[BOB, BOB]), 400, "already used")
    control = {**BOB, "id": "bad\x1bid"}
    assert_error(client.post("/documents", json=[control]), 400, "control character")
    assert_error(client.post("/documents", json=[{**BOB, "colour": "red"}]), 400, "colour")
    # JSON only: a form or text/plain body (what a cross-site form can send) is refused.
    as_text = {"content-type": "text/plain"}
    assert_error(client.post("/documents", content=json.dumps([BOB]), headers=as_text), 400)
    assert_error(client.get("/no-such-page"), 404)
    assert_error(client.put("/documents"), 405)
    assert client.get("/documents").json() == []  # nothing was stored


def test_a_write_while_another_process_writes_is_503(api: tuple[httpx.Client, Service]) -> None:
    client, service = api
    service.writer.runtime.lock_timeout = 0.2
    runtime = service.writer.runtime
    with writer_lock(runtime.folder, runtime.engine):
        response = client.post("/documents", json=[BOB])
    assert_error(response, 503, "writing to the knowledge base")
    assert response.headers["retry-after"] == "5"
    ingest(client, BOB)  # and once it is done, the write goes through


def test_cross_origin_writes_and_foreign_hosts_are_refused(client: httpx.Client) -> None:
    evil = {"origin": "http://evil.example"}
    assert_error(client.post("/documents", json=[BOB], headers=evil), 403, "cross-origin")
    assert_error(client.delete("/documents/bob", headers=evil), 403)
    own = str(client.base_url).rstrip("/")
    assert client.post("/documents", json=[BOB], headers={"origin": own}).status_code == 200
    # DNS rebinding: a name that resolves to 127.0.0.1 but is not ours.
    assert_error(client.get("/documents", headers={"host": "evil.example"}), 421)
    assert client.get("/documents", headers={"host": "localhost:1"}).status_code == 200


# -- limits and the token -------------------------------------------------------------
def test_request_bodies_are_size_limited(tmp_path: Path) -> None:
    with served(tmp_path / "kb", max_body_bytes=2000) as (client, _service):
        big = {**BOB, "text": "The chief executive of Acme is Bob Marsh. " * 100}
        assert_error(client.post("/documents", json=[big]), 413, "2000 bytes")

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            yield b"["
            for _ in range(20):
                yield json.dumps(BOB).encode() + b","
            yield json.dumps(BOB).encode() + b"]"

        response = client.post(
            "/documents", content=chunks(), headers={"content-type": "application/json"}
        )
        assert_error(response, 413, "2000 bytes")
        ingest(client, BOB)
        assert [d["doc_id"] for d in client.get("/documents").json()] == ["bob"]


def test_binding_off_loopback_needs_a_token() -> None:
    check_binding("127.0.0.1", None)
    check_binding("localhost", None)
    check_binding("::1", None)
    for host in ("0.0.0.0", "192.168.1.5", "example.org", "::"):
        with pytest.raises(ConfigError, match="--token"):
            check_binding(host, None)
    with pytest.raises(ConfigError, match="empty"):
        check_binding("0.0.0.0", " ")
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0"], env={"KBASE_TOKEN": None})
    assert isinstance(result.exception, ConfigError)


def test_the_token_is_checked_on_every_request(tmp_path: Path) -> None:
    service = Service.open(tmp_path / "kb", settings=FAKE)
    app = create_app(service, host="0.0.0.0", token="s3cret")
    try:
        with live(app, host="0.0.0.0") as url, httpx.Client(base_url=url) as client:
            for path in ("/health", "/documents", "/openapi.json", "/", "/mcp"):
                response = client.get(path)
                assert_error(response, 401, "Authorization: Bearer")
                assert "Bearer" in response.headers.get_list("www-authenticate")
            assert_error(client.get("/health", headers={"authorization": "Bearer wrong"}), 401)
            assert_error(client.get("/health", headers={"authorization": "s3cret"}), 401)
            good = {"authorization": "Bearer s3cret"}
            assert client.get("/health", headers=good).json()["ok"] is True
            assert client.post("/documents", json=[BOB], headers=good).status_code == 200
            # The page's login dialog (HTTP Basic): any user name, the token as password.
            assert client.get("/documents", auth=("me", "s3cret")).status_code == 200
            assert_error(client.get("/documents", auth=("me", "nope")), 401)
    finally:
        service.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_kb_serve_runs_the_server_with_the_global_options(tmp_path: Path) -> None:
    folder = tmp_path / "kb"
    CliRunner().invoke(cli, ["--kb", str(folder), "init", "--embedder", "fake"])
    port = free_port()
    command = [sys.executable, "-c", "from cli import main; main()"]
    command += ["--kb", str(folder), "--llm", "fake", "serve", "--port", str(port)]
    env = {k: v for k, v in os.environ.items() if k != "KBASE_TOKEN"}
    server = subprocess.Popen(
        command, cwd=Path(__file__).parents[1], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            try:
                health = httpx.get(f"{url}/health").json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "kb serve did not start"
                time.sleep(0.1)
        assert health["ready"] is True and health["llm"] == "fake"
        assert httpx.post(f"{url}/documents", json=[BOB, ALICE]).status_code == 200
        answer = httpx.post(f"{url}/ask", json={"question": CEO}).json()
        assert "Alice Chen" in answer["answer"]
    finally:
        server.send_signal(signal.SIGINT)
        _out, errors = server.communicate(timeout=30)
    assert server.returncode == 0, errors
    assert "Traceback" not in errors
    # What the server stored is the knowledge base the other commands see.
    listed = CliRunner().invoke(cli, ["--kb", str(folder), "docs", "list", "--json"])
    assert [d["doc_id"] for d in json.loads(listed.output)] == ["bob", "alice"]


# -- concurrency ----------------------------------------------------------------------
class GatedLLM(LLMBackend):
    """The fake world, whose first request waits for the test to open the gate."""

    model_id = "fake"
    supports_logprobs = True

    def __init__(self) -> None:
        self.inner = world_llm()
        self.entered = threading.Event()
        self.gate = threading.Event()

    def generate(self, request: LLMRequest) -> LLMResponse:
        self._wait()
        return self.inner.generate(request)

    def score(self, request: LLMRequest) -> LLMResponse:
        self._wait()
        return self.inner.score(request)

    def _wait(self) -> None:
        self.entered.set()
        assert self.gate.wait(60), "the test never opened the gate"


def test_reads_run_while_a_write_is_in_progress_and_writes_queue(tmp_path: Path) -> None:
    llm = GatedLLM()
    llm.gate.set()
    with served(tmp_path / "kb", backend=lambda: llm) as (client, _service):
        ingest(client, BOB)
        llm.gate.clear()
        llm.entered.clear()
        results: dict[str, httpx.Response] = {}

        def post(name: str, doc: dict[str, str]) -> None:
            results[name] = client.post("/documents", json=[doc])

        first = threading.Thread(target=post, args=("alice", ALICE))
        first.start()
        assert llm.entered.wait(30), "the ingest never reached the model"
        second = threading.Thread(
            target=post, args=("carol", {**ALICE, "id": "carol", "text": "Acme is a maker."})
        )
        second.start()
        # The writer is inside the model call: every read still answers at once.
        started = time.monotonic()
        hits = client.get("/search", params={"q": "chief executive of Acme"}).json()
        assert [f["doc_id"] for f in hits["facts"]] == ["bob"]
        assert [d["doc_id"] for d in client.get("/documents").json()] == ["bob"]
        assert client.get("/stats").json()["documents"] == 1
        assert len(client.get("/facts").json()) == 1
        assert time.monotonic() - started < 10
        assert "alice" not in results and "carol" not in results
        llm.gate.set()
        first.join(30)
        second.join(30)
    assert results["alice"].status_code == 200, results["alice"].text
    assert results["carol"].status_code == 200, results["carol"].text


def test_the_model_loads_once_for_every_knowledge_base_of_the_service(tmp_path: Path) -> None:
    made: list[LLMBackend] = []

    def backend() -> LLMBackend:
        made.append(world_llm())
        return made[-1]

    with served(tmp_path / "kb", backend=backend) as (client, service):
        assert client.get("/health").json()["ready"] is False
        service.warm()
        assert client.get("/health").json()["ready"] is True
        ingest(client, BOB, ALICE)
        client.post("/ask", json={"question": CEO})
        client.delete("/documents/alice")
    assert len(made) == 1


# -- MCP ------------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[1]
TOOLS = {"ask", "search", "ingest", "forget", "history", "feeds"}


def structured(result: CallToolResult) -> Any:
    assert not result.is_error, result.content
    return result.structured_content


def tool_error(result: CallToolResult) -> str:
    assert result.is_error
    [content] = result.content
    assert isinstance(content, TextContent) and "\n" not in content.text
    return content.text


async def the_scenario(client: Client) -> None:
    """What an agent does: list the tools, ingest, ask now and as of, read a
    history, forget with a receipt, ask again; bad calls are tool errors."""
    listed = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(listed) == TOOLS
    ask_schema = listed["ask"].input_schema
    assert ask_schema["required"] == ["question"] and "as_of" in ask_schema["properties"]
    assert listed["ask"].output_schema is not None
    assert "citations" in listed["ask"].output_schema["properties"]

    stored = structured(await client.call_tool("ingest", {"documents": [BOB, ALICE]}))
    assert [d["doc_id"] for d in stored["stored"]] == ["bob", "alice"]

    now = structured(await client.call_tool("ask", {"question": CEO}))
    assert "Alice Chen" in now["answer"]
    assert now["citations"][0] == {
        "doc_id": "alice",
        "title": ALICE["title"],
        "url": ALICE["url"],
        "published": "2024-05-02",
    }
    past = structured(await client.call_tool("ask", {"question": CEO, "as_of": "2024-03-01"}))
    assert "Bob Marsh" in past["answer"] and past["citations"][0]["doc_id"] == "bob"

    hits = structured(await client.call_tool("search", {"query": "chief executive", "k": 2}))
    assert hits["facts"][0]["doc_id"] == "alice"
    versions = structured(await client.call_tool("history", {"fact_id": hits["facts"][0]["id"]}))[
        "versions"
    ]
    assert [v["created_by"] for v in versions] == ["bob", "alice"]
    assert versions[0]["closed_by"] == "alice"

    receipt = structured(await client.call_tool("forget", {"doc_ids": ["alice"]}))
    assert receipt["forgotten"] == ["alice"] and receipt["facts_restored"] == 1
    assert receipt["verify_ok"] is True
    again = structured(await client.call_tool("ask", {"question": CEO}))
    assert "Bob Marsh" in again["answer"]
    listed = structured(await client.call_tool("feeds", {}))
    assert listed["action"] == "list" and listed["feeds"] == []

    assert "alice" in tool_error(await client.call_tool("forget", {"doc_ids": ["alice"]}))
    assert "999" in tool_error(await client.call_tool("history", {"fact_id": 999}))
    assert "published" in tool_error(
        await client.call_tool("ingest", {"documents": [{**BOB, "published": "someday"}]})
    )
    # Arguments that do not fit the input schema: the SDK's own (multi-line) message.
    invalid = await client.call_tool("ask", {"question": CEO, "as_of": "March"})
    assert invalid.is_error and "as_of" in str(invalid.content[0])


def test_the_mcp_tools_over_streamable_http(api: tuple[httpx.Client, Service]) -> None:
    client, _service = api

    async def main() -> None:
        async with Client(str(client.base_url).rstrip("/") + "/mcp") as mcp:
            await the_scenario(mcp)

    anyio.run(main)


def test_the_mcp_endpoint_needs_the_token_too(tmp_path: Path) -> None:
    with served(tmp_path / "kb", token="s3cret") as (client, _service):
        refused = client.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert_error(refused, 401)

        async def main() -> None:
            headers = {"authorization": "Bearer s3cret"}
            async with (
                httpx2.AsyncClient(headers=headers) as http,
                Client(_transport(str(client.base_url).rstrip("/") + "/mcp", http)) as mcp,
            ):
                assert {t.name for t in (await mcp.list_tools()).tools} == TOOLS

        anyio.run(main)


def _transport(url: str, http: httpx2.AsyncClient) -> Any:
    return streamable_http_client(url, http_client=http)


def test_the_mcp_tools_over_stdio(tmp_path: Path) -> None:
    folder = tmp_path / "kb"
    CliRunner().invoke(cli, ["--kb", str(folder), "init", "--embedder", "fake"])
    server = StdioServerParameters(
        command=sys.executable,
        args=["-c", "from cli import main; main()", "--kb", str(folder), "--llm", "fake", "mcp"],
        cwd=ROOT,
    )

    async def main() -> None:
        async with Client(server) as mcp:
            await the_scenario(mcp)

    anyio.run(main)
    listed = CliRunner().invoke(cli, ["--kb", str(folder), "docs", "list", "--json"])
    assert [d["doc_id"] for d in json.loads(listed.output)] == ["bob"]


# -- the real models ------------------------------------------------------------------


@pytest.mark.real
def test_the_acme_scenario_over_http_on_the_real_models(tmp_path: Path) -> None:
    with served(tmp_path / "kb", settings=Settings()) as (client, service):
        service.warm()
        client.timeout = httpx.Timeout(900)
        ingest(client, ACME_BOB, ACME_ALICE)

        now = client.post("/ask", json={"question": ACME_CEO}).json()
        assert "Alice" in now["answer"] and "Bob" not in now["answer"], now
        assert "acme-alice" in [c["doc_id"] for c in now["citations"]]

        then = client.post("/ask", json={"question": ACME_CEO, "as_of": "2024-03-01"}).json()
        assert "Bob" in then["answer"], then
        assert [c["doc_id"] for c in then["citations"]] == ["acme-bob"]

        every = client.get("/facts", params={"all": "true"}).json()
        bob = [
            f
            for f in every
            if "Bob Marsh" in f["text"]
            and "chief executive" in f["text"]
            and f["doc_id"] == "acme-bob"
        ]
        assert bob and not bob[0]["current"], every
        versions = client.get(f"/facts/{bob[0]['id']}/history").json()["versions"]
        assert versions[0]["closed_by"] == "acme-alice"

        receipt = client.delete("/documents/acme-alice").json()
        assert receipt["forgotten"] == ["acme-alice"] and receipt["verify_ok"] is True
        assert receipt["facts_restored"] >= 1

        again = client.post("/ask", json={"question": ACME_CEO}).json()
        assert "Bob" in again["answer"] and "Alice" not in again["answer"], again
        assert [c["doc_id"] for c in again["citations"]] == ["acme-bob"]
