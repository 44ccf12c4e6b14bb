"""Crash safety: ``kb ingest`` and ``kb forget`` killed with SIGKILL at random moments.

Each kill point runs the real command in a child process (see tests/crashkit.py),
on a knowledge base of fakes, and kills it. The random kill points kill it a random
time into the command (drawn within the duration of an uninterrupted run; a quarter
of them within its last 15 %, where the last commit meets the index save); a run
that ends before its signal is run again and killed at the same fraction of its
progress (the step, of the flushes and commits the uninterrupted run counted, at
that fraction), so every kill point hits a running command however fast the
machine is. The other tests kill the command at a named point of progress (inside
the transaction of a given document), never after a measured time. Then:

- the next command opens the store, and the vector index file agrees with SQL
  (``verify_index`` finds nothing);
- no document is half-stored: every stored document has its chunks and its
  recorded ingest answers, nothing refers to a document that is not stored, and
  the stored documents are a prefix of the batch, in order;
- re-running the interrupted command finishes the job, and the store is then the
  one an uninterrupted run gives (same fingerprint: documents once each, facts,
  validity, provenance, records).

Every test runs on SQLite and on PostgreSQL (each store copy its own database,
made from the reference one as a template), the latter with fewer kill points; in
the PostgreSQL tier (``KBASE_TEST_DATABASE=postgres``) the SQLite case is skipped
and the PostgreSQL one runs as many kill points as SQLite does.

The number of kill points is bounded (``$KBASE_CRASH_POINTS`` scales it, the seed
is ``$KBASE_CRASH_SEED``); each test prints its tally of kill points tried and
survived.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select

from kbase.config import Settings
from kbase.fingerprint import fingerprint
from kbase.kb import KnowledgeBase
from kbase.llm.fake import world_news
from kbase.ops.verify import verify_index
from kbase.runtime import CONFIG_FILE
from kbase.store.models import Chunk, Document, Fact, LLMRecordUse
from tests.conftest import ON_POSTGRES, PostgresStores, database_url_of
from tests.crashkit import (
    run_and_kill,
    run_and_kill_at,
    run_child,
    run_cli,
    step,
    storing,
    write_jsonl,
)
from tests.helpers import rows_holding

BATCH = 30
FORGOTTEN = "d03"
SEED = int(os.environ.get("KBASE_CRASH_SEED", "20240611"))
SCALE = float(os.environ.get("KBASE_CRASH_POINTS", "1"))
#: Kill points (ingest, forget) per database, default and slow tier: PostgreSQL runs
#: fewer, unless it is the database of the tier.
POINTS = {"sqlite": (14, 10), "postgres": (14, 10) if ON_POSTGRES else (3, 3)}
SLOW_POINTS = {"sqlite": (56, 40), "postgres": (56, 40) if ON_POSTGRES else (14, 10)}


@dataclass
class World:
    """Reference stores made by uninterrupted runs, how long those runs took and how
    many steps (flushes and commits) they counted."""

    database: str  # sqlite or postgres
    pg: PostgresStores | None
    root: Path
    batch: Path
    ids: list[str]
    canary: str
    empty: Path
    ingested: Path
    forgotten: Path
    ingest_seconds: float
    forget_seconds: float
    ingest_steps: int
    forget_steps: int
    ingest_print: str
    forget_print: str


@dataclass
class Tally:
    """Kill points of one test: tried (the signal hit a running command), survived
    (every check held afterwards) and the failures seen."""

    name: str
    points: int = 0
    tried: int = 0
    finished_first: int = 0
    failures: list[str] = field(default_factory=list)
    #: Where the kills landed, as the store showed it afterwards.
    landed: Counter[str] = field(default_factory=Counter)

    @property
    def survived(self) -> int:
        return self.tried - len(self.failures)

    def line(self) -> str:
        return (
            f"crash[{self.name}]: seed {SEED}, {self.tried} of {self.points} kill points tried, "
            f"{self.survived} survived ({self.finished_first} runs ended before their signal "
            "and were killed again at the same fraction of their progress); "
            f"landed: {dict(sorted(self.landed.items()))}"
        )


def store_print(folder: Path) -> str:
    with KnowledgeBase.open(folder, create=False) as kb:
        return str(kb.runtime.read(fingerprint))


def copy_store(source: Path, target: Path, pg: PostgresStores | None = None) -> Path:
    """Copy the knowledge base at ``source`` to ``target`` (replacing what is there);
    a PostgreSQL store is copied into a new database."""
    old = database_url_of(target)
    shutil.rmtree(target, ignore_errors=True)
    if old is not None and pg is not None:
        pg.drop_database(old)
    shutil.copytree(source, target)
    url = database_url_of(source)
    if url is not None:
        assert pg is not None, "a PostgreSQL store is copied by its PostgresStores"
        config = json.loads((source / CONFIG_FILE).read_text())
        config["database_url"] = pg.database(template=url)
        (target / CONFIG_FILE).write_text(json.dumps(config))
    return target


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    if request.param == "sqlite" and ON_POSTGRES:
        pytest.skip("the PostgreSQL tier runs the kill points as the [postgres] case")
    pg = PostgresStores() if request.param == "postgres" else None
    root = tmp_path_factory.mktemp("crash")
    canary = uuid.uuid4().hex
    records = world_news(BATCH)
    records[3]["text"] += f" The code of item 3 is {canary}."
    batch = write_jsonl(root / "batch.jsonl", records)
    empty = root / "empty"
    KnowledgeBase.open(
        empty,
        database_url=pg.database() if pg else None,
        settings=Settings(embedder="fake", llm="fake"),
    ).close()
    ingested = copy_store(empty, root / "ingested", pg)
    ingest = run_child(["--kb", str(ingested), "ingest", "-q", str(batch)])
    assert ingest.code == 0, ingest.err
    forgotten = copy_store(ingested, root / "forgotten", pg)
    forget = run_child(["--kb", str(forgotten), "forget", FORGOTTEN])
    assert forget.code == 0, forget.err
    built = World(
        database=request.param,
        pg=pg,
        root=root,
        batch=batch,
        ids=[r["id"] for r in records],
        canary=canary,
        empty=empty,
        ingested=ingested,
        forgotten=forgotten,
        ingest_seconds=ingest.seconds,
        forget_seconds=forget.seconds,
        ingest_steps=ingest.steps,
        forget_steps=forget.steps,
        ingest_print=store_print(ingested),
        forget_print=store_print(forgotten),
    )
    try:
        yield built
    finally:
        if pg is not None:
            pg.drop_all()


def stored_ids(folder: Path) -> list[str]:
    listed = run_cli(["--kb", str(folder), "docs", "list", "--json"])
    assert listed.code == 0, listed.err
    return [d["doc_id"] for d in json.loads(listed.out)]


def problems_after_crash(folder: Path) -> list[str]:
    """What is wrong with the store a killed command left, as seen by the next ones."""
    problems: list[str] = []
    nxt = run_cli(["--kb", str(folder), "stats", "--json"])  # the next command
    if nxt.code != 0:
        return [f"the next command failed: {nxt.err.strip()}"]
    with KnowledgeBase.open(folder, create=False) as kb:
        problems += [f"index: {p}" for p in verify_index(kb.runtime)]

        def half_stored(session) -> list[str]:  # type: ignore[no-untyped-def]
            docs = dict(session.execute(select(Document.pk, Document.doc_id)).tuples().all())
            chunked = set(session.scalars(select(Chunk.document_pk).distinct()))
            with_facts = set(session.scalars(select(Fact.document_pk).distinct()))
            asked = set(
                session.scalars(
                    select(LLMRecordUse.document_pk).where(LLMRecordUse.role == "ingest").distinct()
                )
            )
            found = [f"{docs[pk]} has no chunks" for pk in docs.keys() - chunked]
            found += [f"{docs[pk]} has no recorded ingest answers" for pk in docs.keys() - asked]
            orphans = (chunked | with_facts | asked) - docs.keys()
            if orphans:
                found.append(f"rows of documents that are not stored: {sorted(orphans)}")
            listed = stored_ids(folder)
            if len(listed) != len(chunked | with_facts):
                found.append(
                    f"`kb docs list` shows {len(listed)} documents, "
                    f"{len(chunked | with_facts)} have facts or chunks"
                )
            return found

        problems += kb.runtime.read(half_stored)
    leftovers = sorted(p.name for p in folder.rglob("*.tmp"))
    if leftovers:
        problems.append(f"temporary files left behind: {leftovers}")
    return problems


def holding(folder: Path, needle: str) -> list[str]:
    """The files under the folder, and the tables of a PostgreSQL store, holding ``needle``."""
    found = sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and needle.encode() in p.read_bytes()
    )
    url = database_url_of(folder)
    return found + ([f"table {t}" for t in rows_holding(url, needle)] if url else [])


def kill(
    world: World,
    source: Path,
    folder: Path,
    args: list[str],
    moment: float,
    reference: tuple[float, int],
    tally: Tally,
) -> str | None:
    """Copy ``source`` to ``folder`` and kill ``kb ARGS`` there ``moment`` seconds in. A
    run that ends first (their pace varies with the machine's) is run again and killed
    at the same fraction of its progress: ``reference`` is the uninterrupted run's
    (seconds, steps), and a run always reaches each of those steps. Returns where the
    signal hit a running command, or None."""
    copy_store(source, folder, world.pg)
    if run_and_kill(args, moment):
        tally.tried += 1
        return f"{moment:.3f} s"
    tally.finished_first += 1
    duration, steps = reference
    k = min(steps, max(1, math.ceil(moment / duration * steps)))
    copy_store(source, folder, world.pg)
    if run_and_kill_at(args, step(k)):
        tally.tried += 1
        return f"step {k} of {steps} (its run ended before {moment:.3f} s)"
    return None


def ingest_kill_point(world: World, folder: Path, after: float, tally: Tally) -> None:
    args = ["--kb", str(folder), "ingest", "-q", str(world.batch)]
    hit = kill(
        world, world.empty, folder, args, after, (world.ingest_seconds, world.ingest_steps), tally
    )
    if hit is None:
        tally.failures.append(f"ingest at {after:.3f} s: the run ended before its kill point")
        return
    where = f"ingest killed at {hit}"
    problems = problems_after_crash(folder)
    ids = stored_ids(folder)
    tally.landed[
        "before the first commit"
        if not ids
        else "after the last commit"
        if len(ids) == len(world.ids)
        else "mid-batch"
    ] += 1
    if ids != world.ids[: len(ids)]:
        problems.append(f"stored documents are not a prefix of the batch: {ids}")
    rerun = run_cli(args)
    if rerun.code != 0:
        problems.append(f"the re-run failed: {rerun.err.strip()}")
    elif stored_ids(folder) != world.ids:
        problems.append(f"after the re-run the documents are {stored_ids(folder)}")
    elif store_print(folder) != world.ingest_print:
        problems.append("after the re-run the store differs from an uninterrupted ingest")
    if problems:
        tally.failures.append(f"{where} ({len(ids)} stored): " + "; ".join(problems))


def forget_kill_point(world: World, folder: Path, after: float, tally: Tally) -> None:
    args = ["--kb", str(folder), "forget", FORGOTTEN]
    hit = kill(
        world,
        world.ingested,
        folder,
        args,
        after,
        (world.forget_seconds, world.forget_steps),
        tally,
    )
    if hit is None:
        tally.failures.append(f"forget at {after:.3f} s: the run ended before its kill point")
        return
    where = f"forget killed at {hit}"
    problems = problems_after_crash(folder)
    ids = stored_ids(folder)
    tally.landed["before the commit" if FORGOTTEN in ids else "after the commit"] += 1
    if ids not in (world.ids, [i for i in world.ids if i != FORGOTTEN]):
        problems.append(f"the documents are neither all nor all but {FORGOTTEN}: {ids}")
    # A kill after the commit left nothing to forget: --missing-ok finishes the job.
    rerun = run_cli([*args, "--missing-ok"])
    gone = f"{FORGOTTEN}: not stored, nothing to do" in rerun.out
    if rerun.code != 0:
        problems.append(f"the re-run failed: {rerun.err.strip()}")
    elif gone == (FORGOTTEN in ids):
        problems.append(f"the re-run says {rerun.out.strip()!r}, and {FORGOTTEN} was listed: {ids}")
    elif store_print(folder) != world.forget_print:
        problems.append("after the re-run the store differs from an uninterrupted forget")
    elif holding(folder, world.canary):
        problems.append(f"the forgotten text is still in {holding(folder, world.canary)}")
    if problems:
        tally.failures.append(f"{where}: " + "; ".join(problems))


def run_kill_points(
    world: World,
    name: str,
    count: int,
    duration: float,
    point: Callable[[Path, float, Tally], None],
    folder: Path,
) -> Tally:
    # SQLite keeps the draws of the runs reported in docs/reliability.md.
    rng = random.Random(f"{SEED}:{name}" + ("" if world.database == "sqlite" else ":pg"))
    tally = Tally(f"{name}, {world.database}", points=max(1, round(count * SCALE)))
    for _ in range(tally.points):
        # A quarter aim at the end, where the last commit meets the index save.
        tail = rng.random() < 0.25
        point(folder, rng.uniform(0.85 * duration if tail else 0.0, duration), tally)
    print(tally.line())
    return tally


def test_the_reference_runs_are_what_the_kill_points_compare_with(world: World) -> None:
    assert stored_ids(world.ingested) == world.ids
    assert stored_ids(world.forgotten) == [i for i in world.ids if i != FORGOTTEN]
    stored_in = holding(world.ingested, world.canary)
    if world.database == "sqlite":
        assert stored_in == ["kbase.db"]
    else:
        assert stored_in and all(place.startswith("table ") for place in stored_in), stored_in
        assert database_url_of(world.ingested) != database_url_of(world.forgotten)
    assert holding(world.forgotten, world.canary) == []
    assert world.ingest_print != world.forget_print
    # The steps the random kill points fall back on (see crashkit.Progress).
    assert world.ingest_steps > BATCH and world.forget_steps > 0


def test_ingest_killed_at_random_points_leaves_a_consistent_store_and_resumes(
    world: World, tmp_path: Path
) -> None:
    def point(folder: Path, after: float, tally: Tally) -> None:
        ingest_kill_point(world, folder, after, tally)

    count = POINTS[world.database][0]
    tally = run_kill_points(world, "ingest", count, world.ingest_seconds, point, tmp_path / "kb")
    assert tally.tried == tally.points, tally.line()
    assert tally.failures == [], tally.line()


def test_forget_killed_at_random_points_is_either_undone_or_finished_by_a_rerun(
    world: World, tmp_path: Path
) -> None:
    def point(folder: Path, after: float, tally: Tally) -> None:
        forget_kill_point(world, folder, after, tally)

    count = POINTS[world.database][1]
    tally = run_kill_points(world, "forget", count, world.forget_seconds, point, tmp_path / "kb")
    assert tally.tried == tally.points, tally.line()
    assert tally.failures == [], tally.line()


def test_a_30_document_batch_killed_twice_in_the_middle_stores_every_document_once(
    world: World, tmp_path: Path
) -> None:
    folder = copy_store(world.empty, tmp_path / "kb", world.pg)
    args = ["--kb", str(folder), "ingest", "-q", str(world.batch)]
    # Killed inside the 13th document's transaction, then inside the 22nd's.
    assert run_and_kill_at(args, storing(world.ids[12]))
    first = stored_ids(folder)
    assert first == world.ids[:12]
    assert run_and_kill_at(args, storing(world.ids[21]))
    second = stored_ids(folder)
    assert second == world.ids[:21]
    assert problems_after_crash(folder) == []
    rerun = run_cli(["--kb", str(folder), "ingest", str(world.batch)])
    assert rerun.code == 0, rerun.err
    assert f"Stored {BATCH - len(second)} documents ({len(second)} unchanged)" in rerun.out
    assert stored_ids(folder) == world.ids
    assert store_print(folder) == world.ingest_print
    print(f"crash[batch]: 2 kill points tried, 2 survived ({len(first)}, {len(second)} stored)")


def test_verify_as_the_first_command_after_a_crash_finds_the_store_consistent(
    world: World, tmp_path: Path
) -> None:
    folder = copy_store(world.empty, tmp_path / "kb", world.pg)
    args = ["--kb", str(folder), "ingest", "-q", str(world.batch)]
    # Killed inside the 16th document's transaction: 15 committed, the index behind.
    assert run_and_kill_at(args, storing(world.ids[15]))
    assert stored_ids(folder) == world.ids[:15]
    verify = run_cli(["--kb", str(folder), "verify"])
    assert verify.code == 0, verify.out


def test_a_kill_between_the_index_rename_and_the_stamp_rename_is_repaired(
    world: World, tmp_path: Path
) -> None:
    """FaissIndex.save renames the new index file into place, then its stamp: a kill
    between the two leaves the new vectors with the previous stamp, made here by hand."""
    folder = copy_store(world.ingested, tmp_path / "kb", world.pg)
    stamp = folder / "index" / "vectors.json"
    stamp.write_text(json.dumps({**json.loads(stamp.read_text()), "state": "previous"}))
    assert run_cli(["--kb", str(folder), "stats"]).code == 0  # the next command
    assert problems_after_crash(folder) == []


def test_a_forget_killed_after_its_commit_is_finished_by_a_rerun_with_missing_ok(
    world: World, tmp_path: Path
) -> None:
    """The state a kill between the forget's commit and its index save leaves, made by
    hand: SQL without the document, the index file of before."""
    folder = copy_store(world.forgotten, tmp_path / "kb", world.pg)
    shutil.rmtree(folder / "index")
    shutil.copytree(world.ingested / "index", folder / "index")
    plain = run_cli(["--kb", str(folder), "forget", FORGOTTEN])
    assert plain.code == 1 and f"no document with id {FORGOTTEN!r}" in plain.err
    rerun = run_cli(["--kb", str(folder), "forget", "--missing-ok", FORGOTTEN])
    assert (rerun.code, rerun.out) == (0, f"{FORGOTTEN}: not stored, nothing to do\n"), rerun.err
    with KnowledgeBase.open(folder, create=False) as kb:
        assert verify_index(kb.runtime) == []  # the re-run saved the index the forget did not
    assert problems_after_crash(folder) == []
    assert store_print(folder) == world.forget_print
    assert holding(folder, world.canary) == []


@pytest.mark.slow
def test_many_more_kill_points(world: World, tmp_path: Path) -> None:
    """The extended tier: four times the kill points, other seeds."""
    ingest = run_kill_points(
        world,
        "ingest-slow",
        SLOW_POINTS[world.database][0],
        world.ingest_seconds,
        lambda f, a, t: ingest_kill_point(world, f, a, t),
        tmp_path / "kb",
    )
    forget = run_kill_points(
        world,
        "forget-slow",
        SLOW_POINTS[world.database][1],
        world.forget_seconds,
        lambda f, a, t: forget_kill_point(world, f, a, t),
        tmp_path / "kb",
    )
    assert ingest.failures == [] and forget.failures == [], (ingest.line(), forget.line())
