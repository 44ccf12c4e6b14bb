"""Readers under load: several processes search while one writer ingests.

The harness is benchmarks/load_bench.py (the benchmark runs it for 60 s per phase);
here it runs for a few seconds. Readers must see no error, never a document without
its chunks and recorded answers, and never fewer documents than before.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from benchmarks.load_bench import documents, make_store, run_phase
from kbase.config import Settings
from kbase.kb import KnowledgeBase
from kbase.llm.fake import world_llm
from kbase.store.models import Document

SECONDS = 10.0
READERS = 3
INITIAL = 20


def test_readers_see_only_committed_documents_while_a_writer_ingests(tmp_path: Path) -> None:
    folder = tmp_path / "kb"
    make_store(folder, INITIAL)
    phase = run_phase(folder, readers=READERS, seconds=SECONDS, write=True, offset=INITIAL)
    print(
        f"load: {phase['searches']} searches ({phase['searches_per_second']}/s, "
        f"p95 {phase['p95_ms']} ms) by {READERS} readers while the writer stored "
        f"{phase['documents_written']} documents in {SECONDS:g} s"
    )
    assert phase["errors"] == []
    assert phase["violations"] == []
    assert phase["documents_written"] > 0
    assert all(len(seen) > 0 for seen in phase["documents_seen"])
    grew = [seen[-1] > seen[0] for seen in phase["documents_seen"]]
    assert any(grew), "no reader saw a document committed during the run"
    with KnowledgeBase.open(folder, create=False) as kb:
        stored = kb.runtime.read(lambda s: s.scalar(select(func.count()).select_from(Document)))
    assert stored == INITIAL + phase["documents_written"]


def test_a_reader_that_stays_open_finds_documents_committed_after_it_opened(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "kb"
    make_store(folder, 3)
    reader = KnowledgeBase.open(folder, create=False)
    assert reader.search("Who is the CEO of Acme?")  # the index is loaded now
    (new,) = documents(1, offset=500)
    writer = KnowledgeBase.open(
        folder, settings=Settings(embedder="fake"), backend=lambda: world_llm()
    )
    writer.ingest([new])
    writer.close()
    query = new.text.split(".")[0]
    with KnowledgeBase.open(folder, create=False) as fresh:  # a new one does find it
        assert new.doc_id in [h.doc_id for h in fresh.search(query, k=3)]
    try:
        assert new.doc_id in [h.doc_id for h in reader.search(query, k=3)]
    finally:
        reader.close()
