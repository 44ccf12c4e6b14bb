"""A deterministic, scripted LLM for unit tests.

The test supplies a handler that answers each request: text for :meth:`generate`,
a mapping choice -> log-probability for :meth:`score`. Token counts are words
(whitespace-separated), and ``cached_tokens`` counts the leading words shared with
the previous prompt, mimicking a prefix cache, so accounting code sees realistic,
reproducible numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from kbase.llm.base import LLMBackend, LLMRequest, LLMResponse

Handler = Callable[[LLMRequest], str | Mapping[str, float]]


def prompt_words(request: LLMRequest) -> list[str]:
    """The words of every message, in order: the fake's prompt tokens."""
    return [word for message in request.messages for word in message.content.split()]


class ScriptedLLM(LLMBackend):
    """Answers every request with ``handler(request)``; records what it was asked."""

    def __init__(
        self,
        handler: Handler,
        *,
        model_id: str = "fake",
        supports_logprobs: bool = True,
    ) -> None:
        self.handler = handler
        self.model_id = model_id
        self.supports_logprobs = supports_logprobs
        #: Every request answered, in order (generate and score alike).
        self.requests: list[LLMRequest] = []
        self._previous: list[str] = []

    @property
    def calls(self) -> int:
        """How many requests were answered."""
        return len(self.requests)

    def generate(self, request: LLMRequest) -> LLMResponse:
        answer = self._ask(request)
        if not isinstance(answer, str):
            raise TypeError(f"the handler answered a generate request ({request.task}) with scores")
        return self._response(request, text=answer, completion_tokens=len(answer.split()))

    def score(self, request: LLMRequest) -> LLMResponse:
        if not self.supports_logprobs:
            return super().score(request)
        if not request.choices:
            raise ValueError("a score request needs choices")
        answer = self._ask(request)
        if isinstance(answer, str):
            raise TypeError(f"the handler answered a score request ({request.task}) with text")
        missing = [c for c in request.choices if c not in answer]
        if missing:
            raise ValueError(f"the handler gave no score for {missing}")
        scores = {choice: float(answer[choice]) for choice in request.choices}
        return self._response(request, scores=scores, completion_tokens=1)

    def _ask(self, request: LLMRequest) -> str | Mapping[str, float]:
        self.requests.append(request)
        return self.handler(request)

    def _response(
        self,
        request: LLMRequest,
        *,
        text: str | None = None,
        scores: Mapping[str, float] | None = None,
        completion_tokens: int,
    ) -> LLMResponse:
        words = prompt_words(request)
        shared = 0
        for new, old in zip(words, self._previous, strict=False):
            if new != old:
                break
            shared += 1
        self._previous = words
        return LLMResponse(
            text=text,
            scores=scores,
            prompt_tokens=len(words),
            cached_tokens=min(shared, max(len(words) - 1, 0)),
            completion_tokens=completion_tokens,
        )
