"""One document through the pipeline: chunk, extract, edit, add."""

from __future__ import annotations

from kbase.hashing import content_hash
from kbase.pipeline.chunking import chunk_text
from kbase.pipeline.context import DocContext
from kbase.pipeline.extract import extract_facts
from kbase.pipeline.strategies import add_new_facts, strategy_named
from kbase.store.models import Chunk


def process_document(ctx: DocContext) -> None:
    """Derive everything a stored document contributes. The same function runs
    for a first ingest and for a replay: replay is exact because of that."""
    strategy = strategy_named(ctx.settings.strategy)
    chunks = chunk_text(ctx.doc.text, ctx.settings.chunk_tokens)
    ctx.report.chunks = len(chunks)
    for idx, chunk in enumerate(chunks):
        ctx.session.add(
            Chunk(document_pk=ctx.doc.pk, idx=idx, text=chunk, text_hash=content_hash(chunk))
        )
    ctx.session.flush()
    for idx, chunk in enumerate(chunks):
        facts = extract_facts(ctx, idx, chunk)
        if facts is None:
            continue
        # Edits first, against the store as it was; then the chunk's own facts.
        add_new_facts(ctx, idx, strategy.edit(ctx, idx, chunk, facts))
