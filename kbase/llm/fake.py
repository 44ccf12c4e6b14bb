"""Deterministic stand-ins for the LLM: a scripted one for unit tests, and the
"fake world" registered as the ``fake`` backend for tests and fake-model benchmarks.

:class:`ScriptedLLM` answers each request with a handler: text for :meth:`generate`,
a mapping choice -> log-probability for :meth:`score`. Token counts are words
(whitespace-separated), and ``cached_tokens`` counts the leading words shared with
the previous prompt, mimicking a prefix cache, so accounting code sees realistic,
reproducible numbers.

The fake world's facts are sentences of the form "SUBJECT is OBJECT.": extraction
returns the sentences of a chunk; a stored fact "S is O" is FALSE after an article
that says "S is P" with P != O, and its rewrite is "S is P."; answers cite the first
fact. It reads the structured ``fields`` of a request, never the prompt text, so it
is a pure function of the request, as the recorded replay assumes.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from typing import Any

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


_SENTENCE = re.compile(r"[^.!?]+[.!?]")


def sentences(text: str) -> list[str]:
    """The sentences of ``text`` the fake world extracts as facts."""
    return [s.strip() for s in _SENTENCE.findall(text) if len(s.strip()) >= 5]


def subject_and_object(sentence: str) -> tuple[str, str] | None:
    if " is " not in sentence:
        return None
    subject, obj = sentence.rstrip(".!?").split(" is ", 1)
    return subject.strip().casefold(), obj.strip().casefold()


def contradiction(chunk: str, fact: str) -> str | None:
    """The chunk's sentence that gives the fact's subject another object, if any."""
    parsed = subject_and_object(fact)
    if parsed is None:
        return None
    for sentence in sentences(chunk):
        other = subject_and_object(sentence)
        if other and other[0] == parsed[0] and other[1] != parsed[1]:
            return sentence
    return None


def world(request: LLMRequest) -> str | Mapping[str, float]:
    """The fake world's answer to any request kbase sends."""
    fields = request.fields
    task = request.task
    if task == "extract":
        return json.dumps({"facts": sentences(fields["chunk"])})
    if task == "verdict":
        false = contradiction(fields["chunk"], fields["fact"]) is not None
        return {"TRUE": math.log(0.1 if false else 0.9), "FALSE": math.log(0.9 if false else 0.1)}
    if task == "verdicts":
        return json.dumps(
            {
                "verdicts": [
                    "FALSE" if contradiction(fields["chunk"], f) else "TRUE"
                    for f in fields["facts"]
                ]
            }
        )
    if task == "paper_verdict":
        if contradiction(fields["chunk"], fields["fact"]):
            verdict = "make_false"
        elif fields["fact"].casefold() in fields["chunk"].casefold():
            verdict = "reinforce"
        else:
            verdict = "no_change"
        return json.dumps({"reasoning": "The article is about the fact.", "verdict": verdict})
    if task == "rewrite":
        return json.dumps({"rewrite": contradiction(fields["chunk"], fields["fact"])})
    if task == "answer":
        # The fake world knows what its nearest fact says, and nothing else.
        return json.dumps({"known": True, "answer": fields["facts"][0], "citations": [1]})
    if task == "choice":
        top = fields["facts"][0].casefold() if fields["facts"] else ""
        letters = request.choices or ()
        scores = {
            letter: (0.0 if c.casefold() in top else -5.0)
            for letter, c in zip(letters, fields["choices"], strict=True)
        }
        if fields.get("allow_unknown") and max(scores.values()) < 0:
            scores[letters[-1]] = 0.0  # the last choice: "the facts do not say"
        return scores
    raise ValueError(f"the fake world has no answer for task {task!r}")


def world_llm(*, logprobs: bool = True) -> ScriptedLLM:
    """A new fake-world model (with log-probabilities, or without: then verdicts
    are generated, as on a server that gives none)."""
    return ScriptedLLM(world, model_id="fake", supports_logprobs=logprobs)


_COMPANIES = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay")
_ROLES = ("CEO", "CFO", "city", "founder")
_NAMES = ("Bob", "Alice", "Carol", "Dana", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy")


def world_news(n: int, *, prefix: str = "d", seed: int = 7) -> list[dict[str, Any]]:
    """``n`` dated JSONL records (``id``, ``title``, ``url``, ``published``, ``text``)
    in the fake world's "S is O." form, a day apart; later ones contradict earlier
    ones often, so ingesting them edits facts and forgetting one replays others."""
    rng = random.Random(seed)
    start = date(2024, 1, 1)
    records = []
    for i in range(n):
        sentences = []
        for _ in range(3):
            role, company = rng.choice(_ROLES), rng.choice(_COMPANIES)
            sentences.append(f"The {role} of {company} is {rng.choice(_NAMES)}.")
        records.append(
            {
                "id": f"{prefix}{i:02d}",
                "title": f"News {i}",
                "url": f"https://news.example.org/{prefix}{i:02d}",
                "published": (start + timedelta(days=i)).isoformat(),
                "text": " ".join(sentences) + "\n\n" + f"Item {i} of the batch is news.",
            }
        )
    return records
