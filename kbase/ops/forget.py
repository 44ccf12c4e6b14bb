"""Forgetting documents exactly: the store becomes what it would be had they never
been ingested (the method is in :mod:`kbase.ops.replay` and docs/design.md).

Forgetting also records a keyed hash of each id (:mod:`kbase.store.feeds`), in the
same transaction, so that polling a feed that still lists the document does not
bring it back; ``allow_again`` forgets without that (and drops an earlier record).
"""

from __future__ import annotations

import time
from collections import Counter

from kbase.fewshot.pool import (
    chosen_examples,
    examples_of_documents,
    remove_examples,
    same_choice,
)
from kbase.ops.replay import (
    collect_garbage,
    current_texts,
    drop_question_answers,
    first_affected,
    first_seq,
    remove_own_effects,
    replay_from,
    rollback_from,
)
from kbase.reports import ForgetReport
from kbase.runtime import Runtime, Write
from kbase.store import queries
from kbase.store.feeds import lift_forgotten, record_forgotten, reset_validators
from kbase.store.models import Document
from kbase.vectors import bump_state


def forget(
    rt: Runtime,
    doc_ids: list[str],
    *,
    missing_ok: bool = False,
    allow_again: bool = False,
    purge: bool = False,
) -> ForgetReport:
    """Forget ``doc_ids`` as one write (see :func:`forget_documents`), for good:
    polling leaves them out from now on, unless ``allow_again``. With ``purge`` the
    database's files are rewritten afterwards (:func:`kbase.store.db.purge`), so the
    deleted rows' bytes leave PostgreSQL's table files too."""
    with rt.write() as work:
        work.purge = purge
        return forget_documents(
            rt, work, doc_ids, missing_ok=missing_ok, block=not allow_again, allow=allow_again
        )


def forget_documents(
    rt: Runtime,
    work: Write,
    doc_ids: list[str],
    *,
    missing_ok: bool = False,
    block: bool = False,
    allow: bool = False,
) -> ForgetReport:
    """Forget ``doc_ids`` (all replayed at once, from the earliest) in one transaction
    of ``work``.

    An id that is not stored is an error, or with ``missing_ok`` is listed in the
    report's ``missing``: re-running a forget that was interrupted after its commit
    then finishes the job (the index save and the compaction that follow a commit).
    With ``block`` the forgotten ids' keyed hashes are recorded so that polls leave
    them out; with ``allow`` any such record of the given ids (stored or missing) is
    dropped and their feeds are fetched in full next time, so a feed that still lists
    them brings them back. A new version's forget of the old one does neither.
    """
    started = time.perf_counter()
    recorder = work.recorder
    calls, model_calls = recorder.total.calls, recorder.total.model_calls
    report = ForgetReport(forgotten=[])
    before = after = Counter[str]()
    with work.transaction() as session:
        targets: list[Document] = []
        for doc_id in dict.fromkeys(doc_ids):
            doc = queries.find_document(session, doc_id)
            if doc is not None:
                targets.append(doc)
            elif missing_ok:
                report.missing.append(doc_id)
            else:
                queries.document(session, doc_id)  # raises the error for an unknown id
        report.forgotten = [d.doc_id for d in targets]
        report.blocked = block
        if block:
            record_forgotten(session, report.forgotten)
        if allow:
            lift_forgotten(session, doc_ids)
            reset_validators(session, [d.source for d in targets])
        targets.sort(key=lambda d: d.seq)
        if targets:
            before, after = _forget_targets(rt, work, targets, report)
    work.compact = True  # the documents' rows leave the database's files too
    report.model_calls = recorder.total.model_calls - model_calls
    report.replayed_calls = recorder.total.calls - calls - report.model_calls
    report.facts_removed = sum((before - after).values())
    report.facts_restored = sum((after - before).values())
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _forget_targets(
    rt: Runtime, work: Write, targets: list[Document], report: ForgetReport
) -> tuple[Counter[str], Counter[str]]:
    """Inside the forget's transaction: remove ``targets`` (in seq order) and replay
    what they could have changed; returns the current fact texts before and after."""
    session, seed = work.session, rt.settings.seed
    target_pks = {d.pk for d in targets}
    before = current_texts(session)
    chosen = chosen_examples(session, rt.embedder, seed)
    remove_examples(session, seed, examples_of_documents(session, target_pks))
    now_chosen = chosen_examples(session, rt.embedder, seed)
    report.fewshot_changed = not same_choice(chosen, now_chosen)
    if report.fewshot_changed:  # every prompt that showed them changed
        rt.prefix_states.clear()  # saved model states showed the old examples
        cut: int | None = first_seq(session) or 1
    else:
        cut = first_affected(session, work.vectors, targets)
    if cut is not None:
        # The targets' own rows from the cut on go with the rollback.
        work.delete(rollback_from(session, cut))
    for doc in reversed(targets):
        if cut is None or doc.seq < cut:
            work.delete(remove_own_effects(session, doc))
    drop_question_answers(session, sorted(target_pks))
    for doc in targets:
        session.delete(doc)
    session.flush()
    if cut is not None:
        report.documents_replayed = replay_from(rt, work, cut, now_chosen)
    collect_garbage(session)
    bump_state(session)
    return before, current_texts(session)
