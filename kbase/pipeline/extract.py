"""Turning a chunk into facts with the LLM, validated before anything is stored."""

from __future__ import annotations

import logging
import re

from kbase import prompts
from kbase.llm.output import parse_json
from kbase.pipeline.context import DocContext

log = logging.getLogger("kbase")

ATTEMPTS = 2
_SPACE = re.compile(r"\s+")


def clean_facts(raw: object) -> list[str] | None:
    """The facts of a model answer, or None if it does not fit the schema.

    Facts are single lines of 5 to 300 characters; exact repeats are dropped.
    """
    if not isinstance(raw, dict) or not isinstance(raw.get("facts"), list):
        return None
    out: list[str] = []
    seen: set[str] = set()
    for item in raw["facts"]:
        if not isinstance(item, str):
            return None
        text = _SPACE.sub(" ", item).strip()
        if not 5 <= len(text) <= 300:
            continue
        if text.casefold() not in seen:
            seen.add(text.casefold())
            out.append(text)
    return out


def extract_facts(ctx: DocContext, chunk_idx: int, chunk: str) -> list[str] | None:
    """Facts of one chunk, or None when the model's answers never fit (the chunk is
    then skipped with a warning: garbage is never stored)."""
    doc = ctx.doc
    for attempt in range(ATTEMPTS):
        request = prompts.extract_request(
            chunk, title=doc.title, published=doc.published, examples=ctx.examples, attempt=attempt
        )
        response = ctx.recorder.generate(request, ctx.ingest_use)
        facts = clean_facts(parse_json(response.text))
        if facts is not None:
            return facts
    message = f"{doc.doc_id}: chunk {chunk_idx + 1} skipped, the model's facts did not parse"
    log.warning(message)
    ctx.report.warnings.append(message)
    ctx.report.chunks_skipped += 1
    return None
