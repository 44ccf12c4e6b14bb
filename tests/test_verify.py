"""``verify_index`` finds an index out of step with SQL; ``verify_deep`` finds a store
that is not what replaying its ingest log gives, and never asks a model."""

from __future__ import annotations

import tempfile
from pathlib import Path

import faiss
import numpy as np
import pytest
from sqlalchemy import delete, select, update

from kbase.errors import ModelError
from kbase.kb import KnowledgeBase
from kbase.llm.fake import ScriptedLLM, world_llm
from kbase.ops.verify import verify_deep, verify_index
from kbase.store.models import Fact, LLMRecord, LLMRecordUse
from tests.conftest import OpenKB
from tests.helpers import news

STREAM = [
    news("d1", "The CEO of Acme is Bob. The city of Acme is Leeds.", day=1),
    news("d2", "The CEO of Globex is Dana.", day=2),
    news("d3", "The CEO of Acme is Alice. The city of Acme is Leeds.", day=3),
    news("d4", "The CFO of Acme is Carol.", day=4),
]


def stored(open_kb: OpenKB, **settings: object) -> KnowledgeBase:
    kb = open_kb(**settings)
    kb.ingest(STREAM)
    kb.ask("Who is the CEO of Acme?")
    return kb


def rewrite_index(kb: KnowledgeBase, change) -> None:  # type: ignore[no-untyped-def]
    """Apply ``change`` to the index file, keeping the store state it is stamped with."""
    path = kb.folder / "index" / "vectors.faiss"
    index = faiss.read_index(str(path))
    change(index)
    faiss.write_index(index, str(path))


def fact_ids(kb: KnowledgeBase) -> list[int]:
    return kb.runtime.read(lambda s: list(s.scalars(select(Fact.id).order_by(Fact.id))))  # type: ignore[no-any-return]


# -- verify_index ------------------------------------------------------------------------


def test_the_index_verifies_after_ingest_and_forget(open_kb: OpenKB, database_url) -> None:
    kb = stored(open_kb, database_url=database_url)
    assert verify_index(kb.runtime) == []
    kb.forget(["d1"])
    assert verify_index(kb.runtime) == []


def test_a_vector_removed_from_the_index_file_is_reported(open_kb: OpenKB) -> None:
    kb = stored(open_kb)
    gone = fact_ids(kb)[0]
    rewrite_index(kb, lambda index: index.remove_ids(np.array([gone], dtype=np.int64)))
    assert verify_index(kb.runtime) == [f"fact versions with no vector: {gone}"]


def test_a_stray_vector_in_the_index_file_is_reported(open_kb: OpenKB) -> None:
    kb = stored(open_kb)
    stray = np.zeros((1, kb.runtime.embedder.dim), dtype=np.float32)
    stray[0, 0] = 1.0
    rewrite_index(kb, lambda index: index.add_with_ids(stray, np.array([999], dtype=np.int64)))
    assert verify_index(kb.runtime) == ["vectors with no fact version in SQL: 999"]


def test_a_vector_that_is_not_its_texts_embedding_is_reported(open_kb: OpenKB) -> None:
    kb = stored(open_kb)
    first = fact_ids(kb)[0]
    wrong = np.full((1, kb.runtime.embedder.dim), kb.runtime.embedder.dim**-0.5, dtype=np.float32)

    def swap(index) -> None:  # type: ignore[no-untyped-def]
        index.remove_ids(np.array([first], dtype=np.int64))
        index.add_with_ids(wrong, np.array([first], dtype=np.int64))

    rewrite_index(kb, swap)
    assert verify_index(kb.runtime) == [f"vectors that differ from their text's embedding: {first}"]


# -- verify_deep -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "logprobs"),
    [("rag", True), ("erase-paper", True), ("kbase", True), ("kbase", False)],
    ids=["rag", "erase-paper", "kbase", "kbase-no-logprobs"],
)
def test_a_store_verifies_deeply_after_ingest_and_forget(
    open_kb: OpenKB, strategy: str, logprobs: bool
) -> None:
    kb = stored(open_kb, strategy=strategy, llm=world_llm(logprobs=logprobs))
    assert verify_deep(kb.runtime) == []
    kb.forget(["d1"])
    kb.ask("Who is the CEO of Acme?")
    assert verify_deep(kb.runtime) == []
    kb.forget(["d4", "d2"])
    assert verify_deep(kb.runtime) == []


def test_deep_verification_asks_no_model_and_leaves_no_folder(
    open_kb: OpenKB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(_request: object) -> str:
        raise AssertionError("verify --deep asked the model")

    kb = stored(open_kb)
    kb.close()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    kb = open_kb(kb.folder, llm=ScriptedLLM(refuse))
    assert verify_deep(kb.runtime) == []
    assert list(scratch.iterdir()) == []


def test_deep_verification_on_both_databases(open_kb: OpenKB, database_url) -> None:
    kb = stored(open_kb, database_url=database_url)
    kb.forget(["d3"])
    assert verify_deep(kb.runtime) == []


def test_a_tampered_fact_text_is_a_difference(open_kb: OpenKB) -> None:
    kb = stored(open_kb)
    first = fact_ids(kb)[0]
    with kb.runtime.session() as session, session.begin():
        session.execute(update(Fact).where(Fact.id == first).values(text="Tampered text."))
    problems = verify_deep(kb.runtime)
    assert [p.split(":")[0] for p in problems] == ["facts", "evidence"]
    assert "Tampered text." in problems[0]


def test_a_missing_recorded_answer_stops_deep_verification(open_kb: OpenKB) -> None:
    kb = stored(open_kb)

    with kb.runtime.session() as session, session.begin():
        # A verdict: the kbase strategy takes most rewrites from the chunk's own facts.
        key = session.scalar(select(LLMRecord.key).where(LLMRecord.task == "verdict"))
        assert key is not None
        session.execute(delete(LLMRecordUse).where(LLMRecordUse.key == key))
        session.execute(delete(LLMRecord).where(LLMRecord.key == key))
    with pytest.raises(ModelError, match="verify --deep needs every answer recorded"):
        verify_deep(kb.runtime)
