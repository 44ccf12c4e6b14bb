"""A few-shot example and the examples each prompt shows (a leaf: prompts and the
pool both build on it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    """A worked example: the user turn and the ideal assistant answer."""

    task: str
    user: str
    assistant: str
    id: str = ""


#: The examples each prompt shows, by task.
Chosen = Mapping[str, Sequence[Example]]
