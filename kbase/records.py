"""Recorded model answers: every request is answered once and replayed after.

An answer is keyed by the hash of the exact request (model, prompt, schema,
settings). Replaying the ingest log (to forget a document, or to verify the
store) then reaches the model only for requests it has never seen, and a
backend that is not bit-reproducible (vLLM on a GPU) cannot make a replay drift.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from kbase.errors import LockTimeout
from kbase.hashing import canonical_json
from kbase.llm.base import LLMBackend, LLMRequest, LLMResponse
from kbase.llm.output import clean_text
from kbase.store.models import LLMRecord, LLMRecordUse


@dataclass
class CallStats:
    """What a unit of work (a document, a question) asked of the model."""

    calls: int = 0
    model_calls: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def add(self, response: LLMResponse, *, fresh: bool) -> None:
        self.calls += 1
        self.model_calls += int(fresh)
        self.prompt_tokens += response.prompt_tokens
        self.cached_tokens += response.cached_tokens
        self.completion_tokens += response.completion_tokens
        self.seconds += response.seconds

    @property
    def computed_tokens(self) -> int:
        """Tokens the model actually processed: prompt minus prefix cache, plus output."""
        return self.prompt_tokens - self.cached_tokens + self.completion_tokens


Use = tuple[int, str]  # (document pk, role: "ingest" | "context")


class Recorder:
    """Answers requests from the record, or from the backend and records them.

    The backend is created on the first request that is not recorded, so a
    replay that finds every answer never loads the model.
    """

    def __init__(
        self,
        session: Session,
        model_id: str,
        backend: Callable[[], LLMBackend],
        *,
        guard: Callable[[], AbstractContextManager[None]] | None = None,
    ) -> None:
        self.session = session
        #: A reader's recorder: an answer is recorded only inside ``guard()`` (which
        #: raises :class:`LockTimeout` when a writer is busy) and only if no other
        #: process must be waited for; else it is used unrecorded. A writer's has none
        #: and records every answer (it holds the writer lock).
        self.guard = guard
        self.model_id = model_id
        self._backend_factory = backend
        self._backend: LLMBackend | None = None
        #: Accumulates every call until the caller swaps it for a fresh one.
        self.stats = CallStats()
        #: Every call of this recorder's life, for progress reporting.
        self.total = CallStats()
        self.on_call: Callable[[LLMResponse, bool], None] | None = None

    @property
    def backend(self) -> LLMBackend:
        if self._backend is None:
            self._backend = self._backend_factory()
        return self._backend

    @property
    def supports_logprobs(self) -> bool:
        return self.backend.supports_logprobs

    def generate(self, request: LLMRequest, uses: Iterable[Use]) -> LLMResponse:
        return self._answer(request, uses, lambda: self.backend.generate(request))

    def score(self, request: LLMRequest, uses: Iterable[Use]) -> LLMResponse:
        return self._answer(request, uses, lambda: self.backend.score(request))

    def _answer(
        self, request: LLMRequest, uses: Iterable[Use], ask: Callable[[], LLMResponse]
    ) -> LLMResponse:
        key = request.key(self.model_id)
        record = self.session.get(LLMRecord, key)
        fresh = record is None
        if record is None:
            started = time.perf_counter()
            response = ask()
            if response.text is not None:
                response = replace(response, text=clean_text(response.text))
            if response.seconds == 0.0:
                response = _with_seconds(response, time.perf_counter() - started)
            row = {
                "key": key,
                "model": self.model_id,
                "task": request.task,
                "request": canonical_json(request.canonical(self.model_id)),
                "response": response.to_json(),
                "prompt_tokens": response.prompt_tokens,
                "cached_tokens": response.cached_tokens,
                "completion_tokens": response.completion_tokens,
                "seconds": response.seconds,
                "created_at": datetime.now(UTC).replace(tzinfo=None),
            }
            self._record(key, row, uses)
        else:
            response = _response_from_json(record.response)
            self._record(key, None, uses)
        self.stats.add(response, fresh=fresh)
        self.total.add(response, fresh=fresh)
        if self.on_call is not None:
            self.on_call(response, fresh)
        return response

    def _record(self, key: str, row: dict[str, Any] | None, uses: Iterable[Use]) -> None:
        """Record a new answer (``row``) and the uses of an answer. An identical answer
        another process recorded first is kept (the same request has the same answer).
        A reader's record is made in a savepoint, so a failure leaves its transaction
        as it was: when a writer or another reader is busy it is not made."""
        if self.guard is None:
            self._insert_rows(key, row, uses)
            return
        try:
            with self.guard(), self.session.begin_nested():
                self._insert_rows(key, row, uses)
        except (LockTimeout, OperationalError, OSError):
            pass  # a writer holds the store (or it is read-only): given, not recorded

    def _insert_rows(self, key: str, row: dict[str, Any] | None, uses: Iterable[Use]) -> None:
        dialect = self.session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        if row is not None:
            self.session.execute(insert(LLMRecord).values(row).on_conflict_do_nothing())
        rows = [{"key": key, "document_pk": pk, "role": role} for pk, role in set(uses)]
        if rows:
            self.session.execute(insert(LLMRecordUse).values(rows).on_conflict_do_nothing())

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None


def _with_seconds(response: LLMResponse, seconds: float) -> LLMResponse:
    return replace(response, seconds=seconds)


def _response_from_json(text: str) -> LLMResponse:
    data = json.loads(text)
    return LLMResponse(
        text=data.get("text"),
        scores=data.get("scores"),
        prompt_tokens=int(data.get("prompt_tokens", 0)),
        cached_tokens=int(data.get("cached_tokens", 0)),
        completion_tokens=int(data.get("completion_tokens", 0)),
        seconds=float(data.get("seconds", 0.0)),
    )
