"""The few-shot pool: user examples and corrections change which examples prompts
show, every decision is replayed when they do, and removing an example (or
forgetting the document it came from) gives exactly the selection of a pool that
never had it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select, update

from kbase.errors import InputError, NotFoundError
from kbase.fewshot.curation import read_examples
from kbase.llm.fake import world_llm
from kbase.store.models import Fact, FewshotState
from tests.conftest import OpenKB
from tests.helpers import news

BOB = news("d1", "The CEO of Acme is Bob. The harbour of Leeds is busy.", day=1)
ALICE = news("d2", "The CEO of Acme is Alice.", day=2)
VERDICT = {
    "task": "verdict",
    "id": "user-1",
    "article": "Zed Corp moved to Paris.",
    "fact": "Zed Corp is based in Rome.",
    "answer": "FALSE",
}


def selection_bytes(kb) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    return kb.runtime.read(
        lambda s: {r.task: bytes(r.data) for r in s.scalars(select(FewshotState))}
    )


def selected(kb) -> set[str]:  # type: ignore[no-untyped-def]
    return {r.id for r in kb.examples() if r.selected}


def write(path: Path, *records: dict[str, object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_the_built_in_examples_are_selected_while_the_pool_is_no_larger_than_a_prompt(
    open_kb: OpenKB,
) -> None:
    kb = open_kb()
    kb.ingest([BOB])
    rows = kb.examples()
    assert {r.origin for r in rows} == {"builtin"}
    assert all(r.selected for r in rows)


def test_adding_an_example_that_changes_the_selection_replays_every_document(
    open_kb: OpenKB, tmp_path: Path
) -> None:
    llm = world_llm()
    kb = open_kb(llm=llm)
    kb.ingest([BOB, ALICE])
    extra = [
        dict(VERDICT, id=f"user-{i}", fact=f"Zed Corp is based in city {i}.") for i in range(4)
    ]
    report = kb.add_examples(read_examples(write(tmp_path / "x.jsonl", *extra)))
    assert report.added == ["user-0", "user-1", "user-2", "user-3"]
    assert report.selection_changed and report.documents_replayed == 2
    # The examples of every task head every shared-prefix prompt: both extractions
    # and the verdict were asked again (the verdict's rewrite came from the new facts).
    assert report.model_calls == 3
    assert len([i for i in selected(kb) if i.startswith(("builtin-verdict", "user-"))]) == 6


def test_removing_an_example_restores_exactly_the_selection_without_it(
    open_kb: OpenKB, tmp_path: Path
) -> None:
    kb = open_kb(tmp_path / "a")
    kb.ingest([BOB, ALICE])
    before = selection_bytes(kb)
    extra = [
        dict(VERDICT, id=f"user-{i}", fact=f"Zed Corp is based in city {i}.") for i in range(3)
    ]
    kb.add_examples(read_examples(write(tmp_path / "x.jsonl", *extra)))
    kb.remove_examples(["user-0", "user-1", "user-2"])
    assert selection_bytes(kb) == before


def test_a_correction_is_an_example_tied_to_its_documents_and_forgetting_one_unlearns_it(
    open_kb: OpenKB, tmp_path: Path
) -> None:
    kb = open_kb()
    kb.ingest([BOB, ALICE])
    before = selection_bytes(kb)
    bob = kb.runtime.read(
        lambda s: s.scalar(select(Fact).where(Fact.text == "The CEO of Acme is Bob."))
    )
    report = kb.correct(bob.id, should_be_true=True)
    assert report.added == [f"correction-{bob.id}-d2"]
    row = next(r for r in kb.examples() if r.origin == "correction")
    assert row.documents == ["d1", "d2"] and row.assistant == "TRUE"
    assert "Stored fact: The CEO of Acme is Bob." in row.user

    forgot = kb.forget(["d2"])
    assert [r.origin for r in kb.examples()].count("correction") == 0
    assert forgot.fewshot_changed
    assert selection_bytes(kb) == before


def test_bad_example_files_and_ids_give_one_line_errors(open_kb: OpenKB, tmp_path: Path) -> None:
    kb = open_kb()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(VERDICT) + "\n{not json\n")
    with pytest.raises(InputError, match=r"bad.jsonl:2: not JSON"):
        read_examples(bad)
    with pytest.raises(InputError, match="'answer' must be TRUE or FALSE"):
        read_examples(write(tmp_path / "a.jsonl", dict(VERDICT, answer="MAYBE")))
    with pytest.raises(NotFoundError, match="built-in examples cannot be removed"):
        kb.remove_examples(["builtin-verdict-1"])


def test_saved_prefix_states_last_while_the_pool_they_showed_does(open_kb: OpenKB) -> None:
    kb = open_kb()
    kb.ingest([BOB])
    states = kb.runtime.prefix_states
    states.save("shared", b"a saved model state")
    kb.ingest([ALICE])
    assert states.keys() == ["shared"]  # the pool did not change

    # Another host on the same database changes the pool: this host's next write
    # deletes the states it saved under the old one.
    kb.runtime.read(lambda s: s.execute(update(FewshotState).values(pool_signature="other")))
    kb.ingest([news("d3", "The CEO of Globex is Dana.", day=3)])
    assert states.keys() == []
