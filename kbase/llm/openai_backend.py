"""Any OpenAI-compatible chat server over HTTP: ``vllm serve`` in production,
``python -m llama_cpp.server`` on a machine without a GPU.

Structured output. The two servers accept different forms and neither accepts the
other's:

* vLLM documents the OpenAI form ``response_format = {"type": "json_schema",
  "json_schema": {"name": ..., "schema": ...}}`` (its older ``guided_json`` extra
  field was removed in v0.12; ``{"type": "json_object"}`` there means any JSON,
  the schema ignored).
* llama-cpp-python's server (0.3.x) types ``response_format.type`` as ``"text"`` or
  ``"json_object"`` and reads the schema from ``{"type": "json_object", "schema":
  ...}``; it rejects ``"json_schema"`` (a validation error, sent as HTTP 500, whose
  message names ``response_format`` and the allowed ``'json_object'``).

``response_format="auto"`` (the default) therefore sends the OpenAI form first and,
when the server rejects it with a message naming ``response_format`` and
``json_object``, switches this backend to the llama.cpp form for the rest of its
life; such a rejection is not retried. vLLM accepts the OpenAI form, so it never
takes that path and never gets a schema-less ``json_object``. Pass
``"json_schema"`` or ``"json_object"`` to fix the form.

Errors. Connection failures, timeouts, 429 and 5xx are retried with exponential
backoff and end in :class:`ModelUnavailable`; any other 4xx raises
:class:`ModelError` with the server's message at once.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from typing import Any, Literal

import httpx

from kbase.errors import BadModelOutput, ModelError, ModelUnavailable, redact
from kbase.llm.base import MAX_TOKENS, SEED, LLMBackend, LLMRequest, LLMResponse
from kbase.llm.scoring import TOP_LOGPROBS, check_choices, fill_missing, match_token_text

API_KEY_ENV = "KBASE_LLM_API_KEY"
DEFAULT_TIMEOUT = 120.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 0.5
#: The longest wait a server's Retry-After may impose before the next try.
MAX_RETRY_AFTER = 30.0

ResponseFormatStyle = Literal["auto", "json_schema", "json_object"]
RESPONSE_FORMAT_STYLES: tuple[ResponseFormatStyle, ...] = ("auto", "json_schema", "json_object")


class _Retryable(Exception):
    """One failed try worth repeating; ``reason`` ends up in the final message."""

    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait


class OpenAIBackend(LLMBackend):
    """Chat completions from an OpenAI-compatible server at ``base_url`` (``.../v1``).

    ``model`` is the served model name and this backend's ``model_id``; when omitted
    it is read from the server's ``/models`` (which then has to be up). ``retries``
    counts tries in all, the first included.
    """

    supports_logprobs = True

    def __init__(
        self,
        *,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        response_format: ResponseFormatStyle = "auto",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        #: The address as messages show it: a password in the URL never is.
        self.shown_url = redact(self.base_url)
        self.retries = max(1, retries)
        self.backoff = backoff
        self.timeout = timeout
        self._style: ResponseFormatStyle = response_format
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(
            base_url=self.base_url + "/",
            headers=headers,
            timeout=timeout,
            transport=transport,
        )
        self.model_id = model or self._served_model()

    def generate(self, request: LLMRequest) -> LLMResponse:
        body = self._body(request, max_tokens=request.max_tokens)
        if request.schema is None:
            data, seconds = self._post_chat(body)
        else:
            data, seconds = self._post_structured(body, request)
        choice = self._first_choice(data)
        content = self._part(choice, "message").get("content")
        return self._response(data, seconds, text=content if isinstance(content, str) else "")

    def score(self, request: LLMRequest) -> LLMResponse:
        """Log-probability of each choice's first token among the top 20 next tokens.

        A choice whose first token is not listed gets the smallest listed
        log-probability minus :data:`kbase.llm.scoring.MISSING_MARGIN`.
        """
        choices = check_choices(request.choices)
        body = self._body(request, max_tokens=1)
        body.update(logprobs=True, top_logprobs=TOP_LOGPROBS)
        data, seconds = self._post_chat(body)
        top = self._top_logprobs(self._first_choice(data))
        found = {choice: match_token_text(choice, top) for choice in choices}
        return self._response(data, seconds, scores=fill_missing(found, list(top.values())))

    def close(self) -> None:
        self._client.close()

    # -- requests --------------------------------------------------------------

    def _body(self, request: LLMRequest, *, max_tokens: int) -> dict[str, Any]:
        return {
            "model": self.model_id,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "seed": SEED,
        }

    def _post_structured(
        self, body: dict[str, Any], request: LLMRequest
    ) -> tuple[dict[str, Any], float]:
        schema = dict(request.schema or {})
        if self._style != "json_object":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": _schema_name(request.task), "schema": schema},
            }
            try:
                return self._post_chat(body)
            except _Rejected as exc:
                if not (self._style == "auto" and exc.about_format):
                    raise
                self._style = "json_object"
        body["response_format"] = {"type": "json_object", "schema": schema}
        return self._post_chat(body)

    def _post_chat(self, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
        data, seconds = self._call("POST", "chat/completions", body)
        if not isinstance(data, dict):
            raise ModelError(f"LLM server at {self.shown_url} sent an answer that is not an object")
        return data, seconds

    def _served_model(self) -> str:
        data, _ = self._call("GET", "models", None)
        models = data.get("data") if isinstance(data, Mapping) else None
        if isinstance(models, list) and models and isinstance(models[0], Mapping):
            name = models[0].get("id")
            if isinstance(name, str) and name:
                return name
        raise ModelError(
            f"LLM server at {self.shown_url} lists no model: pass the served model name"
        )

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> tuple[Any, float]:
        """One request with retries; returns the decoded JSON and the successful try's time."""
        reason = "no answer"
        for attempt in range(1, self.retries + 1):
            start = time.perf_counter()
            try:
                return self._try(method, path, body), time.perf_counter() - start
            except _Retryable as exc:
                reason = exc.reason
                if attempt < self.retries:
                    delay = self.backoff * 2 ** (attempt - 1)
                    time.sleep(exc.wait if exc.wait is not None else delay)
        tries = "try" if self.retries == 1 else "tries"
        raise ModelUnavailable(
            f"LLM server at {self.shown_url} did not answer after {self.retries} {tries} "
            f"({reason}): start it or check --llm-url"
        )

    def _try(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        try:
            response = self._client.request(method, path, json=body)
        except httpx.TimeoutException:
            raise _Retryable(f"timed out after {self.timeout:g} s") from None
        except httpx.ConnectError as exc:
            raise _Retryable(_connect_reason(exc)) from None
        except httpx.TransportError as exc:
            detail = _one_line(str(exc)) or type(exc).__name__
            raise _Retryable(f"connection error: {detail}") from None
        status = response.status_code
        if status >= 400:
            message = _error_message(response)
            about_format = "response_format" in message and "json_object" in message
            if (status == 429 or status >= 500) and not about_format:
                raise _Retryable(f"HTTP {status}: {message}", _retry_after(response))
            hint = f" (set {API_KEY_ENV})" if status in (401, 403) else ""
            raise _Rejected(
                f"LLM server at {self.shown_url} rejected the request "
                f"(HTTP {status}){hint}: {message}",
                about_format=about_format,
            )
        try:
            return response.json()
        except ValueError:
            raise ModelError(
                f"LLM server at {self.shown_url} answered {path} with something other than JSON"
            ) from None

    # -- responses -------------------------------------------------------------

    def _first_choice(self, data: Any) -> Mapping[str, Any]:
        choices = data.get("choices") if isinstance(data, Mapping) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
            raise ModelError(f"LLM server at {self.shown_url} sent an answer with no choices")
        return choices[0]

    def _top_logprobs(self, choice: Mapping[str, Any]) -> dict[str, float]:
        content = self._part(choice, "logprobs").get("content") or []
        if not content:
            raise ModelError(
                f"LLM server at {self.shown_url} returned no logprobs: "
                "it cannot score choices (llama_cpp.server needs logits_all, its default)"
            )
        if not isinstance(content, list) or not isinstance(content[0], Mapping):
            raise self._malformed("'logprobs.content' is not a list of objects")
        first = content[0]
        listed = first.get("top_logprobs") or []
        if not isinstance(listed, list):
            raise self._malformed("'top_logprobs' is not a list")
        top: dict[str, float] = {}
        for entry in [first, *listed]:
            if not isinstance(entry, Mapping):
                continue  # an alternative that is not an object says nothing
            token, logprob = entry.get("token"), entry.get("logprob")
            if (
                isinstance(token, str)
                and isinstance(logprob, int | float)
                and math.isfinite(logprob)
                and logprob > top.get(token, -math.inf)
            ):
                top[token] = float(logprob)
        return top

    def _response(
        self,
        data: Mapping[str, Any],
        seconds: float,
        *,
        text: str | None = None,
        scores: Mapping[str, float] | None = None,
    ) -> LLMResponse:
        usage = self._part(data, "usage")
        details = self._part(usage, "prompt_tokens_details")
        return LLMResponse(
            text=text,
            scores=scores,
            prompt_tokens=self._count(usage, "prompt_tokens"),
            cached_tokens=self._count(details, "cached_tokens"),
            completion_tokens=self._count(usage, "completion_tokens"),
            seconds=seconds,
        )

    def _malformed(self, what: str) -> BadModelOutput:
        return BadModelOutput(
            f"LLM server at {self.shown_url} answered a malformed response ({what}): "
            "check that it is OpenAI-compatible"
        )

    def _part(self, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        """``data[key]`` if it is an object, {} if absent; anything else is an error."""
        value = data.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self._malformed(f"{key!r} is not an object")
        return value

    def _count(self, data: Mapping[str, Any], key: str) -> int:
        """A token count: a whole number from 0 to :data:`MAX_TOKENS` (NaN, infinities,
        negative, fractional or absurd counts are a broken server, not accounting)."""
        value = data.get(key) or 0
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._malformed(f"{key!r} is not a number")
        if not (math.isfinite(value) and value == int(value) and 0 <= value <= MAX_TOKENS):
            raise self._malformed(
                f"{key!r} is {value!r}, not a whole number of tokens from 0 to {MAX_TOKENS:,}"
            )
        return int(value)


class _Rejected(ModelError):
    """A 4xx other than 429: not retried, raised as a ModelError with the server's words."""

    def __init__(self, message: str, *, about_format: bool) -> None:
        super().__init__(message)
        self.about_format = about_format


def _schema_name(task: str) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in task)
    return (cleaned or "answer")[:64]


def _one_line(text: str, limit: int = 300) -> str:
    line = redact(" ".join(text.split()))
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _connect_reason(exc: httpx.ConnectError) -> str:
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if "name or service" in text or "nodename" in text or "getaddrinfo" in text:
        return "unknown host"
    return f"cannot connect: {_one_line(str(exc)) or 'connect error'}"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        wait = float(value) if value is not None else None
    except ValueError:
        return None
    return None if wait is None or wait < 0 else min(wait, MAX_RETRY_AFTER)


def _error_message(response: httpx.Response) -> str:
    """The server's own words: ``error.message`` (OpenAI, vLLM), ``detail`` (FastAPI), or text."""
    try:
        data = response.json()
    except ValueError:
        return _one_line(response.text) or response.reason_phrase
    message: Any = data
    if isinstance(data, Mapping):
        error = data.get("error")
        if isinstance(error, Mapping) and error.get("message"):
            message = error["message"]
        elif isinstance(error, str):
            message = error
        elif "detail" in data:
            message = data["detail"]
        elif "message" in data:
            message = data["message"]
    return _one_line(message if isinstance(message, str) else str(message))
