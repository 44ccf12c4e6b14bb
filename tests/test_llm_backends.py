"""The LLM seam: one conformance suite run against every backend, then each
backend's own edges (the HTTP backend against a misbehaving local server).

Backends in the conformance suite: the scripted fake (always); the embedded model
in llama.cpp and the same model behind ``python -m llama_cpp.server`` (``real``);
vLLM where it is importable and ``KBASE_TEST_VLLM_MODEL`` names a model folder.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import platformdirs
import pytest

from kbase import prompts
from kbase.errors import ConfigError, ModelError, ModelUnavailable
from kbase.llm import (
    BACKENDS,
    BackendEntry,
    LLMBackend,
    LLMRequest,
    Message,
    get_backend,
    register_backend,
)
from kbase.llm.fake import ScriptedLLM
from kbase.llm.llama_cpp_backend import reused_prefix
from kbase.llm.model_files import DEFAULT_MODEL, default_model_path, gguf_model_id
from kbase.llm.openai_backend import OpenAIBackend
from kbase.llm.prefix_states import PrefixStates
from kbase.llm.scoring import MISSING_MARGIN, fill_missing, match_token_text
from kbase.llm.vllm_backend import VllmBackend, structured_output_options

SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
QUESTION = "Is Paris the capital of France? Answer TRUE or FALSE."
# Long enough to fill whole cache blocks: vLLM reuses a prefix in blocks (128 tokens on a CPU).
PREFIX = (
    "Background: the following notes describe the European capitals, their rivers and "
    "their landmarks. Paris lies on the Seine and is known for the Eiffel Tower and the "
    "Louvre. Berlin lies on the Spree and is known for the Brandenburg Gate. Madrid lies "
    "on the Manzanares and is known for the Prado museum. Rome lies on the Tiber and is "
    "known for the Colosseum. Vienna lies on the Danube and is known for its opera house. "
    "Prague lies on the Vltava and is known for the Charles Bridge. Budapest lies on the "
    "Danube and is known for its parliament building. Warsaw lies on the Vistula and is "
    "known for its old town. Lisbon lies on the Tagus and is known for its trams. London "
    "lies on the Thames and is known for the Tower Bridge. Dublin lies on the Liffey and is "
    "known for Trinity College. Bratislava lies on the Danube and is known for its castle. "
    "Ljubljana lies on the Ljubljanica and is known for its dragon bridge. Bern lies on the "
    "Aare and is known for its clock tower. Belgrade lies where the Sava meets the Danube."
)


def ask(text: str, **options: Any) -> LLMRequest:
    """A one-message request; ``fields`` tells the scripted fake the right answer."""
    return LLMRequest(
        task="conformance",
        messages=(Message("user", text),),
        prompt_version="test-1",
        fields={"truth": "TRUE"},
        **options,
    )


def scripted_answer(request: LLMRequest) -> str | Mapping[str, float]:
    truth = str(request.fields.get("truth", "TRUE"))
    if request.choices is not None:
        return {choice: -0.05 if choice == truth else -3.0 for choice in request.choices}
    if request.schema is not None:
        return json.dumps({"answer": truth})
    return truth


def valid_answer(text: str | None) -> bool:
    """Does ``text`` parse and fit :data:`SCHEMA`?"""
    value = json.loads(text or "")
    return isinstance(value, dict) and isinstance(value.get("answer"), str)


# -- backends under test ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def real_model() -> Path:
    """The embedded GGUF, kept in the shared user cache (1.1 GB: not per test)."""
    folder = Path(os.environ.get("KBASE_TEST_MODEL_DIR") or platformdirs.user_cache_dir("kbase"))
    return default_model_path(directory=folder / "models")


@pytest.fixture(scope="session")
def scripted_backend() -> LLMBackend:
    # Registered only while it is made: a name left in the registry would show in
    # the CLI's choices for the rest of the session (and in docs/cli.md's check).
    register_backend("scripted", lambda **_: ScriptedLLM(scripted_answer))
    try:
        return get_backend("scripted")
    finally:
        BACKENDS.pop("scripted", None)


@pytest.fixture(scope="session")
def llama_cpp_backend(real_model: Path) -> Iterator[LLMBackend]:
    backend = get_backend("llama-cpp", model_path=real_model)
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def llama_server(real_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m llama_cpp.server`` on a free port; yields its base URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(real_model),
        "--model_alias", DEFAULT_MODEL.model_id,
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "2048",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:]
                pytest.fail(f"llama_cpp.server exited with {process.returncode}:\n{tail}")
            try:
                if httpx.get(f"{base_url}/models", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server did not answer /v1/models within 90 s")
            time.sleep(0.25)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def openai_backend(llama_server: str) -> Iterator[LLMBackend]:
    backend = get_backend("openai", base_url=llama_server, model=DEFAULT_MODEL.model_id)
    yield backend
    backend.close()


@pytest.fixture(
    params=[
        "scripted",
        pytest.param("llama_cpp", marks=pytest.mark.real),
        pytest.param("openai", marks=pytest.mark.real),
        pytest.param("vllm", marks=pytest.mark.vllm),
    ]
)
def backend(request: pytest.FixtureRequest) -> LLMBackend:
    result: LLMBackend = request.getfixturevalue(f"{request.param}_backend")
    return result


# -- conformance -------------------------------------------------------------------


def test_generate_with_schema_gives_valid_json(backend: LLMBackend) -> None:
    response = backend.generate(ask(f"{QUESTION} Reply in JSON.", schema=SCHEMA, max_tokens=40))
    assert valid_answer(response.text), response.text
    assert response.prompt_tokens > 0
    assert response.completion_tokens > 0
    assert response.seconds >= 0
    assert response.scores is None


def test_score_prefers_the_right_choice(backend: LLMBackend) -> None:
    assert backend.supports_logprobs
    response = backend.score(ask(QUESTION, choices=("TRUE", "FALSE")))
    assert response.scores is not None
    assert set(response.scores) == {"TRUE", "FALSE"}
    assert all(math.isfinite(v) and v <= 0 for v in response.scores.values())
    assert response.scores["TRUE"] > response.scores["FALSE"]
    assert response.prompt_tokens > 0
    assert response.text is None


def test_same_request_twice_gives_the_same_answer(backend: LLMBackend) -> None:
    request = ask("Name the capital of France in one word.", max_tokens=8)
    first, second = backend.generate(request), backend.generate(request)
    assert first.text and first.text == second.text
    assert (first.prompt_tokens, first.completion_tokens) == (
        second.prompt_tokens,
        second.completion_tokens,
    )
    scored = ask(QUESTION, choices=("TRUE", "FALSE"))
    a, b = backend.score(scored).scores, backend.score(scored).scores
    assert a is not None and b is not None
    # Equal up to the float noise of evaluating a cached prompt in another batch shape.
    assert a == pytest.approx(b, abs=0.05)


def test_prompts_sharing_a_prefix_reuse_the_cache(
    backend: LLMBackend, request: pytest.FixtureRequest
) -> None:
    if "openai" in request.node.callspec.id:
        pytest.skip("llama_cpp.server reuses its prefix cache but does not report it")
    first = backend.generate(ask(f"{PREFIX}\nWhich river runs through Rome?", max_tokens=4))
    second = backend.generate(ask(f"{PREFIX}\nWhich river runs through Berlin?", max_tokens=4))
    assert first.prompt_tokens > 50
    assert second.cached_tokens > 50
    assert second.cached_tokens < second.prompt_tokens


def test_generate_many_answers_in_order(backend: LLMBackend) -> None:
    requests = [ask(f"Say the word {word} and nothing else.", max_tokens=4) for word in "AB"]
    batch = backend.generate_many(requests)
    assert [r.text for r in batch] == [backend.generate(r).text for r in requests]


def test_score_needs_choices(backend: LLMBackend) -> None:
    with pytest.raises(ValueError, match="needs choices"):
        backend.score(ask(QUESTION))
    assert backend.model_id


@pytest.mark.real
def test_llama_cpp_generate_and_score_render_the_same_prompt(
    llama_cpp_backend: LLMBackend,
) -> None:
    request = ask(QUESTION, choices=("TRUE", "FALSE"), max_tokens=4)
    generated = llama_cpp_backend.generate(request)
    scored = llama_cpp_backend.score(request)
    assert scored.prompt_tokens == generated.prompt_tokens
    # All of the prompt but its last token (evaluated again for fresh logits) is reused.
    assert scored.cached_tokens == scored.prompt_tokens - 1


@pytest.mark.real
def test_server_scores_match_in_process_scores(
    llama_cpp_backend: LLMBackend, openai_backend: LLMBackend
) -> None:
    request = ask(QUESTION, choices=("TRUE", "FALSE", "Maybe"))
    local, remote = llama_cpp_backend.score(request).scores, openai_backend.score(request).scores
    assert local is not None and remote is not None
    # Same weights and template; Q4 kernels differ slightly between a full prefill and a
    # one-token replay of a cached prompt, which moves unlikely tokens by up to ~0.1.
    assert local["TRUE"] == pytest.approx(remote["TRUE"], abs=0.25)
    assert local["FALSE"] == pytest.approx(remote["FALSE"], abs=0.25)
    assert gguf_model_id(Path(DEFAULT_MODEL.filename)) == llama_cpp_backend.model_id
    assert openai_backend.model_id == llama_cpp_backend.model_id


# -- registry ----------------------------------------------------------------------


def test_unknown_backend_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        get_backend("gpt-9")
    message = str(info.value)
    assert message.startswith("unknown LLM backend 'gpt-9': choose one of ")
    assert all(name in message for name in ("llama-cpp", "openai", "vllm"))


def test_registered_fake_comes_back_from_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        BACKENDS, "echo", BackendEntry(lambda *, word="hi": ScriptedLLM(lambda _: word))
    )
    backend = get_backend("echo", word="hello")
    assert backend.generate(ask("anything")).text == "hello"
    with pytest.raises(ConfigError, match="bad options for LLM backend 'echo'"):
        get_backend("echo", colour="red")


def test_openai_backend_options() -> None:
    with pytest.raises(ConfigError, match="--llm-url"):
        get_backend("openai")
    with pytest.raises(ConfigError, match="choose one of auto, json_schema, json_object"):
        get_backend("openai", base_url="http://127.0.0.1:9/v1", response_format="xml")
    backend = get_backend("openai", base_url="http://127.0.0.1:9/v1", model="m", retries=1)
    assert backend.model_id == "m" and backend.supports_logprobs
    backend.close()


def test_vllm_backend_needs_a_model() -> None:
    with pytest.raises(ConfigError, match="needs a model"):
        get_backend("vllm")


def test_missing_vllm_names_the_extra() -> None:
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match=r"pip install 'kbase\[vllm\]'"):
            get_backend("vllm", model="some/model")
    else:
        pytest.skip("vllm is installed here")


def test_missing_model_file_is_a_config_error(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    with pytest.raises(ConfigError, match="does not exist"):
        get_backend("llama-cpp", model_path=tmp_path / "absent.gguf")


def test_importing_the_seam_loads_no_heavy_module() -> None:
    code = (
        "import sys, kbase.llm;"
        "print([m for m in ('llama_cpp', 'torch', 'vllm', 'httpx') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


# -- pieces of the real backends -----------------------------------------------------


def test_reused_prefix_follows_llama_cpp() -> None:
    assert reused_prefix([], [1, 2, 3], logits_live=True) == 0
    assert reused_prefix([1, 2, 9, 9], [1, 2, 3], logits_live=True) == 2
    # A prompt wholly cached still has its last token evaluated again...
    assert reused_prefix([1, 2, 3, 4], [1, 2, 3], logits_live=True) == 2
    assert reused_prefix([1, 2, 3], [1, 2, 3], logits_live=False) == 2
    # ...unless the cache holds exactly it with fresh logits.
    assert reused_prefix([1, 2, 3], [1, 2, 3], logits_live=True) == 3


def test_model_id_from_file_name() -> None:
    assert gguf_model_id(Path("/m/Qwen2.5-0.5B-Instruct.Q4_K_M.gguf")) == (
        "qwen2.5-0.5b-instruct.q4_k_m"
    )
    assert gguf_model_id(Path(DEFAULT_MODEL.filename)) == DEFAULT_MODEL.model_id


def test_choice_matching_on_token_text() -> None:
    top = {"TRUE": -0.1, " TRUE": -3.0, "T": -4.0, "FALSE": -2.0, "Paris": -5.0}
    assert match_token_text("TRUE", top) == -0.1
    assert match_token_text("FALSE", top) == -2.0
    assert match_token_text("TRUTHY", top) == -4.0  # only "T" fits
    assert match_token_text("maybe", top) is None
    filled = fill_missing({"TRUE": -0.1, "maybe": None}, list(top.values()))
    assert filled == {"TRUE": -0.1, "maybe": -5.0 - MISSING_MARGIN}


def test_vllm_structured_outputs_by_feature() -> None:
    new = SimpleNamespace(StructuredOutputsParams=lambda json: ("new", json))
    old = SimpleNamespace(GuidedDecodingParams=lambda json: ("old", json))
    assert structured_output_options(new, SCHEMA) == {"structured_outputs": ("new", SCHEMA)}
    assert structured_output_options(old, SCHEMA) == {"guided_decoding": ("old", SCHEMA)}
    with pytest.raises(ModelError, match="no structured outputs"):
        structured_output_options(SimpleNamespace(), SCHEMA)


def test_vllm_engine_is_asked_for_compact_json(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    class LLM:  # the engine's constructor, as vLLM 0.32 spells it
        def __init__(self, model: str, structured_outputs_config: Any = None, **kw: Any) -> None:
            seen.update(model=model, structured_outputs_config=structured_outputs_config, **kw)

    sampling = SimpleNamespace()
    monkeypatch.setitem(sys.modules, "vllm", SimpleNamespace(LLM=LLM, sampling_params=sampling))
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", sampling)
    VllmBackend(model="some/model", dtype="float32")
    assert seen["structured_outputs_config"]["disable_any_whitespace"] is True
    assert (seen["model"], seen["dtype"]) == ("some/model", "float32")


def test_scripted_llm_counts_and_accounts() -> None:
    llm = ScriptedLLM(lambda r: "two words")
    first = llm.generate(ask("one two three four"))
    second = llm.generate(ask("one two three five"))
    assert llm.calls == 2
    assert (first.prompt_tokens, first.completion_tokens, first.cached_tokens) == (4, 2, 0)
    assert second.cached_tokens == 3
    with pytest.raises(TypeError, match="with text"):
        llm.score(ask("x", choices=("a",)))
    no_scores = ScriptedLLM(lambda r: "x", supports_logprobs=False)
    with pytest.raises(NotImplementedError):
        no_scores.score(ask("x", choices=("a",)))


# -- the HTTP backend against a misbehaving server ---------------------------------


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


def chat_reply(content: str = '{"answer": "yes"}', **usage: Any) -> Reply:
    return Reply(
        body={
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 5, **usage},
        }
    )


@dataclass
class FakeServer:
    """Answers each request with the next scripted reply (the last one repeats)."""

    url: str
    replies: list[Reply]
    seen: list[tuple[str, str, Any, dict[str, str]]] = field(default_factory=list)

    def next_reply(self) -> Reply:
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


@pytest.fixture
def fake_server() -> Iterator[Callable[..., FakeServer]]:
    servers: list[ThreadingHTTPServer] = []

    def start(*replies: Reply) -> FakeServer:
        state = FakeServer(url="", replies=list(replies) or [chat_reply()])

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                state.seen.append((self.command, self.path, body, dict(self.headers)))
                reply = state.next_reply()
                if reply.delay:
                    time.sleep(reply.delay)
                payload = (
                    reply.body.encode() if isinstance(reply.body, str)
                    else json.dumps(reply.body).encode()
                )  # fmt: skip
                try:
                    self.send_response(reply.status)
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = _answer
            do_POST = _answer

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        servers.append(server)
        threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
        state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        return state

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def http_backend(url: str, **options: Any) -> OpenAIBackend:
    settings: dict[str, Any] = {"model": "served", "backoff": 0.01, **options}
    return OpenAIBackend(base_url=url, **settings)


def test_connection_refused_becomes_model_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    backend = http_backend(url)
    start = time.perf_counter()
    with pytest.raises(ModelUnavailable) as info:
        backend.generate(ask("hi"))
    backend.close()
    assert str(info.value) == (
        f"LLM server at {url} did not answer after 3 tries (connection refused): "
        "start it or check --llm-url"
    )
    assert time.perf_counter() - start < 2


def test_one_server_error_is_retried(fake_server: Callable[..., FakeServer]) -> None:
    server = fake_server(Reply(500, {"error": {"message": "busy"}}), chat_reply())
    backend = http_backend(server.url)
    response = backend.generate(ask("hi"))
    backend.close()
    assert response.text == '{"answer": "yes"}'
    assert (response.prompt_tokens, response.completion_tokens) == (12, 5)
    assert len(server.seen) == 2


def test_rate_limit_is_retried(fake_server: Callable[..., FakeServer]) -> None:
    server = fake_server(Reply(429, {"error": "slow down"}, headers={"Retry-After": "0"}))
    server.replies.append(chat_reply())
    backend = http_backend(server.url)
    assert backend.generate(ask("hi")).text == '{"answer": "yes"}'
    backend.close()


def test_persistent_server_errors_give_up(fake_server: Callable[..., FakeServer]) -> None:
    server = fake_server(Reply(503, {"error": {"message": "model is loading"}}))
    backend = http_backend(server.url, retries=3)
    start = time.perf_counter()
    with pytest.raises(ModelUnavailable) as info:
        backend.generate(ask("hi"))
    backend.close()
    assert len(server.seen) == 3
    assert "after 3 tries (HTTP 503: model is loading)" in str(info.value)
    assert time.perf_counter() - start < 2


def test_slow_server_times_out(fake_server: Callable[..., FakeServer]) -> None:
    server = fake_server(Reply(delay=1.0, body={"choices": []}))
    backend = http_backend(server.url, timeout=0.2, retries=2)
    with pytest.raises(ModelUnavailable, match=r"after 2 tries \(timed out after 0.2 s\)"):
        backend.generate(ask("hi"))
    backend.close()


def test_bad_request_is_not_retried(fake_server: Callable[..., FakeServer]) -> None:
    server = fake_server(Reply(400, {"error": {"message": "max_tokens is\ntoo large"}}))
    backend = http_backend(server.url)
    with pytest.raises(ModelError) as info:
        backend.generate(ask("hi"))
    backend.close()
    assert not isinstance(info.value, ModelUnavailable)
    assert str(info.value) == (
        f"LLM server at {server.url} rejected the request (HTTP 400): max_tokens is too large"
    )
    assert len(server.seen) == 1


def test_unauthorized_points_at_the_key(
    fake_server: Callable[..., FakeServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KBASE_LLM_API_KEY", "secret-token")
    server = fake_server(Reply(401, {"detail": "bad key"}))
    backend = http_backend(server.url)
    with pytest.raises(ModelError, match=r"HTTP 401\) \(set KBASE_LLM_API_KEY\): bad key"):
        backend.generate(ask("hi"))
    backend.close()
    assert server.seen[0][3]["Authorization"] == "Bearer secret-token"


def test_request_shape_and_cached_tokens(fake_server: Callable[..., FakeServer]) -> None:
    server = fake_server(chat_reply(prompt_tokens_details={"cached_tokens": 7}))
    backend = http_backend(server.url)
    response = backend.generate(ask("hi", schema=SCHEMA, max_tokens=33))
    backend.close()
    assert response.cached_tokens == 7
    method, path, body, _ = server.seen[0]
    assert (method, path) == ("POST", "/v1/chat/completions")
    assert body["model"] == "served"
    assert body["temperature"] == 0.0 and body["seed"] == 1234 and body["max_tokens"] == 33
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "conformance", "schema": SCHEMA},
    }


def test_llama_cpp_server_schema_form_is_learned(fake_server: Callable[..., FakeServer]) -> None:
    refusal = (
        "1 validation error: {'type': 'literal_error', 'loc': ('body', 'response_format', "
        "'type'), 'msg': \"Input should be 'text' or 'json_object'\"}"
    )
    server = fake_server(Reply(500, {"error": {"message": refusal}}), chat_reply())
    backend = http_backend(server.url)
    backend.generate(ask("hi", schema=SCHEMA))
    backend.generate(ask("again", schema=SCHEMA))
    backend.close()
    formats = [seen[2]["response_format"] for seen in server.seen]
    assert formats[0]["type"] == "json_schema"
    assert formats[1:] == [{"type": "json_object", "schema": SCHEMA}] * 2


def test_score_reads_top_logprobs(fake_server: Callable[..., FakeServer]) -> None:
    top = [{"token": "TRUE", "logprob": -0.2}, {"token": "Yes", "logprob": -2.5}]
    body = {
        "choices": [
            {
                "message": {"role": "assistant", "content": "TRUE"},
                "logprobs": {"content": [{"token": "TRUE", "logprob": -0.2, "top_logprobs": top}]},
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 1},
    }
    server = fake_server(Reply(body=body))
    backend = http_backend(server.url)
    response = backend.score(ask(QUESTION, choices=("TRUE", "FALSE")))
    backend.close()
    assert response.scores == {"TRUE": -0.2, "FALSE": -2.5 - MISSING_MARGIN}
    sent = server.seen[0][2]
    assert (sent["logprobs"], sent["top_logprobs"], sent["max_tokens"]) == (True, 20, 1)


def test_model_name_is_asked_when_not_given(fake_server: Callable[..., FakeServer]) -> None:
    server = fake_server(Reply(body={"object": "list", "data": [{"id": "qwen-served"}]}))
    backend = OpenAIBackend(base_url=server.url + "/")
    backend.close()
    assert backend.model_id == "qwen-served"
    assert server.seen[0][:2] == ("GET", "/v1/models")


def test_answer_that_is_not_json(fake_server: Callable[..., FakeServer]) -> None:
    server = fake_server(Reply(body="<html>proxy error</html>"))
    backend = http_backend(server.url)
    with pytest.raises(ModelError, match="something other than JSON"):
        backend.generate(ask("hi"))
    backend.close()


ARTICLE = (
    "Millbrook's council approved a new bus route on Monday. The route links the "
    "railway station with the hospital and starts running in March."
)


@pytest.mark.real
def test_a_new_process_resumes_the_shared_prefix_from_its_saved_state(
    real_model: Path, tmp_path: Path
) -> None:
    states = PrefixStates(tmp_path / "states")
    request = prompts.extract_request(ARTICLE, title="A new bus route", published=None)
    first = get_backend("llama-cpp", model_path=real_model, prefix_states=states)
    try:
        computed = first.generate(request)
    finally:
        first.close()
    assert len(states.keys()) == 1
    assert computed.cached_tokens == 0  # the prefix was computed, then saved

    # Another backend (as in a new process) loads the prefix instead of computing it,
    # and answers the same: the state holds exactly the prefix's tokens.
    second = get_backend("llama-cpp", model_path=real_model, prefix_states=states)
    try:
        loaded = second.generate(request)
    finally:
        second.close()
    assert loaded.text == computed.text
    assert loaded.prompt_tokens == computed.prompt_tokens
    assert 800 <= loaded.cached_tokens < loaded.prompt_tokens

    # A damaged file is dropped and the prefix computed again.
    (key,) = states.keys()
    states.save(key, b"not a state")
    third = get_backend("llama-cpp", model_path=real_model, prefix_states=states)
    try:
        again = third.generate(request)
    finally:
        third.close()
    assert again.text == computed.text
    assert again.cached_tokens == 0
    assert states.load(key) not in (None, b"not a state")


def test_saved_prefix_states_keep_the_most_recently_used_and_clear_at_once(
    tmp_path: Path,
) -> None:
    states = PrefixStates(tmp_path / "states", max_files=2)
    assert states.load("a1") is None and states.keys() == []
    for key in ("a1", "b2", "c3"):
        states.save(key, key.encode())
        time.sleep(0.01)  # distinct modification times
    assert states.keys() == ["b2", "c3"]  # a1, the least recently used, went
    assert states.load("b2") == b"b2"
    assert states.keys() == ["c3", "b2"]
    with pytest.raises(ValueError, match="bad state key"):
        states.load("../kbase.db")
    states.clear()
    assert states.keys() == [] and not (tmp_path / "states").exists()
