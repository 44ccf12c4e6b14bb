"""How ``benchmarks.qa`` scores a run: accuracy on each kind of question, what
letting the model abstain costs the answerable ones, and the facts the stream
made false that a store still holds as current at its end.

A question whose gold is ``"unknown"`` (or that is marked ``"unknown": true``) is
answered correctly only by abstaining (``kb.choose`` returns None); any other is
answered correctly only by its gold choice.

A change (one line of ``changes.jsonl``) names a statement the stream made false
and the words that every fact stating it contains (``stale_keywords``; ``a|b``
accepts either) and words that make a fact historical instead (``not_if``). A
current fact that contains every keyword and none of the ``not_if`` words, as
whole words and case-insensitively, still states the stale statement.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

UNKNOWN = "unknown"


def is_unknown(question: dict[str, Any]) -> bool:
    """Whether the store cannot know the answer at the time of asking (gold "unknown")."""
    return bool(question.get("unknown")) or question["answer"] == UNKNOWN


def is_correct(question: dict[str, Any], chosen: str | None) -> bool:
    """An abstention (None) is right on an unanswerable question, the gold choice on
    any other."""
    return chosen is None if is_unknown(question) else chosen == question["answer"]


def load_changes(path: Path) -> list[dict[str, Any]]:
    """The changes of a stream; a line without keywords is an error, since it could
    never be counted."""
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    for row in rows:
        if not row.get("stale_keywords") or not row.get("stale"):
            raise ValueError(f"{path}: change {row.get('id')!r} needs 'stale' and 'stale_keywords'")
    return rows


def _says(text: str, word: str) -> bool:
    return any(
        re.search(r"(?<!\w)" + re.escape(w.strip()) + r"(?!\w)", text, re.IGNORECASE)
        for w in word.split("|")
        if w.strip()
    )


def states(fact: str, change: dict[str, Any]) -> bool:
    """Whether ``fact`` still states the change's stale statement."""
    return all(_says(fact, k) for k in change["stale_keywords"]) and not any(
        _says(fact, w) for w in change.get("not_if", ())
    )


def stale_report(changes: Sequence[dict[str, Any]], current: Iterable[str]) -> dict[str, Any]:
    """How many changes a store missed: those a current fact still states, with the
    facts, for inspection."""
    facts = list(current)
    missed = []
    for change in changes:
        found = [f for f in facts if states(f, change)]
        if found:
            missed.append(
                {
                    "id": change.get("id"),
                    "made_false_by": change.get("made_false_by"),
                    "stale": change["stale"],
                    "facts": found,
                }
            )
    n = len(changes)
    return {
        "changes": n,
        "still_current": len(missed),
        "rate": round(len(missed) / n, 4) if n else None,
        "current_facts": len(facts),
        "items": missed,
    }


def accuracy(answers: Sequence[dict[str, Any]]) -> float | None:
    """The share of correct answers (None when there are none)."""
    return round(sum(a["correct"] for a in answers) / len(answers), 4) if answers else None


def _share(answers: Sequence[dict[str, Any]], key: str) -> float | None:
    return round(sum(bool(a[key]) for a in answers) / len(answers), 4) if answers else None


def summary(
    answers: Sequence[dict[str, Any]], plain: Sequence[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Accuracy overall, on changed and unchanged answerable questions, on
    answerable and unanswerable ones, per date of asking, and the abstention rate on
    answerable ones. With ``plain`` (the answerable questions asked again without
    abstention), the same accuracies without abstention and the cost in points."""
    answerable = [a for a in answers if not a["unknown"]]
    steps: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for a in answers:
        steps[a["asked_at"]].append(a)
    out: dict[str, Any] = {
        "accuracy": accuracy(answers),
        "accuracy_changed": accuracy([a for a in answerable if a["changed"]]),
        "accuracy_unchanged": accuracy([a for a in answerable if not a["changed"]]),
        "accuracy_answerable": accuracy(answerable),
        "accuracy_unanswerable": accuracy([a for a in answers if a["unknown"]]),
        "abstention_rate_answerable": _share(answerable, "abstained"),
        "accuracy_by_step": {k: accuracy(v) for k, v in sorted(steps.items())},
        "questions": len(answers),
        "answerable": len(answerable),
        "unanswerable": len(answers) - len(answerable),
    }
    if plain is not None:
        with_abstention = out["accuracy_answerable"]
        without = accuracy(plain)
        out["no_abstention"] = {
            "accuracy_answerable": without,
            "accuracy_changed": accuracy([a for a in plain if a["changed"]]),
            "accuracy_unchanged": accuracy([a for a in plain if not a["changed"]]),
            "abstention_cost": (
                None
                if without is None or with_abstention is None
                else round(without - with_abstention, 4)
            ),
        }
    return out
