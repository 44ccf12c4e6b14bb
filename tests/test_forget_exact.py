"""Forgetting is exact: after forgetting documents the store is, fingerprint for
fingerprint, a fresh store that ingested the same stream without them.

Streams are short dated news in the fake world ("SUBJECT is OBJECT."), drawn from
small vocabularies so that later documents repeat, contradict and rewrite what
earlier ones said; forgets come in random groups and sequences.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text

from kbase.config import Settings
from kbase.embed.fake import HashingEmbedder
from kbase.fingerprint import describe, differences
from kbase.kb import KnowledgeBase
from kbase.llm.fake import world_llm
from kbase.sources.base import SourceDocument
from tests.conftest import PG_SERVER, OpenKB
from tests.helpers import news

ROLES = ("CEO", "CFO")
ORGS = ("Acme", "Globex", "Initech")
PEOPLE = ("Bob", "Alice", "Carol", "Dana")
CITIES = ("Leeds", "York", "Bath")

sentence = st.one_of(
    st.builds(
        "The {} of {} is {}.".format,
        st.sampled_from(ROLES),
        st.sampled_from(ORGS),
        st.sampled_from(PEOPLE),
    ),
    st.builds("The city of {} is {}.".format, st.sampled_from(ORGS), st.sampled_from(CITIES)),
)

Stream = list[SourceDocument]
Forgets = list[list[str]]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Stream, Forgets]:
    """A dated stream of 3-12 documents (of one or two chunks) and 1-4 groups of ids
    to forget in turn."""
    paragraph = st.lists(sentence, min_size=1, max_size=3).map(" ".join)
    texts = draw(st.lists(st.lists(paragraph, min_size=1, max_size=2), min_size=3, max_size=12))
    stream = [news(f"d{i}", "\n\n".join(t), day=i + 1) for i, t in enumerate(texts)]
    order = draw(st.permutations([d.doc_id for d in stream]))
    groups: Forgets = []
    rest = order[: draw(st.integers(1, min(4, len(order))))]
    while rest:
        size = draw(st.integers(1, min(2, len(rest))))
        groups.append(rest[:size])
        rest = rest[size:]
    return stream, groups


#: Small enough that two paragraphs of three sentences make two chunks.
CHUNK_TOKENS = 32
State = dict[str, list[list[object]]]
Open = Callable[[], KnowledgeBase]


def state(kb: KnowledgeBase) -> State:
    return kb.runtime.read(describe)  # type: ignore[no-any-return]


def assert_same(mine: State, theirs: State, what: str) -> None:
    assert mine == theirs, f"{what}:\n" + "\n".join(
        differences(mine, theirs, names=("the store that forgot", "the other"))
    )


def make_store(
    folder: Path, strategy: str, logprobs: bool, url: str | None = None
) -> KnowledgeBase:
    model = world_llm(logprobs=logprobs)
    return KnowledgeBase.open(
        folder,
        database_url=url,
        settings=Settings(embedder="fake", strategy=strategy, chunk_tokens=CHUNK_TOKENS),
        embedder=HashingEmbedder(),
        backend=lambda: model,
    )


def check_exact(new_store: Open, stream: Stream, groups: Forgets) -> None:
    """The three statements of exactness, on one stream."""
    by_id = {d.doc_id: d for d in stream}
    kb = new_store()
    kb.ingest(stream)
    kb.ask("Who is the CEO of Acme?")  # a recorded answer that cites what it retrieved
    # Forgetting the last document, then ingesting it again, is never forgetting it.
    before = state(kb)
    kb.forget([stream[-1].doc_id])
    kb.ingest([stream[-1]])
    assert_same(state(kb), before, "after forgetting the last document and ingesting it again")
    # After every forget: a fresh store of the stream without everything forgotten.
    gone: list[str] = []
    for group in groups:
        report = kb.forget(group)
        gone += group
        event("a forget replayed documents", bool(report.documents_replayed))
        event("a replay asked the model", bool(report.model_calls))
        event("a forget restored facts", bool(report.facts_restored))
        fresh = new_store()
        fresh.ingest([d for d in stream if d.doc_id not in gone])
        assert_same(state(kb), state(fresh), f"after forgetting {gone}")
    # Ingesting a forgotten document again appends it: the stream without it, then it
    # (the last fresh store holds the stream without it).
    back = by_id[gone[0]]
    kb.ingest([back])
    fresh.ingest([back])
    assert_same(state(kb), state(fresh), f"after forgetting {gone}, then ingesting {back.doc_id}")


@contextmanager
def sqlite_stores(strategy: str, logprobs: bool) -> Iterator[Open]:
    with tempfile.TemporaryDirectory() as tmp:
        opened: list[KnowledgeBase] = []

        def new_store() -> KnowledgeBase:
            opened.append(make_store(Path(tmp) / f"kb{len(opened)}", strategy, logprobs))
            return opened[-1]

        try:
            yield new_store
        finally:
            for kb in opened:
                kb.close()


CONFIGS = [
    pytest.param("rag", True, id="rag"),
    pytest.param("erase-paper", True, id="erase-paper"),
    pytest.param("kbase", True, id="kbase"),
    pytest.param("kbase", False, id="kbase-no-logprobs"),
]


@pytest.mark.parametrize(("strategy", "logprobs"), CONFIGS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_forgetting_equals_never_having_ingested(
    strategy: str, logprobs: bool, scenario: tuple[Stream, Forgets]
) -> None:
    stream, groups = scenario
    with sqlite_stores(strategy, logprobs) as new_store:
        check_exact(new_store, stream, groups)


@contextmanager
def postgres_stores(strategy: str) -> Iterator[Open]:
    """Stores in fresh schemas of the local server (each store needs its own)."""
    admin = create_engine(PG_SERVER.replace("postgresql:", "postgresql+psycopg:"))
    schemas: list[str] = []
    opened: list[KnowledgeBase] = []
    with tempfile.TemporaryDirectory() as tmp:

        def new_store() -> KnowledgeBase:
            schemas.append(f"kbexact_{uuid.uuid4().hex[:12]}")
            with admin.begin() as connection:
                connection.execute(text(f"CREATE SCHEMA {schemas[-1]}"))
            url = f"{PG_SERVER}?options=-csearch_path%3D{schemas[-1]}"
            opened.append(make_store(Path(tmp) / schemas[-1], strategy, True, url))
            return opened[-1]

        try:
            yield new_store
        finally:
            for kb in opened:
                kb.close()
            with admin.begin() as connection:
                for schema in schemas:
                    connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()


@pytest.mark.postgres
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_forgetting_is_exact_on_postgres(scenario: tuple[Stream, Forgets]) -> None:
    stream, groups = scenario
    with postgres_stores("kbase") as new_store:
        check_exact(new_store, stream, groups)


# -- what a forget costs, on constructed cases ------------------------------------------

CAROL = news("d0", "The CEO of Acme is Carol.", day=1)
BOB = news("d1", "The CEO of Acme is Bob. The city of Acme is Leeds.", day=2)
ZEBRAS = news("d2", "Zebras graze quietly.", day=3)
ALICE = news("d3", "The CEO of Acme is Alice.", day=4)


def fresh_state(open_kb: OpenKB, folder: Path, stream: Stream) -> State:
    fresh = open_kb(folder)
    fresh.ingest(stream)
    return state(fresh)


def test_forgetting_a_document_nothing_later_saw_replays_nothing(
    open_kb: OpenKB, tmp_path: Path
) -> None:
    llm = world_llm()
    kb = open_kb(tmp_path / "kb", llm=llm)
    kb.ingest([BOB, ZEBRAS, ALICE])
    llm.requests.clear()
    report = kb.forget(["d2"])
    assert (report.documents_replayed, report.model_calls, report.replayed_calls) == (0, 0, 0)
    assert (report.facts_removed, report.facts_restored) == (1, 0)
    assert llm.calls == 0
    assert state(kb) == fresh_state(open_kb, tmp_path / "fresh", [BOB, ALICE])


def test_forgetting_a_rewritten_fact_replays_from_the_rewrite_and_asks_only_new_requests(
    open_kb: OpenKB, tmp_path: Path
) -> None:
    llm = world_llm()
    kb = open_kb(tmp_path / "kb", llm=llm)
    kb.ingest([CAROL, BOB, ZEBRAS, ALICE])  # Bob rewrites Carol; Alice rewrites Bob
    llm.requests.clear()
    report = kb.forget(["d1"])
    # Zebras saw nothing of Bob; Alice is replayed and now judges Carol, whose rewrite
    # is Alice's own new fact.
    assert report.documents_replayed == 1
    assert [r.task for r in llm.requests] == ["verdict"]
    assert llm.requests[0].fields["fact"] == "The CEO of Acme is Carol."
    assert (report.model_calls, report.replayed_calls) == (1, 1)  # the extraction is recorded
    assert (report.facts_removed, report.facts_restored) == (1, 0)  # Leeds; Alice stays
    assert state(kb) == fresh_state(open_kb, tmp_path / "fresh", [CAROL, ZEBRAS, ALICE])


def test_forgetting_the_rewrite_restores_the_rewritten_fact(
    open_kb: OpenKB, tmp_path: Path
) -> None:
    llm = world_llm()
    kb = open_kb(tmp_path / "kb", llm=llm)
    kb.ingest([BOB, ALICE])
    llm.requests.clear()
    report = kb.forget(["d3"])
    assert (report.documents_replayed, report.model_calls) == (0, 0)
    assert (report.facts_removed, report.facts_restored) == (1, 1)  # Alice out, Bob back
    assert state(kb) == fresh_state(open_kb, tmp_path / "fresh", [BOB])


def test_several_documents_forgotten_at_once_replay_each_survivor_once(
    open_kb: OpenKB, tmp_path: Path
) -> None:
    cfo = news("d4", "The CFO of Acme is Dana.", day=5)
    cfo_again = news("d5", "The CFO of Acme is Alice.", day=6)
    stream = [CAROL, BOB, cfo, ALICE, cfo_again]
    llm = world_llm()
    kb = open_kb(tmp_path / "kb", llm=llm)
    kb.ingest(stream)
    llm.requests.clear()
    report = kb.forget(["d1", "d3"])
    # Replayed from the first survivor after d1 that could have seen it: d4, then d5.
    assert report.documents_replayed == 2
    assert report.model_calls == llm.calls
    survivors = [CAROL, cfo, cfo_again]
    assert state(kb) == fresh_state(open_kb, tmp_path / "fresh", survivors)


def test_forgetting_a_fact_a_later_document_found_by_name_replays_that_document(
    open_kb: OpenKB, tmp_path: Path
) -> None:
    # The rename found the members fact by its name, not by meaning (a radius of 0.99
    # finds nothing): only the recorded name lookup says the rename must be replayed,
    # so that its rewrite of the forgotten fact goes too.
    members = news("d1", "Lendmoor Mutual has about 90,000 members.", day=2)
    renamed = news("d2", "Lendmoor Mutual will now be known as Northreach Bank.", day=3)
    kb = open_kb(tmp_path / "kb", candidate_threshold=0.99)
    kb.ingest([members, renamed])
    assert "Northreach Bank has about 90,000 members." in {f.text for f in kb.facts()}
    report = kb.forget(["d1"])
    assert report.documents_replayed == 1
    fresh = open_kb(tmp_path / "fresh", candidate_threshold=0.99)
    fresh.ingest([renamed])
    assert state(kb) == state(fresh)
