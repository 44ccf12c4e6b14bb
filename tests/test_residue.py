"""No residue: after a forget, no byte of the forgotten document, nor of text derived
from it, is anywhere the store keeps data.

A document carries a random canary inside a fact that a later document rewrites,
so the canary also reaches that document's prompts and recorded answers, and a
question's recorded answer cites it. Each test first checks that the canary is
really stored, so that finding nothing afterwards means something.
"""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path

import pytest

from kbase.kb import KnowledgeBase
from kbase.store.db import checkpoint_sqlite
from tests.conftest import OpenKB
from tests.helpers import news, rows_holding


def canary_scenario(
    open_kb: OpenKB, folder: Path, url: str | None = None
) -> tuple[KnowledgeBase, str]:
    """A store where the canary is in a fact, its rewrite's prompts and an answer."""
    canary = uuid.uuid4().hex
    kb = open_kb(folder, database_url=url)
    kb.ingest([news("bob", f"The CEO of Acme is Bob {canary}.", day=1)])
    assert canary in kb.ask("Who is the CEO of Acme?").answer
    kb.ingest(
        [
            news("alice", "The CEO of Acme is Alice.", day=2),
            news("globex", "The CEO of Globex is Dana.", day=3),
        ]
    )
    assert kb.ask("Who is the CEO of Acme?").answer == "The CEO of Acme is Alice."
    assert canary in kb.ask("Who was the CEO of Acme?", as_of=date(2024, 1, 1)).answer
    return kb, canary


def needles(canary: str) -> dict[str, bytes]:
    return {"utf-8": canary.encode("utf-8"), "utf-16-le": canary.encode("utf-16-le")}


def files_holding(folder: Path, canary: str) -> list[str]:
    """Every file under ``folder`` that holds the canary, with the encoding found."""
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        found += [
            f"{path.relative_to(folder)} ({name})"
            for name, needle in needles(canary).items()
            if needle in data
        ]
    return found


@pytest.mark.sqlite
@pytest.mark.parametrize("checkpointed", [False, True], ids=["in-wal", "in-database"])
def test_a_forgotten_document_leaves_no_byte_in_any_file_of_a_sqlite_store(
    open_kb: OpenKB, tmp_path: Path, checkpointed: bool
) -> None:
    folder = tmp_path / "kb"
    kb, canary = canary_scenario(open_kb, folder)
    if checkpointed:  # the rows then live in the database file's pages, not the log
        checkpoint_sqlite(kb.runtime.engine)
        assert files_holding(folder, canary) == ["kbase.db (utf-8)"]
    assert files_holding(folder, canary), "the canary never reached the store's files"
    report = kb.forget(["bob"])
    assert report.documents_replayed >= 1  # the rewrite was replayed without Bob
    assert files_holding(folder, canary) == []
    assert canary not in kb.ask("Who is the CEO of Acme?").answer
    kb.close()
    assert files_holding(folder, canary) == []


@pytest.mark.postgres
def test_a_forgotten_document_leaves_no_row_in_any_table_of_a_postgres_store(
    open_kb: OpenKB, tmp_path: Path, pg_url: str
) -> None:
    folder = tmp_path / "kb"
    kb, canary = canary_scenario(open_kb, folder, pg_url)
    assert rows_holding(pg_url, canary), "the canary never reached the database"
    kb.forget(["bob"])
    assert rows_holding(pg_url, canary) == []
    assert files_holding(folder, canary) == []
