"""Users curating the few-shot pool: adding examples, removing them, and correcting
a decision about a fact (which records the right decision as an example).

Any change of the selected examples changes the prompts that showed them, so the
whole ingest log is replayed against the new selection (recorded answers serve
every request whose prompt did not change).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from kbase import prompts
from kbase.errors import InputError, NotFoundError
from kbase.examples import (
    EXAMPLES_PER_PROMPT,
    add_examples,
    chosen_examples,
    remove_examples,
    same_choice,
)
from kbase.forget import rollback_and_replay_all
from kbase.hashing import content_hash
from kbase.prompts import Example
from kbase.store import queries
from kbase.store.models import Chunk, Document, Fact, FewshotExample, FewshotExampleDocument
from kbase.vectors import bump_state

if TYPE_CHECKING:
    from kbase.kb import KnowledgeBase


@dataclass
class CurationReport:
    """What a change of the example pool did."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    selection_changed: bool = False
    documents_replayed: int = 0
    model_calls: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def _change_pool(
    kb: KnowledgeBase, change: Callable[[Session], None], report: CurationReport
) -> CurationReport:
    started = time.perf_counter()
    seed = kb.settings.seed
    deleted: list[int] = []
    with kb.writing(), kb.session() as session:
        recorder = kb.recorder(session)
        kb.vectors(session)
        try:
            with session.begin():
                before = chosen_examples(session, kb.embedder, seed)
                change(session)
                after = chosen_examples(session, kb.embedder, seed)
                report.selection_changed = not same_choice(before, after)
                if report.selection_changed:
                    deleted, report.documents_replayed = rollback_and_replay_all(
                        kb, session, recorder, after
                    )
                    bump_state(session)
        except BaseException:
            kb.drop_vectors()
            raise
        kb.finish_write(session, deleted)
    report.model_calls = recorder.total.model_calls
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def add(kb: KnowledgeBase, examples: Sequence[Example]) -> CurationReport:
    """Add user examples to the pool."""
    report = CurationReport(added=[e.id for e in examples])
    return _change_pool(
        kb,
        lambda s: add_examples(
            s, kb.embedder, kb.settings.seed, [(e, "user", []) for e in examples]
        ),
        report,
    )


def remove(kb: KnowledgeBase, ids: Sequence[str]) -> CurationReport:
    """Remove stored examples (built-in ones cannot be removed)."""
    return _change_pool(
        kb, lambda s: remove_examples(s, kb.settings.seed, ids), CurationReport(removed=list(ids))
    )


def correct(
    kb: KnowledgeBase, fact_id: int, *, should_be_true: bool, doc_id: str | None = None
) -> CurationReport:
    """Record that a decision about a fact was wrong, as a verdict example tied to
    the documents involved: the fact's own and the article that judged it."""
    report = CurationReport()

    def change(session: Session) -> None:
        fact = session.get(Fact, fact_id)
        if fact is None:
            raise NotFoundError(f"no fact with id {fact_id}: find ids with `kb facts list --all`")
        if should_be_true:
            if fact.closed_by_pk is None:
                raise InputError(f"fact {fact_id} is current: nothing made it false to correct")
            article = session.get(Document, fact.closed_by_pk)
        else:
            if fact.valid_until is not None:
                raise InputError(f"fact {fact_id} is already closed")
            if doc_id is None:
                raise InputError("say which article should have made it false: --doc DOC_ID")
            article = queries.document(session, doc_id)
        assert article is not None
        chunk = _nearest_chunk(kb, session, article, fact.text)
        example = Example(
            task="verdict",
            user=prompts.verdict_example_user(
                chunk, fact.text, title=article.title, published=article.published
            ),
            assistant="TRUE" if should_be_true else "FALSE",
            id=f"correction-{fact_id}-{article.doc_id}"[:128],
        )
        if session.get(FewshotExample, example.id) is not None:
            raise InputError(f"fact {fact_id} was already corrected for {article.doc_id}")
        tied = queries.lineage_documents(session, fact) | {article.pk}
        add_examples(
            session, kb.embedder, kb.settings.seed, [(example, "correction", sorted(tied))]
        )
        report.added.append(example.id)

    return _change_pool(kb, change, report)


def _nearest_chunk(kb: KnowledgeBase, session: Session, doc: Document, text: str) -> str:
    chunks = list(
        session.scalars(select(Chunk.text).where(Chunk.document_pk == doc.pk).order_by(Chunk.idx))
    )
    if not chunks:
        return doc.text
    vectors = kb.vectors(session).embed(session, [text, *chunks])
    return chunks[int(np.argmax(vectors[1:] @ vectors[0]))]


def listing(kb: KnowledgeBase) -> list[dict[str, Any]]:
    """Every example in the pool, with whether its prompts show it now."""

    def load(session: Session) -> list[dict[str, Any]]:
        chosen = chosen_examples(session, kb.embedder, kb.settings.seed)
        selected = {e.id for v in chosen.values() for e in v}
        stored = {r.id: r for r in session.scalars(select(FewshotExample))}
        tied: dict[str, list[str]] = {}
        for example_id, doc in session.execute(
            select(FewshotExampleDocument.example_id, Document.doc_id).join(
                Document, Document.pk == FewshotExampleDocument.document_pk
            )
        ):
            tied.setdefault(example_id, []).append(doc)
        rows = [(e, "builtin") for e in prompts.BUILTIN_EXAMPLES]
        rows += [(Example(r.task, r.user, r.assistant, r.id), r.origin) for r in stored.values()]
        return [
            {
                "id": e.id,
                "task": e.task,
                "origin": origin,
                "selected": e.id in selected,
                "documents": sorted(tied.get(e.id, [])),
                "user": e.user,
                "assistant": e.assistant,
            }
            for e, origin in sorted(rows, key=lambda r: (r[0].task, r[0].id))
        ]

    return list(kb.read_write(load))
