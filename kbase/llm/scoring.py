"""Turning a next-token distribution into one score per choice.

A backend scores a choice by the log-probability of the choice's first token as
the next token. Where the backend sees only the top of the distribution (the
OpenAI API returns at most 20 alternatives), a choice whose first token is not
among them gets the smallest log-probability seen minus :data:`MISSING_MARGIN`:
a finite score that ranks it below every listed token, as it truly ranks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

#: Natural-log margin below the least likely listed token for an unlisted choice.
MISSING_MARGIN = 1.0
#: How many alternatives to ask for: the most the OpenAI API (and vLLM by default) allow.
TOP_LOGPROBS = 20


def check_choices(choices: Sequence[str] | None) -> tuple[str, ...]:
    """The choices of a score request; raises ValueError when there are none or one is empty."""
    if not choices:
        raise ValueError("a score request needs choices")
    if any(not choice for choice in choices):
        raise ValueError("a choice cannot be the empty string")
    return tuple(choices)


def fill_missing(found: Mapping[str, float | None], listed: Sequence[float]) -> dict[str, float]:
    """Scores for every key of ``found``; ``None`` (not listed) becomes the floor.

    ``listed`` holds the log-probabilities of all tokens the backend returned; the
    floor is the smallest of them (or of the found scores) minus :data:`MISSING_MARGIN`.
    """
    known = [score for score in found.values() if score is not None]
    seen = [*listed, *known]
    floor = (min(seen) if seen else 0.0) - MISSING_MARGIN
    return {choice: floor if score is None else score for choice, score in found.items()}


def match_token_text(choice: str, top: Mapping[str, float]) -> float | None:
    """Log-probability of ``choice``'s first token among ``top`` (token text -> logprob).

    Without the server's tokenizer, the first token of a choice is taken to be the
    longest listed token whose text, leading whitespace stripped, is a prefix of the
    choice (``"TRUE"`` over ``"TR"``); among equally long ones (``"TRUE"``,
    ``" TRUE"``) the likeliest counts. ``None`` when no listed token fits.
    """
    best: tuple[int, float] | None = None
    for text, logprob in top.items():
        stripped = text.lstrip()
        if stripped and choice.startswith(stripped):
            candidate = (len(stripped), logprob)
            if best is None or candidate > best:
                best = candidate
    return None if best is None else best[1]
