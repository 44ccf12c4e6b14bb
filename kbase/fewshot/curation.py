"""The examples users give: records read from JSONL, and the verdict example a
correction records."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from kbase import prompts
from kbase.errors import InputError
from kbase.fewshot.example import Example
from kbase.fewshot.pool import EXAMPLES_PER_PROMPT
from kbase.hashing import content_hash


def _need(record: dict[str, Any], key: str, where: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: {key!r} must be a non-empty string")
    return value.strip()


def example_from_record(record: Any, where: str) -> Example:
    """An example from one JSONL record: ``{"task": "verdict", "article", "fact",
    "answer": "TRUE"|"FALSE"}``, ``{"task": "rewrite", "article", "fact", "rewrite":
    str|null}`` or ``{"task": "extract", "text", "facts": [...]}``; optional ``id``."""
    if not isinstance(record, dict):
        raise InputError(f"{where}: expected a JSON object")
    task = record.get("task")
    if task == "verdict":
        answer = _need(record, "answer", where).upper()
        if answer not in prompts.VERDICT_CHOICES:
            raise InputError(f"{where}: 'answer' must be TRUE or FALSE")
        user = prompts.verdict_example_user(
            _need(record, "article", where), _need(record, "fact", where)
        )
        assistant = answer
    elif task == "rewrite":
        rewrite = record.get("rewrite")
        if rewrite is not None and not isinstance(rewrite, str):
            raise InputError(f"{where}: 'rewrite' must be a string or null")
        user = prompts.rewrite_example_user(
            _need(record, "article", where), _need(record, "fact", where)
        )
        assistant = json.dumps({"rewrite": rewrite})
    elif task == "extract":
        facts = record.get("facts")
        if not isinstance(facts, list) or not all(isinstance(f, str) for f in facts):
            raise InputError(f"{where}: 'facts' must be a list of strings")
        user = prompts.extract_example_user(_need(record, "text", where), record.get("title"))
        assistant = json.dumps({"facts": facts})
    else:
        raise InputError(f"{where}: 'task' must be one of {', '.join(EXAMPLES_PER_PROMPT)}")
    given = record.get("id")
    example_id = str(given) if given is not None else "user-" + content_hash(user)[7:19]
    return Example(task=task, user=user, assistant=assistant, id=example_id)


def read_examples(path: Path) -> list[Example]:
    """Every example of a JSONL file, or an error naming the first bad line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    out = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{number}: not JSON ({exc.msg})") from None
        except RecursionError:
            raise InputError(f"{path}:{number}: JSON nested too deeply") from None
        out.append(example_from_record(record, f"{path}:{number}"))
    if not out:
        raise InputError(f"{path} has no examples")
    return out


def correction_example(
    fact_id: int,
    fact_text: str,
    *,
    should_be_true: bool,
    chunk: str,
    doc_id: str,
    title: str | None,
    published: datetime | None,
) -> Example:
    """The verdict example that records the right decision about a fact, shown the
    article chunk that judged it."""
    return Example(
        task="verdict",
        user=prompts.verdict_example_user(chunk, fact_text, title=title, published=published),
        assistant="TRUE" if should_be_true else "FALSE",
        id=f"correction-{fact_id}-{doc_id}"[:128],
    )
