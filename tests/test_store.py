"""The store keeps the ingest log, versioned facts, evidence, recorded answers and a
vector index derived from SQL; it behaves the same on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from kbase.config import Settings
from kbase.errors import DocumentError
from kbase.kb import KnowledgeBase
from kbase.llm.fake import ScriptedLLM, world, world_llm
from kbase.store.db import MIGRATIONS, SCHEMA_HEAD, open_engine, schema_revision, sqlite_url
from kbase.store.models import Document, Evidence, Fact, LLMRecord
from kbase.vectors import store_state
from tests.conftest import ON_POSTGRES, OpenKB
from tests.helpers import news

BOB = news("acme-1", "The CEO of Acme is Bob. Acme is based in Leeds.", day=8)
ALICE = news("acme-2", "The CEO of Acme is Alice.", day=2, month=5)


def count(kb, model) -> int:  # type: ignore[no-untyped-def]
    return int(kb.runtime.read(lambda s: s.scalar(select(func.count()).select_from(model))))


def test_a_new_knowledge_base_is_stored_in_the_database_of_the_test_tier(
    open_kb: OpenKB, tmp_path: Path
) -> None:
    """KBASE_TEST_DATABASE=postgres (the PostgreSQL tier) gives every knowledge base a
    test creates without a URL its own schema; reopening the folder finds it there."""
    tier = "postgresql" if ON_POSTGRES else "sqlite"
    assert open_kb(tmp_path / "a").runtime.engine.dialect.name == tier
    KnowledgeBase.open(tmp_path / "b", settings=Settings(embedder="fake")).close()
    with KnowledgeBase.open(tmp_path / "b", create=False) as kb:
        assert kb.runtime.engine.dialect.name == tier
        assert kb.settings.embedder == "fake"
    assert (tmp_path / "b" / "kbase.db").exists() == (not ON_POSTGRES)


def test_migrations_are_applied_when_a_store_is_opened(open_kb: OpenKB, database_url) -> None:
    kb = open_kb(database_url=database_url)
    version = kb.runtime.read(lambda s: s.scalar(text("SELECT version_num FROM alembic_version")))
    assert version == SCHEMA_HEAD


def test_the_schema_head_opening_trusts_is_alembics_newest_migration() -> None:
    """A store at SCHEMA_HEAD is opened without alembic (a quarter of a second to
    import): a new migration must move it."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [SCHEMA_HEAD]


@pytest.mark.sqlite
def test_a_store_behind_the_newest_migration_is_brought_up_to_it(
    open_kb: OpenKB, tmp_path: Path
) -> None:
    folder = tmp_path / "kb"
    open_kb(folder).close()
    engine = open_engine(sqlite_url(folder))
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE name_lookups"))  # what 0005 created
        connection.execute(text("DROP TABLE feeds"))  # what 0004 created
        connection.execute(text("DROP TABLE forgotten_ids"))
        connection.execute(text("UPDATE alembic_version SET version_num = '0003'"))
    engine.dispose()
    engine = open_engine(sqlite_url(folder))
    with engine.connect() as connection:
        assert schema_revision(connection) == SCHEMA_HEAD
        assert connection.execute(text("SELECT count(*) FROM feeds")).scalar() == 0
        assert connection.execute(text("SELECT count(*) FROM name_lookups")).scalar() == 0
    engine.dispose()


def test_ingest_stores_document_facts_evidence_and_vectors(open_kb: OpenKB, database_url) -> None:
    kb = open_kb(database_url=database_url)
    report = kb.ingest([BOB])
    assert [d.doc_id for d in report.stored] == ["acme-1"]
    assert report.stored[0].facts_created == 2
    assert count(kb, Document) == 1
    assert count(kb, Fact) == 2
    assert count(kb, Evidence) == 2
    assert kb.runtime.index_size() == 2
    doc = kb.runtime.read(lambda s: s.scalar(select(Document)))
    assert (doc.seq, doc.title, doc.llm_calls) == (1, "Title of acme-1", 1)


def test_reingesting_an_identical_document_changes_nothing(open_kb: OpenKB, database_url) -> None:
    llm = world_llm()
    kb = open_kb(database_url=database_url, llm=llm)
    kb.ingest([BOB])
    calls = llm.calls
    report = kb.ingest([BOB])
    assert report.unchanged == ["acme-1"] and report.stored == []
    assert llm.calls == calls


def test_same_id_with_new_content_is_a_new_version_of_the_document(
    open_kb: OpenKB, database_url
) -> None:
    kb = open_kb(database_url=database_url)
    kb.ingest([BOB])
    changed = news("acme-1", "The CEO of Acme is Carol.")
    report = kb.ingest([changed])
    assert report.updated == ["acme-1"] and report.stored[0].version == 2
    texts = [f.text for f in kb.search("CEO of Acme", k=5)]
    assert "The CEO of Acme is Carol." in texts and "The CEO of Acme is Bob." not in texts
    shown = kb.document("acme-1")
    assert shown.version == 2 and shown.first_ingested_at is not None
    assert shown.first_ingested_at <= shown.ingested_at


def test_a_failure_mid_batch_keeps_earlier_documents_and_none_of_the_failing_one(
    open_kb: OpenKB, database_url
) -> None:
    def flaky(request):  # type: ignore[no-untyped-def]
        if "Globex" in request.fields.get("chunk", ""):
            raise RuntimeError("model crashed")
        return world(request)

    kb = open_kb(database_url=database_url, llm=ScriptedLLM(flaky))
    globex = news("globex-1", "The CEO of Globex is Dana.", day=9)
    with pytest.raises(RuntimeError):
        kb.ingest([BOB, globex, ALICE])
    assert kb.runtime.read(lambda s: list(s.scalars(select(Document.doc_id)))) == ["acme-1"]
    assert count(kb, Fact) == 2
    assert kb.runtime.index_size() == 2
    assert count(kb, LLMRecord) == 1  # the failing document's answers are gone too


def test_an_unparseable_extraction_is_retried_then_the_chunk_is_skipped(open_kb: OpenKB) -> None:
    llm = ScriptedLLM(lambda r: "not json" if r.task == "extract" else world(r))
    kb = open_kb(llm=llm)
    report = kb.ingest([BOB])
    assert report.stored == [] and report.failed[0].chunks_skipped == 1  # not stored (issue 19)
    assert "did not parse" in report.failed[0].warnings[0]
    assert llm.calls == 2
    assert count(kb, Fact) == 0 and count(kb, LLMRecord) == 0


def test_the_index_is_rebuilt_from_sql_when_its_file_is_missing(open_kb: OpenKB, tmp_path) -> None:
    kb = open_kb(tmp_path / "kb")
    kb.ingest([BOB])
    kb.close()
    shutil.rmtree(tmp_path / "kb" / "index")
    kb = open_kb(tmp_path / "kb")
    assert kb.runtime.index_size() == 2
    assert kb.search("Bob CEO Acme", k=1)[0].text == "The CEO of Acme is Bob."


def test_an_index_left_behind_is_caught_up_from_sql(open_kb: OpenKB, tmp_path) -> None:
    kb = open_kb(tmp_path / "kb")
    kb.ingest([BOB])
    kb.close()
    shutil.copytree(tmp_path / "kb" / "index", tmp_path / "old-index")
    kb = open_kb(tmp_path / "kb")
    kb.ingest([ALICE])
    kb.close()
    shutil.rmtree(tmp_path / "kb" / "index")
    shutil.copytree(tmp_path / "old-index", tmp_path / "kb" / "index")
    kb = open_kb(tmp_path / "kb")
    assert kb.runtime.index_size() == count(kb, Fact)
    state = json.loads((tmp_path / "kb" / "index" / "vectors.json").read_text())["state"]
    assert state == kb.runtime.read(
        lambda s: s.scalar(text("SELECT value FROM meta WHERE key='state'"))
    )


def test_questions_see_current_facts_and_as_of_sees_the_past(open_kb: OpenKB, database_url) -> None:
    kb = open_kb(database_url=database_url)
    kb.ingest([BOB, ALICE])
    now = kb.ask("Who is CEO of Acme?")
    assert now.answer == "The CEO of Acme is Alice."
    assert [c.doc_id for c in now.citations] == ["acme-2"]
    then = kb.ask("Who is CEO of Acme?", as_of=date(2024, 3, 1))
    assert then.answer == "The CEO of Acme is Bob."
    assert [c.doc_id for c in then.citations] == ["acme-1"]
    assert kb.search("Acme", as_of=date(2023, 1, 1)) == []


def test_an_identical_question_is_answered_from_the_record(open_kb: OpenKB) -> None:
    llm = world_llm()
    kb = open_kb(llm=llm)
    kb.ingest([BOB])
    first = kb.ask("Who is CEO of Acme?")
    calls = llm.calls
    assert kb.ask("Who is CEO of Acme?") == first
    assert llm.calls == calls


def test_forget_removes_the_document_its_facts_vectors_and_answers(
    open_kb: OpenKB, database_url
) -> None:
    kb = open_kb(database_url=database_url)
    kb.ingest([BOB, news("globex-1", "The CEO of Globex is Dana.", day=9)])
    kb.ask("Who is CEO of Acme?")
    report = kb.forget(["acme-1"])
    assert report.forgotten == ["acme-1"] and report.facts_removed == 2
    assert kb.runtime.read(lambda s: list(s.scalars(select(Document.doc_id)))) == ["globex-1"]
    assert [f.text for f in kb.search("Acme", k=5)] == ["The CEO of Globex is Dana."]
    assert kb.runtime.index_size() == 1
    tasks = kb.runtime.read(lambda s: list(s.scalars(select(LLMRecord.task))))
    assert tasks == ["extract"]


def test_forgetting_an_unknown_id_is_an_error_that_changes_nothing(open_kb: OpenKB) -> None:
    kb = open_kb()
    kb.ingest([BOB])
    with pytest.raises(DocumentError, match="no document with id 'nope'"):
        kb.forget(["acme-1", "nope"])
    assert count(kb, Document) == 1


def test_forgetting_with_missing_ok_forgets_what_is_stored_and_lists_the_rest(
    open_kb: OpenKB,
) -> None:
    kb = open_kb()
    kb.ingest([BOB])
    report = kb.forget(["nope", "acme-1", "nope"], missing_ok=True)
    assert (report.forgotten, report.missing) == (["acme-1"], ["nope"])
    assert count(kb, Document) == 0 and kb.runtime.index_size() == 0
    state = kb.runtime.read(store_state)
    again = kb.forget(["acme-1"], missing_ok=True)  # nothing to do, nothing written
    assert (again.forgotten, again.missing, again.facts_removed) == ([], ["acme-1"], 0)
    assert kb.runtime.read(store_state) == state
