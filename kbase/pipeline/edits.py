"""The only ways the pipeline changes facts. Nothing is ever deleted here: a
retirement or a rewrite closes a version, stamped with the closing document."""

from __future__ import annotations

from sqlalchemy import select

from kbase.hashing import content_hash
from kbase.pipeline import wording
from kbase.pipeline.context import DocContext
from kbase.store.models import Evidence, Fact, NameLookup, Retrieval


def _evidence(ctx: DocContext, fact: Fact, relation: str) -> None:
    ctx.session.add(
        Evidence(fact_id=fact.id, document_pk=ctx.doc.pk, seq=ctx.doc.seq, relation=relation)
    )


def create_fact(
    ctx: DocContext, text: str, chunk_idx: int, *, replaces: Fact | None = None
) -> Fact:
    """A new current version, indexed, with its provenance."""
    fact = Fact(
        text=text,
        text_hash=content_hash(text),
        document_pk=ctx.doc.pk,
        chunk_idx=chunk_idx,
        valid_from=ctx.doc.seq,
        replaces_id=replaces.id if replaces else None,
        lineage_id=replaces.lineage_id if replaces else None,
    )
    ctx.session.add(fact)
    ctx.session.flush()
    if fact.lineage_id is None:
        fact.lineage_id = fact.id
    _evidence(ctx, fact, "created")
    ctx.vectors.add_facts(ctx.session, [fact])
    ctx.indexed.append(fact.id)
    ctx.report.facts_created += 1
    return fact


def reinforce(ctx: DocContext, fact: Fact) -> None:
    """Record that this document supports ``fact`` (once per document)."""
    seen = ctx.session.scalar(
        select(Evidence.id).where(Evidence.fact_id == fact.id, Evidence.document_pk == ctx.doc.pk)
    )
    if seen is None:
        _evidence(ctx, fact, "reinforced")
        ctx.report.facts_reinforced += 1


def _close(ctx: DocContext, fact: Fact, reason: str) -> None:
    fact.valid_until = ctx.doc.seq
    fact.closed_by_pk = ctx.doc.pk
    fact.close_reason = reason
    _evidence(ctx, fact, reason)


def retire(ctx: DocContext, fact: Fact) -> None:
    """Close ``fact``: it is no longer true and nothing replaces it."""
    _close(ctx, fact, "retired")
    ctx.report.facts_retired += 1


def rewrite(ctx: DocContext, fact: Fact, text: str, chunk_idx: int) -> Fact:
    """Close ``fact`` and add ``text`` as its next version."""
    _close(ctx, fact, "rewritten")
    ctx.report.facts_rewritten += 1
    return create_fact(ctx, text, chunk_idx, replaces=fact)


def note_retrieval(ctx: DocContext, text: str, radius: float) -> None:
    """Record that this document's result depended on every fact within ``radius``
    of ``text``: forgetting another document checks these to skip replays."""
    ctx.session.add(Retrieval(document_pk=ctx.doc.pk, text_hash=content_hash(text), radius=radius))


def note_lookup(ctx: DocContext, name: str) -> None:
    """Record that this document's result depended on every fact that names ``name``
    (:func:`kbase.pipeline.wording.names_in`)."""
    key = wording.name_key(name)
    ctx.session.add(
        NameLookup(document_pk=ctx.doc.pk, name_hash=content_hash(key), words=len(key.split()))
    )
