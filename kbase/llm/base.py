"""The LLM seam: one request type, one response type, one small base class.

A backend implements :meth:`LLMBackend.generate` (text, optionally constrained to a
JSON schema) and, where it can read next-token log-probabilities, :meth:`LLMBackend.score`.
Everything else (recording and replay, accounting, retries on bad output) lives
above the backend, so every backend behaves the same.

Requests are deterministic: temperature 0 and a fixed seed. A request's
:meth:`LLMRequest.key` hashes everything that can change the answer, so an
identical request can be answered from the record instead of the model.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from kbase.errors import BadModelOutput
from kbase.hashing import canonical_json, content_hash

Role = Literal["system", "user", "assistant"]
SEED = 1234
#: The most tokens one answer may count, prompt or completion (far above any context).
MAX_TOKENS = 10**9


@dataclass(frozen=True)
class Message:
    """One chat message."""

    role: Role
    content: str


@dataclass(frozen=True)
class LLMRequest:
    """Everything a backend needs to answer, and nothing that does not change the answer.

    ``task`` names the prompt (``extract``, ``verdict``, ``rewrite``, ``answer``,
    ``choice``...). ``fields`` carries the structured inputs the prompt was rendered
    from; real backends ignore it, deterministic fakes answer from it. It is not part
    of the key because ``messages`` already contain it.
    """

    task: str
    messages: tuple[Message, ...]
    prompt_version: str
    schema: Mapping[str, Any] | None = None
    choices: tuple[str, ...] | None = None
    max_tokens: int = 256
    fields: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def canonical(self, model: str) -> dict[str, Any]:
        """The request as canonical data, the model identity included."""
        return {
            "model": model,
            "task": self.task,
            "messages": [[m.role, m.content] for m in self.messages],
            "prompt_version": self.prompt_version,
            "schema": self.schema,
            "choices": list(self.choices) if self.choices is not None else None,
            "max_tokens": self.max_tokens,
            "temperature": 0.0,
            "seed": SEED,
        }

    def key(self, model: str) -> str:
        """Content hash of the canonical request: the key of its recorded answer."""
        return content_hash(canonical_json(self.canonical(model)))


@dataclass(frozen=True)
class LLMResponse:
    """A backend's answer with its cost.

    ``text`` is set for generation, ``scores`` (choice -> log-probability of its first
    token) for scoring. ``cached_tokens`` counts prompt tokens the backend reused
    from its prefix cache instead of computing them.
    """

    text: str | None = None
    scores: Mapping[str, float] | None = None
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def __post_init__(self) -> None:
        # Counts add up into every report's totals: one impossible count from a
        # broken backend must be an error here, not a negative or absurd total.
        for name in ("prompt_tokens", "cached_tokens", "completion_tokens"):
            value = getattr(self, name)
            whole = isinstance(value, numbers.Integral) and not isinstance(value, bool)
            if not (whole and 0 <= int(value) <= MAX_TOKENS):
                raise BadModelOutput(
                    f"the model reported {value!r} {name.replace('_', ' ')}: a count must be "
                    f"a whole number from 0 to {MAX_TOKENS:,} (a broken model server?)"
                )
            object.__setattr__(self, name, int(value))
        if not (isinstance(self.seconds, int | float) and 0 <= self.seconds < math.inf):
            raise BadModelOutput(f"the model reported {self.seconds!r} seconds for an answer")

    def to_json(self) -> str:
        return canonical_json(
            {
                "text": self.text,
                "scores": dict(self.scores) if self.scores is not None else None,
                "prompt_tokens": self.prompt_tokens,
                "cached_tokens": self.cached_tokens,
                "completion_tokens": self.completion_tokens,
                "seconds": self.seconds,
            }
        )


class LLMBackend(ABC):
    """A language model. Subclasses implement :meth:`generate`; :meth:`score` is optional."""

    #: The model's name in messages. Recorded answers are keyed by the knowledge
    #: base's model id instead (:func:`kbase.llm.model_id_for`), known without loading.
    model_id: str = "unknown"
    #: True when :meth:`score` reads real next-token log-probabilities.
    supports_logprobs: bool = False

    @abstractmethod
    def generate(self, request: LLMRequest) -> LLMResponse:
        """Generate text for ``request`` (JSON matching ``request.schema`` if given)."""

    def score(self, request: LLMRequest) -> LLMResponse:
        """Log-probability of the first token of each of ``request.choices`` as the next token."""
        raise NotImplementedError(f"{type(self).__name__} cannot score choices")

    def generate_many(self, requests: Sequence[LLMRequest]) -> list[LLMResponse]:
        """Answer several independent requests; backends that batch override this."""
        return [self.generate(r) for r in requests]

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release the model (idempotent)."""
