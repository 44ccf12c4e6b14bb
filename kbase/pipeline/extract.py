"""Turning a chunk into facts with the LLM, validated before anything is stored."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from kbase import prompts
from kbase.llm.output import parse_json
from kbase.pipeline import wording
from kbase.pipeline.context import DocContext

ATTEMPTS = 2
_SPACE = re.compile(r"\s+")
#: How much of a set-aside sentence a warning quotes.
_QUOTED = 80


@dataclass(frozen=True)
class Shown:
    """What the model is shown of one chunk: the chunk and the document's title, less
    what they address to the model (:func:`kbase.pipeline.wording.screen`)."""

    chunk: wording.Screened
    title: str | None

    @property
    def text(self) -> str:
        return self.chunk.text

    @property
    def about(self) -> str:
        """The title and the chunk: what the guards read for names."""
        return f"{self.title or ''}\n{self.chunk.text}"

    @property
    def set_aside(self) -> tuple[str, ...]:
        return self.chunk.set_aside

    @cached_property
    def lines(self) -> list[str]:
        """The chunk's sentences, then the title: what the guards read one by one."""
        return wording.sentences(self.chunk.text) + ([self.title] if self.title else [])


def shown(ctx: DocContext, chunk: str) -> Shown:
    """The chunk and title as every prompt about ``chunk`` shows them (a pure function
    of the document, so a replay shows the same)."""
    title = ctx.doc.title
    screened_title = wording.screen(title) if title else None
    screened = wording.screen(chunk)
    if screened_title is not None and screened_title.set_aside:
        screened = wording.Screened(screened.text, screened_title.set_aside + screened.set_aside)
        title = screened_title.text or None
    return Shown(screened, title)


def clean_facts(raw: object) -> list[str] | None:
    """The facts of a model answer, or None if it does not fit the schema.

    Facts are single lines of 5 to 300 characters; exact repeats are dropped, and
    so is every fact past :data:`prompts.MAX_FACTS_PER_CHUNK`.
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
            if len(out) == prompts.MAX_FACTS_PER_CHUNK:
                break
    return out


def _quote(text: str) -> str:
    return repr(text if len(text) <= _QUOTED else text[: _QUOTED - 3] + "...")


def extract_facts(ctx: DocContext, chunk_idx: int, chunk: str) -> list[str] | None:
    """Facts of one chunk, or None when the model's answers never fit (the chunk is
    then skipped with a warning: garbage is never stored).

    Sentences the chunk or title addresses to the model are set aside first, with a
    warning, and the model never sees them; a fact that names what only they name
    came from them, not from the article, and is dropped."""
    doc = ctx.doc
    seen = shown(ctx, chunk)
    if seen.set_aside:
        quoted = "; ".join(_quote(s) for s in seen.set_aside)
        ctx.warn(
            f"chunk {chunk_idx + 1}: {len(seen.set_aside)} sentence(s) addressed to the model, "
            f"not read as news: {quoted}",
        )
    if not seen.text.strip():
        return []
    for attempt in range(ATTEMPTS):
        request = prompts.extract_request(
            seen.text, title=seen.title, published=doc.published, examples=ctx.examples,
            attempt=attempt,
        )  # fmt: skip
        response = ctx.recorder.generate(request, ctx.ingest_use)
        facts = clean_facts(parse_json(response.text))
        if facts is not None:
            return _from_the_article(ctx, chunk_idx, seen, facts)
    ctx.warn(f"chunk {chunk_idx + 1} skipped, the model's facts did not parse")
    ctx.report.chunks_skipped += 1
    return None


def _from_the_article(ctx: DocContext, chunk_idx: int, seen: Shown, facts: list[str]) -> list[str]:
    """``facts`` less those that name what only the set-aside sentences name."""
    kept = []
    for fact in facts:
        if wording.only_in_set_aside(seen.about, seen.set_aside, fact):
            ctx.warn(f"chunk {chunk_idx + 1}: fact {_quote(fact)} dropped: only the "
                  "sentences set aside name what it names")  # fmt: skip
        else:
            kept.append(fact)
    return kept
