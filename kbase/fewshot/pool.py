"""The few-shot example pool and the selection of the examples each prompt shows.

The pool of a task is its built-in examples (in :mod:`kbase.prompts`) plus the
ones users added and corrections recorded, which are tied to the documents they
came from. Each task's selection is a :class:`kbase.fewshot.Selection`, stored
with a signature of the pool it was fitted on: adding an example refits; removing
one unlearns it, which gives bit for bit the selection of a fresh fit without it.
When the selected examples change, every prompt that showed them changes, so the
caller replays the ingest log.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from kbase.embed.base import Embedder
from kbase.errors import InputError, NotFoundError
from kbase.fewshot.example import Chosen, Example
from kbase.fewshot.params import Params, quantize_vectors
from kbase.fewshot.selection import Selection
from kbase.hashing import content_hash
from kbase.prompts import BUILTIN_EXAMPLES
from kbase.store.models import FewshotExample, FewshotExampleDocument, FewshotState

#: Examples shown per prompt, by task.
EXAMPLES_PER_PROMPT = {"extract": 1, "verdict": 6, "rewrite": 2}
#: Lattice step of the quantized centroids, in units of unit-vector coordinates.
EPS = 0.02


def _pool(session: Session, task: str) -> list[Example]:
    stored = session.scalars(
        select(FewshotExample).where(FewshotExample.task == task).order_by(FewshotExample.id)
    )
    return [e for e in BUILTIN_EXAMPLES if e.task == task] + [
        Example(task=row.task, user=row.user, assistant=row.assistant, id=row.id) for row in stored
    ]


def _signature(pool: list[Example], seed: int) -> str:
    return content_hash([seed, EPS, [[e.id, e.user, e.assistant] for e in pool]])


def _fit(pool: list[Example], embedder: Embedder, seed: int) -> Selection:
    # One text at a time: a vector must not depend on what it was batched with.
    vectors = [embedder.embed([e.user])[0] for e in pool]
    params = Params(k=EXAMPLES_PER_PROMPT[pool[0].task], eps=EPS, seed=seed)
    return Selection.fit([e.id for e in pool], quantize_vectors(vectors, params.scale), params)


def _save(session: Session, task: str, selection: Selection, signature: str) -> None:
    row = session.get(FewshotState, task)
    if row is None:
        session.add(FewshotState(task=task, pool_signature=signature, data=selection.to_bytes()))
    else:
        row.pool_signature, row.data = signature, selection.to_bytes()


def chosen_examples(session: Session, embedder: Embedder, seed: int) -> Chosen:
    """The examples each prompt shows now, refitting any selection whose pool changed
    (e.g. a new release changed the built-in examples)."""
    out: dict[str, list[Example]] = {}
    for task in EXAMPLES_PER_PROMPT:
        pool = _pool(session, task)
        signature = _signature(pool, seed)
        row = session.get(FewshotState, task)
        if row is not None and row.pool_signature == signature:
            selection = Selection.from_bytes(row.data)
        else:
            selection = _fit(pool, embedder, seed)
            _save(session, task, selection, signature)
        by_id = {e.id: e for e in pool}
        out[task] = [by_id[i] for i in selection.chosen()]
    return out


def add_examples(
    session: Session,
    embedder: Embedder,
    seed: int,
    examples: Iterable[tuple[Example, str, list[int]]],
) -> None:
    """Store ``(example, origin, document pks)`` and refit the tasks they belong to."""
    tasks: set[str] = set()
    now = datetime.now(UTC).replace(tzinfo=None)
    for example, origin, document_pks in examples:
        if example.task not in EXAMPLES_PER_PROMPT:
            raise InputError(
                f"unknown example task {example.task!r}: use one of "
                + ", ".join(EXAMPLES_PER_PROMPT)
            )
        if session.get(FewshotExample, example.id) is not None or example.id.startswith("builtin"):
            raise InputError(f"an example with id {example.id!r} exists: give another id")
        session.add(
            FewshotExample(
                id=example.id,
                task=example.task,
                origin=origin,
                user=example.user,
                assistant=example.assistant,
                created_at=now,
            )
        )
        session.flush()
        for pk in document_pks:
            session.add(FewshotExampleDocument(example_id=example.id, document_pk=pk))
        tasks.add(example.task)
    session.flush()
    for task in tasks:
        pool = _pool(session, task)
        _save(session, task, _fit(pool, embedder, seed), _signature(pool, seed))


def remove_examples(session: Session, seed: int, ids: Iterable[str]) -> None:
    """Delete stored examples and unlearn them from their task's selection."""
    for example_id in ids:
        row = session.get(FewshotExample, example_id)
        if row is None:
            raise NotFoundError(
                f"no stored example with id {example_id!r} (built-in examples cannot be "
                "removed): list them with `kb examples list`"
            )
        task = row.task
        state = session.get(FewshotState, task)
        session.execute(delete(FewshotExample).where(FewshotExample.id == example_id))
        session.flush()
        if state is None:
            continue
        selection = Selection.from_bytes(state.data).unlearn(example_id)
        _save(session, task, selection, _signature(_pool(session, task), seed))


def examples_of_documents(session: Session, document_pks: Iterable[int]) -> list[str]:
    """Ids of the stored examples derived from any of these documents."""
    pks = list(document_pks)
    if not pks:
        return []
    return sorted(
        set(
            session.scalars(
                select(FewshotExampleDocument.example_id).where(
                    FewshotExampleDocument.document_pk.in_(pks)
                )
            )
        )
    )


def same_choice(a: Chosen, b: Chosen) -> bool:
    """Whether two selections show the same examples in every prompt."""
    return {t: [e.id for e in v] for t, v in a.items()} == {
        t: [e.id for e in v] for t, v in b.items()
    }
