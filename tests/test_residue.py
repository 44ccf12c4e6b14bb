"""No residue: after a forget, no byte of the forgotten document, nor of text derived
from it, is anywhere the store keeps data.

A document carries a random canary inside a fact that a later document rewrites,
so the canary also reaches that document's prompts and recorded answers, and a
question's recorded answer cites it. Each test first checks that the canary is
really stored, so that finding nothing afterwards means something.

What a forget does leave (docs/design.md, "Exact forgetting"): one row of
``forgotten_ids``, the HMAC-SHA256 of the id under the knowledge base's random key
(``meta``, ``forget_key``), so that polling does not bring the document back; none
with ``--allow-again``. The tests check that this row is all there is, and that it
is neither the id, nor any text, nor a plain hash of either.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from kbase.hashing import content_hash, sha256_hex
from kbase.kb import KnowledgeBase
from kbase.llm import LLMRequest
from kbase.llm.fake import ScriptedLLM, world
from kbase.llm.prefix_states import PrefixStates
from kbase.store.db import checkpoint_sqlite
from kbase.store.feeds import KEY_NAME, id_hash
from kbase.store.models import Fact, ForgottenId, Meta
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


def left_behind(kb: KnowledgeBase) -> list[str]:
    """The keyed hashes of forgotten ids the store keeps."""
    return sorted(kb.runtime.read(lambda s: s.scalars(select(ForgottenId.id_hash)).all()))


def forget_key(kb: KnowledgeBase) -> bytes:
    return bytes.fromhex(kb.runtime.read(lambda s: s.get(Meta, KEY_NAME).value))


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
    assert left_behind(kb) == [id_hash(forget_key(kb), "bob")]  # and nothing else
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
    assert left_behind(kb) == [id_hash(forget_key(kb), "bob")]


def id_canary_scenario(
    open_kb: OpenKB, folder: Path, url: str | None = None
) -> tuple[KnowledgeBase, str, str]:
    """A store holding a document whose id and text are both canaries."""
    doc_id, text = f"doc-{uuid.uuid4().hex}", uuid.uuid4().hex
    kb = open_kb(folder, database_url=url)
    kb.ingest([news(doc_id, f"The CEO of Acme is Bob {text}.", day=1)])
    kb.ingest([news("alice", "The CEO of Acme is Alice.", day=2)])
    return kb, doc_id, text


def not_derivable_without_the_key(digest: str, doc_id: str, text: str) -> None:
    """The recorded hash is none of the plain forms of the id or the text."""
    plain = {
        doc_id,
        text,
        sha256_hex(doc_id),
        sha256_hex(text),
        content_hash(doc_id).split(":", 1)[1],
        hashlib.md5(doc_id.encode()).hexdigest(),
        hashlib.sha1(doc_id.encode()).hexdigest(),
    }
    assert digest not in plain
    assert doc_id not in digest and text not in digest


@pytest.mark.sqlite
def test_forgetting_for_good_leaves_only_a_keyed_hash_of_the_id_in_a_sqlite_store(
    open_kb: OpenKB, tmp_path: Path
) -> None:
    folder = tmp_path / "kb"
    kb, doc_id, text = id_canary_scenario(open_kb, folder)
    assert files_holding(folder, doc_id) and files_holding(folder, text)
    kb.forget([doc_id])
    checkpoint_sqlite(kb.runtime.engine)
    assert files_holding(folder, doc_id) == [] and files_holding(folder, text) == []
    (digest,) = left_behind(kb)
    assert digest == id_hash(forget_key(kb), doc_id)
    not_derivable_without_the_key(digest, doc_id, text)
    # Another knowledge base has another key: the same id hashes differently there.
    other, _, _ = id_canary_scenario(open_kb, tmp_path / "other")
    other.forget(["alice"])
    assert forget_key(other) != forget_key(kb)
    assert id_hash(forget_key(other), doc_id) != digest


@pytest.mark.sqlite
def test_forgetting_with_allow_again_leaves_nothing(open_kb: OpenKB, tmp_path: Path) -> None:
    folder = tmp_path / "kb"
    kb, doc_id, text = id_canary_scenario(open_kb, folder)
    kb.forget([doc_id], allow_again=True)
    assert left_behind(kb) == []
    assert files_holding(folder, doc_id) == [] and files_holding(folder, text) == []


@pytest.mark.postgres
def test_forgetting_for_good_leaves_only_a_keyed_hash_of_the_id_in_a_postgres_store(
    open_kb: OpenKB, tmp_path: Path, pg_url: str
) -> None:
    kb, doc_id, text = id_canary_scenario(open_kb, tmp_path / "kb", pg_url)
    assert rows_holding(pg_url, doc_id) and rows_holding(pg_url, text)
    kb.forget([doc_id])
    assert rows_holding(pg_url, doc_id) == [] and rows_holding(pg_url, text) == []
    (digest,) = left_behind(kb)
    assert digest == id_hash(forget_key(kb), doc_id)
    not_derivable_without_the_key(digest, doc_id, text)


class SavingPrefixStates(ScriptedLLM):
    """The fake world, saving each prompt's prefix where the llama.cpp backend saves
    that prefix's model state (here the prefix's own text stands for the state)."""

    def __init__(self) -> None:
        super().__init__(world, model_id="fake")
        self.states: PrefixStates | None = None

    def _ask(self, request: LLMRequest) -> str | Mapping[str, float]:
        if self.states is not None and len(request.messages) > 1:
            prefix = "".join(m.content for m in request.messages[:-1])
            self.states.save(sha256_hex(prefix), prefix.encode("utf-8"))
        return super()._ask(request)


@pytest.mark.sqlite
def test_a_forgotten_document_leaves_no_saved_model_state_of_prompts_that_showed_it(
    open_kb: OpenKB, tmp_path: Path
) -> None:
    """A correction is a few-shot example tied to its documents; prompts show it, so
    saved prefix states hold it, until a forget of one of those documents."""
    folder = tmp_path / "kb"
    canary = uuid.uuid4().hex
    llm = SavingPrefixStates()
    kb = open_kb(folder, llm=llm)
    llm.states = kb.runtime.prefix_states
    kb.ingest(
        [
            news("bob", f"The CEO of Acme is Bob {canary}.", day=1),
            news("alice", "The CEO of Acme is Alice.", day=2),
        ]
    )
    bob = kb.runtime.read(lambda s: s.scalar(select(Fact).where(Fact.text.contains(canary))))
    assert kb.correct(bob.id, should_be_true=True).selection_changed
    kb.ingest([news("globex", "The CEO of Globex is Dana.", day=3)])
    assert any("model-states" in f for f in files_holding(folder, canary))

    assert kb.forget(["bob"]).fewshot_changed
    assert files_holding(folder, canary) == []
    assert kb.runtime.prefix_states.keys(), "the replay saved the new prefixes' states"
