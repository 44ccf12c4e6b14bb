"""Users curating the few-shot pool: adding examples, removing them, and correcting
a decision about a fact (which records the right decision as an example).

Any change of the selected examples changes the prompts that showed them, so the
whole ingest log is replayed against the new selection (recorded answers serve
every request whose prompt did not change).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from kbase import prompts
from kbase.errors import InputError, NotFoundError
from kbase.fewshot.curation import correction_example
from kbase.fewshot.example import Example
from kbase.fewshot.pool import add_examples, chosen_examples, remove_examples, same_choice
from kbase.ops.replay import rollback_and_replay_all
from kbase.reports import CurationReport, ExampleRow
from kbase.runtime import Runtime
from kbase.store import queries
from kbase.store.models import Chunk, Document, Fact, FewshotExample, FewshotExampleDocument
from kbase.vectors import bump_state


def _change_pool(
    rt: Runtime, change: Callable[[Session], None], report: CurationReport
) -> CurationReport:
    started = time.perf_counter()
    seed = rt.settings.seed
    with rt.write() as work:
        with work.transaction() as session:
            before = chosen_examples(session, rt.embedder, seed)
            change(session)
            after = chosen_examples(session, rt.embedder, seed)
            report.selection_changed = not same_choice(before, after)
            if report.selection_changed:
                rt.prefix_states.clear()  # saved model states showed the old examples
                report.documents_replayed = rollback_and_replay_all(rt, work, after)
                bump_state(session)
        work.compact = True
    report.model_calls = work.recorder.total.model_calls
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def add(rt: Runtime, examples: Sequence[Example]) -> CurationReport:
    """Add user examples to the pool."""
    report = CurationReport(added=[e.id for e in examples])
    return _change_pool(
        rt,
        lambda s: add_examples(
            s, rt.embedder, rt.settings.seed, [(e, "user", []) for e in examples]
        ),
        report,
    )


def remove(rt: Runtime, ids: Sequence[str]) -> CurationReport:
    """Remove stored examples (built-in ones cannot be removed)."""
    return _change_pool(
        rt, lambda s: remove_examples(s, rt.settings.seed, ids), CurationReport(removed=list(ids))
    )


def correct(
    rt: Runtime, fact_id: int, *, should_be_true: bool, doc_id: str | None = None
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
        example = correction_example(
            fact_id,
            fact.text,
            should_be_true=should_be_true,
            chunk=_nearest_chunk(rt, session, article, fact.text),
            doc_id=article.doc_id,
            title=article.title,
            published=article.published,
        )
        if session.get(FewshotExample, example.id) is not None:
            raise InputError(f"fact {fact_id} was already corrected for {article.doc_id}")
        tied = queries.lineage_documents(session, fact) | {article.pk}
        add_examples(
            session, rt.embedder, rt.settings.seed, [(example, "correction", sorted(tied))]
        )
        report.added.append(example.id)

    return _change_pool(rt, change, report)


def _nearest_chunk(rt: Runtime, session: Session, doc: Document, text: str) -> str:
    chunks = list(
        session.scalars(select(Chunk.text).where(Chunk.document_pk == doc.pk).order_by(Chunk.idx))
    )
    if not chunks:
        return doc.text
    vectors = rt.vectors(session).embed(session, [text, *chunks])
    return chunks[int(np.argmax(vectors[1:] @ vectors[0]))]


def listing(rt: Runtime) -> list[ExampleRow]:
    """Every example in the pool, with whether its prompts show it now."""

    def load(session: Session) -> list[ExampleRow]:
        chosen = chosen_examples(session, rt.embedder, rt.settings.seed)
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
            ExampleRow(
                id=e.id,
                task=e.task,
                origin=origin,
                selected=e.id in selected,
                documents=sorted(tied.get(e.id, [])),
                user=e.user,
                assistant=e.assistant,
            )
            for e, origin in sorted(rows, key=lambda r: (r[0].task, r[0].id))
        ]

    return rt.read(load)
