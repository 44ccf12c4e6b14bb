"""The store is true in time: documents take their places by publication date,
whatever order they arrive in, and the store always equals the one that ingesting
its surviving documents in publication order would make (docs/design.md, "Time").

The property test draws streams of fake-world articles, arrival orders (batches
in any order, late articles), updated articles and forgets in between, and
compares the store's canonical fingerprint with a fresh store's.
``KBASE_TIME_ORDER_EXAMPLES`` sets how many streams each strategy gets (the soak
run in docs/reliability.md uses 1,000)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from kbase import KnowledgeBase, Settings, SourceDocument
from kbase.fingerprint import describe, differences
from kbase.llm.fake import ScriptedLLM, world_llm
from kbase.ops import ingest as ingest_op
from kbase.pipeline.strategies import STRATEGIES
from kbase.store.models import Document
from tests.conftest import OpenKB

EXAMPLES = int(os.environ.get("KBASE_TIME_ORDER_EXAMPLES", "30"))
START = datetime(2024, 1, 1)
SUBJECTS = ("The CEO of Acme", "The mayor of Leeds", "The coach of the Lions", "The CFO of Acme")
NAMES = ("Bob", "Alice", "Carol", "Dan")


def article(doc_id: str, text: str, day: int | None) -> SourceDocument:
    return SourceDocument(
        doc_id=doc_id,
        text=text,
        source="stream",
        title=f"News {doc_id}",
        url=f"https://news.example.org/{doc_id}",
        published=None if day is None else START + timedelta(days=day),
    )


@contextmanager
def store(strategy: str, llm: ScriptedLLM | None = None) -> Iterator[KnowledgeBase]:
    model = llm or world_llm()
    with tempfile.TemporaryDirectory() as folder:
        kb = KnowledgeBase.open(
            Path(folder) / "kb",
            settings=Settings(strategy=strategy, embedder="fake"),
            backend=lambda: model,
        )
        try:
            yield kb
        finally:
            kb.close()


def fingerprint(kb: KnowledgeBase) -> dict[str, Any]:
    return kb.runtime.read(describe)


def survivors(kb: KnowledgeBase) -> list[SourceDocument]:
    """The stored documents as they arrived, with the time each was received."""

    def load(session: Any) -> list[SourceDocument]:
        docs = session.query(Document).order_by(Document.doc_id)
        return [
            SourceDocument(
                doc_id=d.doc_id,
                text=d.text,
                source=d.source,
                title=d.title,
                url=d.url,
                published=d.published,
                received=d.ingested_at,
            )
            for d in docs
        ]

    return kb.runtime.read(load)


def reference(strategy: str, documents: list[SourceDocument]) -> dict[str, Any]:
    """The fingerprint of a fresh store that ingested ``documents`` in publication
    order, one by one."""
    with store(strategy) as kb:
        for doc in ingest_op.publication_order(documents):
            kb.ingest([doc])
        return fingerprint(kb)


# -- streams ------------------------------------------------------------------------
sentence = st.builds("{} is {}.".format, st.sampled_from(SUBJECTS), st.sampled_from(NAMES))
text = st.lists(sentence, min_size=1, max_size=2).map(" ".join)
day = st.one_of(st.integers(0, 30), st.integers(0, 30), st.integers(0, 30), st.none())
Step = tuple[Any, ...]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[SourceDocument], list[Step]]:
    """Articles, and the steps they arrive in: batches in any order (so articles
    arrive late), with an update or a forget after some batches."""
    n = draw(st.integers(2, 7))
    docs = [article(f"d{i}", draw(text), draw(day)) for i in range(n)]
    arrival = draw(st.permutations(range(n)))
    cuts = sorted(draw(st.sets(st.integers(1, n - 1), max_size=3)))
    batches = [arrival[a:b] for a, b in zip([0, *cuts], [*cuts, n], strict=True)]
    steps: list[Step] = []
    stored: list[int] = []
    for batch in batches:
        steps.append(("ingest", list(batch)))
        stored += batch
        action = draw(st.sampled_from(["none", "none", "forget", "update"]))
        if action != "none" and stored:
            i = draw(st.sampled_from(stored))
            if action == "forget":
                steps.append(("forget", i))
                stored.remove(i)
            else:
                steps.append(("update", i, draw(text), draw(day)))
    return docs, steps


def property_holds(strategy: str, case: tuple[list[SourceDocument], list[Step]]) -> list[str]:
    """The differences between the store the steps made and the reference (none:
    the property holds)."""
    docs, steps = case
    with store(strategy) as kb:
        for step in steps:
            if step[0] == "ingest":
                kb.ingest([docs[i] for i in step[1]])
            elif step[0] == "forget":
                kb.forget([docs[step[1]].doc_id])
            else:
                _, i, new_text, new_day = step
                kb.ingest([article(docs[i].doc_id, new_text, new_day)])
        mine, theirs = fingerprint(kb), reference(strategy, survivors(kb))
    return differences(mine, theirs, names=("the store", "the reference"))


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_any_arrival_order_gives_the_store_of_publication_order(strategy: str) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(scenarios())
    def check(case: tuple[list[SourceDocument], list[Step]]) -> None:
        assert property_holds(strategy, case) == []

    check()


# -- the property catches the known-bad variants --------------------------------------
def counterexample(strategy: str) -> tuple[list[SourceDocument], list[Step]] | None:
    try:
        return find_case(lambda case: property_holds(strategy, case) != [])
    except NoSuchExample:
        return None


def find_case(
    broken: Callable[[tuple[list[SourceDocument], list[Step]]], bool],
) -> tuple[list[SourceDocument], list[Step]]:
    from hypothesis import find

    return find(
        scenarios(),
        broken,
        # The first failing stream is enough: no shrinking.
        settings=settings(max_examples=300, deadline=None, database=None, phases=[Phase.generate]),
    )


def test_keeping_the_arrival_order_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest_op, "publication_order", list)
    monkeypatch.setattr(ingest_op.order, "seq_after", lambda *_a: None)
    assert counterexample("kbase") is not None


def test_placing_late_articles_without_replaying_later_ones_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ingest_op, "first_affected", lambda *_a: None)
    assert counterexample("kbase") is not None


def test_replaying_without_the_radius_rule_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cruder rule for which later documents to replay: only those that stored a
    fact with the very text of one of the late article's facts."""
    real = ingest_op.first_affected

    def same_text_only(session: Any, vectors: Any, targets: list[Document]) -> int | None:
        from sqlalchemy import select

        from kbase.store.models import Fact

        texts = set(session.scalars(select(Fact.text).where(Fact.document_pk == targets[0].pk)))
        later = session.scalars(
            select(Fact.valid_from)
            .where(Fact.text.in_(texts), Fact.valid_from > targets[0].seq)
            .order_by(Fact.valid_from)
        ).first()
        return None if later is None else int(later)

    assert real is not same_text_only
    monkeypatch.setattr(ingest_op, "first_affected", same_text_only)
    assert counterexample("kbase") is not None


# -- behaviour, case by case ------------------------------------------------------------
BOB = article("acme-bob", "The CEO of Acme is Bob.", 7)
ALICE = article("acme-alice", "The CEO of Acme is Alice.", 122)
LEEDS = article("leeds-plant", "The plant of Leeds is open.", 60)


def test_a_feed_listed_newest_first_answers_as_if_read_oldest_first() -> None:
    with store("kbase") as newest_first, store("kbase") as oldest_first:
        newest_first.ingest([ALICE, LEEDS, BOB])
        oldest_first.ingest([BOB])
        oldest_first.ingest([LEEDS])
        oldest_first.ingest([ALICE])
        assert fingerprint(newest_first) == fingerprint(oldest_first)
        assert newest_first.ask("Who is the CEO of Acme?").answer == "The CEO of Acme is Alice."
        past = newest_first.ask("Who is the CEO of Acme?", as_of=date(2024, 3, 1))
        assert past.answer == "The CEO of Acme is Bob."
        assert [c.doc_id for c in past.citations] == ["acme-bob"]


def test_a_late_article_is_inserted_at_its_date_and_later_ones_it_touches_are_replayed() -> None:
    with store("kbase") as kb:
        kb.ingest([ALICE])
        report = kb.ingest([BOB])  # January, read after May
        placed = report.stored[0]
        assert placed.later_documents == 1 and placed.documents_replayed == 1
        assert [d.doc_id for d in kb.documents()] == ["acme-bob", "acme-alice"]
        bob, alice = kb.history(kb.facts()[0].id)
        assert bob.valid_from.published == "2024-01-08" and bob.valid_until is not None
        assert bob.valid_until.published == "2024-05-02" and bob.closed_by == "acme-alice"
        assert alice.valid_from.published == "2024-05-02" and alice.current
        assert kb.ask("Who is the CEO of Acme?").answer == "The CEO of Acme is Alice."


def test_a_late_article_no_later_one_could_have_seen_costs_no_replay_and_no_model_call() -> None:
    llm = world_llm()
    with store("kbase", llm) as kb:
        kb.ingest([ALICE])
        calls = llm.calls
        report = kb.ingest([article("globex", "The harbour of Hull is busy.", 3)])
        placed = report.stored[0]
        assert placed.later_documents == 1 and placed.documents_replayed == 0
        assert report.documents_replayed == 0
        assert llm.calls - calls == placed.llm_calls  # the late article's own calls only


def test_as_of_a_date_uses_only_documents_published_by_then() -> None:
    with store("kbase") as kb:
        kb.ingest([ALICE, article("acme-cfo", "The CFO of Acme is Dan.", 200)])
        kb.ingest([BOB])
        facts = kb.search("Acme", k=8, as_of=date(2024, 5, 1))
        assert {f.doc_id for f in facts} == {"acme-bob"}


def test_extreme_dates_take_their_places_and_as_of_the_first_day_cites_only_its_document() -> None:
    docs = [
        SourceDocument("far", "The CEO of Acme is Zed.", "s", published=datetime(9999, 12, 31)),
        SourceDocument("first", "The CEO of Acme is Ann.", "s", published=datetime(1, 1, 1)),
        SourceDocument("epoch", "The CEO of Acme is Eve.", "s", published=datetime(1970, 1, 1)),
    ]
    with store("kbase") as kb:
        kb.ingest(docs)
        assert [d.doc_id for d in kb.documents()] == ["first", "epoch", "far"]
        answer = kb.ask("Who is the CEO of Acme?", as_of=date(1, 1, 1))
        assert [c.doc_id for c in answer.citations] == ["first"]
        assert answer.answer == "The CEO of Acme is Ann."


def test_an_updated_article_is_a_new_version_and_does_not_stop_the_batch() -> None:
    with store("kbase") as kb:
        kb.ingest([BOB, ALICE])
        fixed = article("acme-bob", "The CEO of Acme is Bobby.", 7)
        report = kb.ingest([fixed, LEEDS])
        assert report.updated == ["acme-bob"]
        assert sorted(d.doc_id for d in report.stored) == ["acme-bob", "leeds-plant"]
        shown = kb.document("acme-bob")
        assert shown.version == 2 and shown.first_ingested_at is not None
        assert fingerprint(kb) == reference("kbase", survivors(kb))
        assert kb.verify(deep=True).ok


def test_a_late_article_named_by_a_later_rename_is_renamed_as_in_publication_order(
    open_kb: OpenKB, tmp_path: Path
) -> None:
    # The rename finds facts by name, not by meaning (a radius of 0.99 finds nothing):
    # the late article's fact is renamed only because the rename's name lookup is
    # recorded and the rename replayed after the late article is placed before it.
    members = article("d1", "Lendmoor Mutual has about 90,000 members.", day=2)
    renamed = article("d2", "Lendmoor Mutual will now be known as Northreach Bank.", day=3)
    late = open_kb(tmp_path / "late", candidate_threshold=0.99)
    late.ingest([renamed])
    late.ingest([members])
    assert "Northreach Bank has about 90,000 members." in {f.text for f in late.facts()}
    in_order = open_kb(tmp_path / "in-order", candidate_threshold=0.99)
    in_order.ingest([members, renamed])
    assert fingerprint(late) == fingerprint(in_order)
