"""A canonical description of everything a store derived from its ingest log, and
its hash.

Two stores are "the same" when they hold the same documents in the same order and
derived the same chunks, fact versions, evidence, retrievals, recorded ingest
answers, cached embeddings and few-shot selection. Row ids and absolute sequence
numbers are not part of that: a store that forgot a document and a fresh one that
never saw it number their rows differently. So every reference is canonical: a
document is its ``doc_id``, a sequence number is the rank of its document in
ingest order, and a fact version is ``(text, creating document, rank it was
created at, chunk)``.

Left out, and why:

- wall-clock times (``ingested_at``, ``model_seconds``, a record's ``seconds``
  and ``created_at``);
- a document's ``cached_tokens``: how much of a prompt the backend's prefix cache
  held depends on what was asked just before, not on the request, so a replay
  and a fresh ingest legitimately count differently (token counts of the
  recorded answers themselves are not compared either, for the same reason);
- question-time answers (recorded answers with only ``context`` uses): a cache
  of questions, not derived from the ingest log;
- the few-shot selection state of a task with built-in examples only: a fit of
  code and settings, stored the first time a store needs it, so its presence says
  whether the store was ever used, not what it holds.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kbase.hashing import canonical_json, content_hash, sha256_hex
from kbase.store.models import (
    Chunk,
    Document,
    Embedding,
    Evidence,
    Fact,
    FewshotExample,
    FewshotExampleDocument,
    FewshotState,
    LLMRecord,
    LLMRecordUse,
    NameLookup,
    Retrieval,
)

#: The parts of :func:`describe`, in the order a report lists them.
PARTS = (
    "documents",
    "chunks",
    "facts",
    "evidence",
    "retrievals",
    "name_lookups",
    "llm_records",
    "llm_uses",
    "embeddings",
    "fewshot_examples",
    "fewshot_state",
)

Row = list[Any]


def _sorted(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=canonical_json)


def describe(session: Session) -> dict[str, list[Row]]:
    """The canonical state, part by part: each part a sorted list of rows made of
    JSON values only, so two stores can be compared part by part."""
    docs = list(session.scalars(select(Document).order_by(Document.seq)))
    doc_id = {d.pk: d.doc_id for d in docs}
    rank = {d.seq: i for i, d in enumerate(docs, start=1)}

    def ranked(seq: int | None) -> int | None:
        # A seq with no document (which a consistent store never has) stays visible.
        return None if seq is None else rank.get(seq, -seq)

    facts = list(session.scalars(select(Fact)))
    ref: dict[int, Row] = {
        f.id: [f.text, doc_id.get(f.document_pk), ranked(f.valid_from), f.chunk_idx] for f in facts
    }
    out: dict[str, list[Row]] = {part: [] for part in PARTS}
    for d in docs:
        out["documents"].append(
            [
                d.doc_id,
                rank[d.seq],
                d.content_hash,
                content_hash(d.text),
                d.source,
                d.title,
                d.url,
                d.published.isoformat() if d.published else None,
                d.llm_calls,
                d.prompt_tokens,
                d.completion_tokens,
            ]
        )
    for chunk in session.scalars(select(Chunk)):
        out["chunks"].append(
            [doc_id.get(chunk.document_pk), chunk.idx, chunk.text_hash, content_hash(chunk.text)]
        )
    for f in facts:
        out["facts"].append(
            [
                *ref[f.id],
                f.text_hash,
                ranked(f.valid_until),
                doc_id.get(f.closed_by_pk) if f.closed_by_pk is not None else None,
                f.close_reason,
                ref.get(f.replaces_id) if f.replaces_id is not None else None,
                ref.get(f.lineage_id) if f.lineage_id is not None else None,
            ]
        )
    for e in session.scalars(select(Evidence)):
        out["evidence"].append(
            [ref.get(e.fact_id), doc_id.get(e.document_pk), ranked(e.seq), e.relation]
        )
    for r in session.scalars(select(Retrieval)):
        out["retrievals"].append([doc_id.get(r.document_pk), r.text_hash, repr(r.radius)])
    for n in session.scalars(select(NameLookup)):
        out["name_lookups"].append([doc_id.get(n.document_pk), n.name_hash, n.words])
    ingest_keys = select(LLMRecordUse.key).where(LLMRecordUse.role == "ingest")
    for record in session.scalars(select(LLMRecord).where(LLMRecord.key.in_(ingest_keys))):
        response = json.loads(record.response)
        out["llm_records"].append(
            [
                record.key,
                record.model,
                record.task,
                content_hash(record.request),
                response.get("text"),
                response.get("scores"),
            ]
        )
    uses = session.execute(
        select(LLMRecordUse.key, LLMRecordUse.document_pk).where(LLMRecordUse.role == "ingest")
    )
    out["llm_uses"] = [[key, doc_id.get(pk)] for key, pk in uses]
    for emb in session.scalars(select(Embedding)):
        out["embeddings"].append([emb.model, emb.text_hash, sha256_hex(emb.vector)])
    sources: dict[str, list[str | None]] = {}
    for example_id, pk in session.execute(
        select(FewshotExampleDocument.example_id, FewshotExampleDocument.document_pk)
    ):
        sources.setdefault(example_id, []).append(doc_id.get(pk))
    stored_tasks: set[str] = set()
    for ex in session.scalars(select(FewshotExample)):
        stored_tasks.add(ex.task)
        out["fewshot_examples"].append(
            [
                ex.id,
                ex.task,
                ex.origin,
                content_hash(ex.user),
                content_hash(ex.assistant),
                sorted(sources.get(ex.id, []), key=str),
            ]
        )
    for state in session.scalars(select(FewshotState).where(FewshotState.task.in_(stored_tasks))):
        out["fewshot_state"].append([state.task, state.pool_signature, sha256_hex(state.data)])
    return {part: _sorted(rows) for part, rows in out.items()}


def fingerprint_of(described: dict[str, list[Row]]) -> str:
    """The hash of a description made by :func:`describe`."""
    return content_hash(canonical_json(described))


def fingerprint(session: Session) -> str:
    """``sha256:<hex>`` of the canonical current and historical state of the store."""
    return fingerprint_of(describe(session))


def differences(
    mine: dict[str, list[Row]],
    theirs: dict[str, list[Row]],
    *,
    names: tuple[str, str] = ("the store", "the rebuild"),
    limit: int = 3,
) -> list[str]:
    """One line per part that differs, with a few rows found on one side only."""
    lines: list[str] = []
    for part in PARTS:
        left = [canonical_json(r) for r in mine.get(part, [])]
        right = [canonical_json(r) for r in theirs.get(part, [])]
        if left == right:
            continue
        only_left = _multiset_minus(left, right)
        only_right = _multiset_minus(right, left)
        line = (
            f"{part}: {len(only_left)} rows only in {names[0]}, "
            f"{len(only_right)} only in {names[1]}"
        )
        samples = [f"{names[0]} has {_short(r)}" for r in only_left[:limit]]
        samples += [f"{names[1]} has {_short(r)}" for r in only_right[:limit]]
        lines.append("; ".join([line, *samples]))
    return lines


def _multiset_minus(a: list[str], b: list[str]) -> list[str]:
    remaining: dict[str, int] = {}
    for item in b:
        remaining[item] = remaining.get(item, 0) + 1
    out = []
    for item in a:
        if remaining.get(item, 0):
            remaining[item] -= 1
        else:
            out.append(item)
    return out


def _short(text: str, width: int = 160) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
