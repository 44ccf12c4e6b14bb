"""Hardening (issue 19, the Medium and Low findings): what a failed extraction, a busy
writer, a secret in a URL, a full disk, a damaged folder or a hostile model server does.

Each test states the rule a finding of the adversarial pass broke; docs/reliability.md
lists them ("Hostile input: the adversarial pass of issue 19"). The generated
counterparts of the model-server answers are in tests/test_fuzz.py, section 10.
"""

from __future__ import annotations

import errno
import getpass
import json
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from kbase.embed.fake import HashingEmbedder
from kbase.errors import BadModelOutput, DiskFull, ModelError, StoreError, redact
from kbase.kb import KnowledgeBase
from kbase.llm.base import LLMRequest, LLMResponse, Message
from kbase.llm.fake import ScriptedLLM, world
from kbase.llm.openai_backend import OpenAIBackend
from kbase.locking import SCRATCH_PREFIX, clean_scratch
from kbase.ops.verify import verify_index
from kbase.sources.base import SourceDocument
from kbase.store.models import Document, LLMRecord, Meta
from tests.conftest import ON_POSTGRES, OpenKB
from tests.helpers import news
from tests.test_fuzz import fast_fakes, free_port, run_main

ROOT = Path(__file__).resolve().parents[1]
BOB = news("acme-1", "The CEO of Acme is Bob.", day=1)
GLOBEX = news("globex-1", "The CEO of Globex is Dana.", day=2)
CEO = "Who is the CEO of Acme?"


def count(kb: KnowledgeBase, model: type[Any]) -> int:
    return int(kb.runtime.read(lambda s: s.scalar(select(func.count()).select_from(model))))


def doc_ids(kb: KnowledgeBase) -> list[str]:
    return kb.runtime.read(
        lambda s: list(s.scalars(select(Document.doc_id).order_by(Document.seq)))
    )


# -- a document whose extraction failed is not stored, so the next ingest retries it ------
def test_a_document_whose_extraction_failed_is_not_stored_and_the_next_ingest_retries_it(
    open_kb: OpenKB, tmp_path: Path, database_url: str | None
) -> None:
    def garbage_for_globex(request: LLMRequest) -> str | Any:
        if request.task == "extract" and "Globex" in request.fields.get("chunk", ""):
            return "I am sorry, as a language model { no"
        return world(request)

    folder = tmp_path / "kb"
    broken = ScriptedLLM(garbage_for_globex)
    kb = open_kb(folder, llm=broken, database_url=database_url)
    report = kb.ingest([BOB, GLOBEX])
    assert [d.doc_id for d in report.stored] == ["acme-1"]
    assert [(d.doc_id, d.chunks_skipped) for d in report.failed] == [("globex-1", 1)]
    assert doc_ids(kb) == ["acme-1"]
    # Nothing of it: no chunk, no fact, no recorded answer, so a retry asks the model.
    assert not any(
        "Globex" in r for r in kb.runtime.read(lambda s: list(s.scalars(select(LLMRecord.request))))
    )
    kb.close()

    healed = open_kb(folder, database_url=database_url)  # the fake world: a working model
    again = healed.ingest([BOB, GLOBEX])
    assert again.unchanged == ["acme-1"] and [d.doc_id for d in again.stored] == ["globex-1"]
    assert again.failed == []
    assert "The CEO of Globex is Dana." in {f.text for f in healed.facts()}
    assert verify_index(healed.runtime) == []
    assert healed.verify(deep=True).problems == []


def test_a_fact_holding_nul_from_the_model_is_stored_without_it_on_every_database(
    open_kb: OpenKB, database_url: str | None
) -> None:
    """Found by the fuzzing's PostgreSQL tier: ``"\\u0000"`` in an extraction answer
    became a fact PostgreSQL refused (``DataError``), SQLite stored it."""

    def nul_facts(request: LLMRequest) -> str | Any:
        if request.task == "extract":
            return json.dumps({"facts": ["The CEO of Acme is B\x00ob.", "Zed\ud800 is 0\x00."]})
        return world(request)

    kb = open_kb(llm=ScriptedLLM(nul_facts), database_url=database_url)
    report = kb.ingest([BOB])
    assert [d.doc_id for d in report.stored] == ["acme-1"]
    texts = {f.text for f in kb.facts()}
    assert "The CEO of Acme is Bob." in texts and not any("\x00" in t for t in texts)


# -- readers never fail because a writer or another reader is busy ------------------------
def _slow_writer(entered: threading.Event, release: threading.Event) -> ScriptedLLM:
    """The fake world, whose extraction of a chunk naming Globex waits for ``release``
    (a writer whose document takes long, inside its transaction)."""

    def handler(request: LLMRequest) -> str | Any:
        if request.task == "extract" and "Globex" in request.fields.get("chunk", ""):
            entered.set()
            release.wait(120)
        return world(request)

    return ScriptedLLM(handler)


def test_ask_answers_while_a_writer_holds_a_long_transaction(
    open_kb: OpenKB, tmp_path: Path, database_url: str | None
) -> None:
    folder = tmp_path / "kb"
    open_kb(folder, database_url=database_url).ingest([BOB])
    entered, release = threading.Event(), threading.Event()
    writer = open_kb(folder, llm=_slow_writer(entered, release), database_url=database_url)
    failures: list[BaseException] = []

    def write() -> None:
        try:
            writer.ingest([GLOBEX])
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    try:
        assert entered.wait(60), "the writer never reached its extraction"
        reader = open_kb(folder, database_url=database_url)
        answer = reader.ask(CEO)  # a new question: its answer is not recorded yet
        assert answer.known and [c.doc_id for c in answer.citations] == ["acme-1"]
        # The reader finished while the writer still held its transaction open.
        assert thread.is_alive() and not release.is_set()
    finally:
        release.set()
        thread.join(120)
    assert failures == []
    assert doc_ids(reader) == ["acme-1", "globex-1"]
    assert reader.ask(CEO).citations[0].doc_id == "acme-1"  # recorded now, or answered again


def test_two_identical_new_questions_at_once_both_get_their_answer(
    open_kb: OpenKB, tmp_path: Path, database_url: str | None
) -> None:
    folder = tmp_path / "kb"
    open_kb(folder, database_url=database_url).ingest([BOB])
    both = threading.Barrier(2, timeout=60)

    def together(request: LLMRequest) -> str | Any:
        if request.task == "answer":
            both.wait()  # each has looked for a recorded answer and found none
        return world(request)

    readers = [
        open_kb(folder, llm=ScriptedLLM(together), database_url=database_url) for _ in range(2)
    ]
    answers: list[Any] = [None, None]
    failures: list[BaseException] = []

    def ask(i: int) -> None:
        try:
            answers[i] = readers[i].ask(CEO)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    assert answers[0] == answers[1] and answers[0].known
    assert count(readers[0], LLMRecord) <= 3  # extraction, and the answer once at most


def test_recording_an_answer_another_process_recorded_first_keeps_the_first(
    open_kb: OpenKB, database_url: str | None
) -> None:
    """The writer's path too: an identical request recorded meanwhile is not an error."""
    kb = open_kb(
        database_url=database_url,
        llm=ScriptedLLM(lambda r: world(r) if r.task != "probe" else "ok"),
    )
    kb.ingest([BOB])
    rt = kb.runtime
    with rt.session() as session, session.begin():
        recorder = rt.recorder(session)
        recorder.guard = None  # as a writer records
        request = LLMRequest("probe", (Message("user", "same"),), "v1")
        first = recorder.generate(request, [])
        recorder.session.expunge_all()  # as if another process had recorded it
        key = request.key(recorder.model_id)
        recorder._record(key, {"key": key, "model": "x", "task": "answer", "request": "{}",
                               "response": first.to_json(), "prompt_tokens": 0,
                               "cached_tokens": 0, "completion_tokens": 0, "seconds": 0.0,
                               "created_at": datetime(2024, 1, 1)}, [])  # fmt: skip
        assert session.get(LLMRecord, key) is not None


# -- secrets stay out of files and messages ------------------------------------------------
CANARY = "s3cret-Canary-71"


def with_password(url: str) -> str:
    parsed = make_url(url)
    return parsed.set(username=getpass.getuser(), password=CANARY).render_as_string(
        hide_password=False
    )


def files_holding(folder: Path, needle: str) -> list[str]:
    return [
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and needle.encode() in p.read_bytes()
    ]


@pytest.mark.postgres
def test_a_database_password_is_never_written_to_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_url: str
) -> None:
    fast_fakes(monkeypatch)
    folder = tmp_path / "kb"
    secret_url = with_password(pg_url)
    code, out, err = run_main(["--kb", str(folder), "--db", secret_url, "init"])
    assert code == 0, err
    assert files_holding(folder, CANARY) == []
    stored = json.loads((folder / "kbase.json").read_text())["database_url"]
    assert stored == redact(secret_url).replace(":***@", "@")
    # The password comes from the environment on every later command.
    monkeypatch.setenv("KBASE_DATABASE_URL", secret_url)
    code, out, err = run_main(["--kb", str(folder), "stats"])
    assert code == 0 and CANARY not in out + err, err
    engine = create_engine(pg_url.replace("postgresql:", "postgresql+psycopg:"))
    with engine.connect() as connection:
        values = connection.scalars(text("SELECT value FROM meta")).all()
    engine.dispose()
    assert not any(CANARY in v for v in values)


def test_a_password_in_the_llm_url_is_neither_stored_nor_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast_fakes(monkeypatch)
    folder, source = tmp_path / "kb", tmp_path / "a.txt"
    source.write_text("The CEO of Acme is Bob.")
    url = f"http://kb:{CANARY}@127.0.0.1:{free_port()}/v1"
    code, _, err = run_main(
        ["--kb", str(folder), "--llm", "openai", "--llm-url", url, "--model", "m", "init"]
    )
    assert code == 0, err
    code, out, err = run_main(["--kb", str(folder), "ingest", str(source)])
    assert code == 1 and "LLM server at http://kb@127.0.0.1:" in err, err  # the stored URL
    code, out2, err2 = run_main(["--kb", str(folder), "--llm-url", url, "ingest", str(source)])
    assert code == 1 and "LLM server at http://kb:***@127.0.0.1:" in err2, err2
    assert CANARY not in out + err + out2 + err2
    with KnowledgeBase.open(folder, create=False) as kb:
        settings = kb.runtime.read(lambda s: s.get_one(Meta, "settings").value)
    assert CANARY not in settings and json.loads(settings)["llm_url"].startswith("http://kb@")
    assert files_holding(folder, CANARY) == []


def test_a_failed_init_leaves_nothing_so_a_retry_with_a_good_url_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast_fakes(monkeypatch)
    folder = tmp_path / "kb"
    bad = f"postgresql://kb:{CANARY}@127.0.0.1:1/test"
    code, _, err = run_main(["--kb", str(folder), "--db", bad, "init"])
    assert code == 1 and err.startswith("Error: cannot connect to the database"), err
    assert CANARY not in err and not folder.exists()
    code, _, err = run_main(["--kb", str(folder), "init"])  # SQLite in the folder this time
    assert code == 0, err


def test_redact_hides_the_password_of_every_url_in_a_message() -> None:
    message = f"at postgresql://kb:{CANARY}@h/db and http://u:{CANARY}@x/v1?password={CANARY}"
    assert CANARY not in redact(message)
    assert "postgresql://kb:***@h/db" in redact(message)


# -- verify --deep never touches the real store; its scratch copy stays in the folder -----
@pytest.mark.postgres
def test_deep_verification_with_the_database_in_the_environment_rebuilds_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_url: str
) -> None:
    fast_fakes(monkeypatch)
    monkeypatch.setenv("KBASE_DATABASE_URL", pg_url)
    folder, source = tmp_path / "kb", tmp_path / "a.jsonl"
    source.write_text(json.dumps({"id": "a", "text": "The CEO of Acme is Bob."}) + "\n")
    code, _, err = run_main(["--kb", str(folder), "ingest", str(source)])
    assert code == 0, err
    code, out, err = run_main(["--kb", str(folder), "verify", "--deep"])
    assert code == 0 and "the store is consistent" in out, out + err
    assert list(folder.glob(f"{SCRATCH_PREFIX}*")) == []


KILLED_VERIFY = textwrap.dedent(
    """
    import sys, time
    import kbase.ops.verify as verify
    from kbase.embed.fake import HashingEmbedder
    from kbase.kb import KnowledgeBase
    from kbase.llm.fake import world_llm

    original = verify.ingest

    def stalled(*args, **kwargs):
        report = original(*args, **kwargs)
        print("ready", flush=True)
        time.sleep(120)
        return report

    verify.ingest = stalled
    kb = KnowledgeBase.open(sys.argv[1], embedder=HashingEmbedder(), backend=world_llm)
    verify.verify_deep(kb.runtime)
    """
)


@pytest.mark.sqlite
def test_a_killed_deep_verification_leaves_its_copy_in_the_folder_and_the_next_open_cleans_it(
    open_kb: OpenKB, tmp_path: Path
) -> None:
    import tempfile

    folder = tmp_path / "kb"
    open_kb(folder).ingest([news("c1", f"The CEO of Acme is {CANARY}.")])
    before = set(Path(tempfile.gettempdir()).iterdir())
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_VERIFY, str(folder)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        child.kill()  # SIGKILL: no cleanup runs
    finally:
        child.wait(30)
        if child.stdout is not None:
            child.stdout.close()
    left = list(folder.glob(f"{SCRATCH_PREFIX}*"))
    assert len(left) == 1 and files_holding(left[0], CANARY), "the copy is in the folder"
    assert not [p for p in set(Path(tempfile.gettempdir()).iterdir()) - before if "kbase" in p.name]
    assert stat.S_IMODE(left[0].stat().st_mode) == 0o700
    KnowledgeBase.open(folder, embedder=HashingEmbedder()).close()  # the next open
    assert list(folder.glob(f"{SCRATCH_PREFIX}*")) == []
    with KnowledgeBase.open(folder, embedder=HashingEmbedder()) as kb:
        kb.forget(["c1"])
    assert files_holding(folder, CANARY) == []


def test_a_scratch_folder_in_use_is_not_cleaned(tmp_path: Path) -> None:
    from kbase.locking import scratch_folder

    with scratch_folder(tmp_path, "verify") as path:
        assert clean_scratch(tmp_path) == [] and path.exists()
    assert not path.exists()


# -- forget --purge clears PostgreSQL's table files ----------------------------------------
def _table_files(url: str) -> tuple[list[Path], Any]:
    engine = create_engine(url.replace("postgresql:", "postgresql+psycopg:"))
    with engine.connect() as connection:
        connection.execute(text("CHECKPOINT"))
        data = Path(connection.scalar(text("SHOW data_directory")))
        paths = connection.scalars(
            text(
                "SELECT pg_relation_filepath(c.oid) FROM pg_class c "
                "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN "
                "('r', 't', 'i') UNION SELECT pg_relation_filepath(c.reltoastrelid) FROM "
                "pg_class c WHERE c.relnamespace = current_schema()::regnamespace AND "
                "c.reltoastrelid <> 0"
            )
        ).all()
    engine.dispose()
    return [data / p for p in paths if p], data


def _files_with(paths: list[Path], needle: bytes) -> list[str]:
    found = []
    for path in paths:
        for segment in [path, *path.parent.glob(path.name + ".*")]:
            if segment.is_file() and needle in segment.read_bytes():
                found.append(segment.name)
    return found


@pytest.mark.postgres
def test_forget_purge_leaves_no_forgotten_text_in_postgresql_table_files(
    open_kb: OpenKB, pg_url: str
) -> None:
    kb = open_kb(database_url=pg_url)
    secret = f"The CEO of Initech is {CANARY}x."
    kb.ingest([BOB, news("c1", secret, day=3), GLOBEX])
    paths, data = _table_files(pg_url)
    if not os.access(data, os.R_OK | os.X_OK):
        pytest.skip(f"cannot read the server's files under {data}")
    assert _files_with(paths, CANARY.encode()), "the text is in the table files to begin with"
    kb.forget(["c1"])
    paths, _ = _table_files(pg_url)
    assert _files_with(paths, CANARY.encode()), "a plain forget leaves the old row versions"
    kb.forget(["acme-1"], purge=True)
    paths, _ = _table_files(pg_url)
    assert _files_with(paths, CANARY.encode()) == []
    assert {f.text for f in kb.facts()} == {"The CEO of Globex is Dana."}


def test_forget_purge_on_sqlite_compacts_the_file(
    open_kb: OpenKB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if ON_POSTGRES:
        pytest.skip("SQLite's file")
    fast_fakes(monkeypatch)
    folder, source = tmp_path / "kb", tmp_path / "a.jsonl"
    lines = [{"id": f"d{i}", "text": f"The CEO of Firm{i} is {CANARY}{i}. " * 40} for i in range(8)]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert run_main(["--kb", str(folder), "ingest", str(source)])[0] == 0
    size = (folder / "kbase.db").stat().st_size
    code, _, err = run_main(
        ["--kb", str(folder), "forget", "--purge", *[f"d{i}" for i in range(8)]]
    )
    assert code == 0, err
    assert (folder / "kbase.db").stat().st_size < size
    assert files_holding(folder, CANARY) == []


# -- a model server's impossible answers are one-line errors -------------------------------
def backend_answering(body: bytes) -> OpenAIBackend:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    return OpenAIBackend(base_url=f"http://kb:{CANARY}@llm/v1", model="m", transport=transport)


ANSWER = LLMRequest("answer", (Message("user", "hi"),), "v1")
VERDICT = LLMRequest("verdict", (Message("user", "hi"),), "v1", choices=("TRUE", "FALSE"))


@pytest.mark.parametrize("count", ["NaN", "Infinity", "-Infinity", "1e999", "1e20",
                                   str(10**20), "-5", "2.5", "true", '"7"', "[1]"])  # fmt: skip
@pytest.mark.parametrize("field", ["prompt_tokens", "completion_tokens", "cached_tokens"])
def test_impossible_token_counts_are_one_line_errors(count: str, field: str) -> None:
    usage = f'"{field}": {count}'
    if field == "cached_tokens":
        usage = f'"prompt_tokens_details": {{"cached_tokens": {count}}}'
    body = '{"choices": [{"message": {"content": "x"}}], "usage": {' + usage + "}}"
    with pytest.raises(ModelError) as caught:
        backend_answering(body.encode()).generate(ANSWER)
    message = str(caught.value)
    assert "\n" not in message and CANARY not in message and field in message


@pytest.mark.parametrize(
    ("logprobs", "outcome"),
    [
        ('{"content": [{"token": "T", "logprob": -1, "top_logprobs": 5}]}', "error"),
        ('{"content": "abc"}', "error"),
        ('{"content": [5]}', "error"),
        ('{"content": {"token": "T"}}', "error"),
        ('{"content": [{"token": "TRUE", "logprob": -0.1, "top_logprobs": [3, "x", null]}]}',
         "scores"),
        ('{"content": [{"token": "TRUE", "logprob": "NaN", "top_logprobs": [{"token": 1}]}]}',
         "scores"),
    ],
)  # fmt: skip
def test_malformed_logprobs_are_one_line_errors_or_ignored(logprobs: str, outcome: str) -> None:
    body = '{"choices": [{"message": {"content": "x"}, "logprobs": ' + logprobs + "}]}"
    backend = backend_answering(body.encode())
    if outcome == "error":
        with pytest.raises(BadModelOutput) as caught:
            backend.score(VERDICT)
        assert "\n" not in str(caught.value) and CANARY not in str(caught.value)
    else:
        scores = backend.score(VERDICT).scores
        assert scores is not None and set(scores) == {"TRUE", "FALSE"}
        assert all(isinstance(v, float) and v == v for v in scores.values())


@pytest.mark.parametrize("value", [-1, 10**20, 1.5, float("nan"), True])
def test_no_backend_can_report_an_impossible_count(value: Any) -> None:
    with pytest.raises(BadModelOutput):
        LLMResponse(text="x", prompt_tokens=value)
    with pytest.raises(BadModelOutput):
        LLMResponse(text="x", seconds=float("nan"))


def test_negative_usage_through_the_cli_is_one_line_and_stores_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from http.server import BaseHTTPRequestHandler

    from tests.helpers import local_server, no_proxies

    class Negative(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            body = json.dumps(
                {"choices": [{"message": {"content": '{"facts": []}'}}],
                 "usage": {"prompt_tokens": -1000, "completion_tokens": 3}}
            ).encode()  # fmt: skip
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    fast_fakes(monkeypatch)
    no_proxies(monkeypatch)
    folder, source = tmp_path / "kb", tmp_path / "a.txt"
    source.write_text("The CEO of Acme is Bob.")
    with local_server(Negative) as url:
        code, _out, err = run_main(
            ["--kb", str(folder), "--llm", "openai", "--llm-url", url + "/v1", "--model", "m",
             "ingest", str(source)]
        )  # fmt: skip
    assert code == 1 and err.count("\n") == 1 and "prompt_tokens" in err, err
    assert "unexpected" not in err
    with KnowledgeBase.open(folder, create=False, embedder=HashingEmbedder()) as kb:
        assert kb.documents() == []


# -- a full disk: one line, nothing half-stored --------------------------------------------
@pytest.fixture
def small_disk(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path, int], None]:
    """Cap SQLite stores at their current size plus ``pages``: writing past it is
    SQLITE_FULL, what a full disk gives."""
    from kbase.store import db

    limits: dict[str, int] = {}
    original = db._sqlite_pragmas

    def capped(connection: Any, record: Any) -> None:
        original(connection, record)
        name = connection.execute("PRAGMA database_list").fetchone()[2]
        if name in limits:
            connection.execute(f"PRAGMA max_page_count={limits[name]}")

    monkeypatch.setattr(db, "_sqlite_pragmas", capped)

    def cap(folder: Path, pages: int) -> None:
        path = folder / "kbase.db"
        with sqlite3.connect(path) as connection:
            used = connection.execute("PRAGMA page_count").fetchone()[0]
        limits[str(path)] = used + pages

    return cap


@pytest.mark.sqlite
def test_a_full_disk_during_ingest_is_a_one_line_error_and_nothing_half_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_disk: Callable[[Path, int], None]
) -> None:
    fast_fakes(monkeypatch)
    folder, first, big = tmp_path / "kb", tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text(json.dumps({"id": "a", "text": "The CEO of Acme is Bob."}) + "\n")
    lines = [{"id": f"b{i}", "text": f"The CEO of Firm{i} is Carol{i}. " * 300} for i in range(5)]
    big.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert run_main(["--kb", str(folder), "ingest", str(first)])[0] == 0
    small_disk(folder, 40)
    code, _out, err = run_main(["--kb", str(folder), "ingest", str(big)])
    lines_out = [line for line in err.splitlines() if line.startswith("Error: ")]
    assert code == 1 and lines_out and lines_out[0].startswith("Error: the disk is full"), err
    assert err.count("Error: ") == 1 and "unexpected" not in err, err
    small_disk(folder, 100_000)
    with KnowledgeBase.open(folder, create=False, embedder=HashingEmbedder()) as kb:
        stored = [d.doc_id for d in kb.documents()]
        assert stored[0] == "a" and all(s.startswith("b") for s in stored[1:])
        facts = {f.text for f in kb.facts()}
        # Whole documents only: each stored one has its facts.
        assert all(f"The CEO of Firm{s[1:]} is Carol{s[1:]}." in facts for s in stored[1:])
        assert verify_index(kb.runtime) == []
    code, _, err = run_main(["--kb", str(folder), "ingest", str(big)])  # space again
    assert code == 0, err


def test_a_full_disk_while_saving_the_index_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kbase.index.faiss_index import FaissIndex

    fast_fakes(monkeypatch)
    folder, source = tmp_path / "kb", tmp_path / "a.jsonl"
    source.write_text(json.dumps({"id": "a", "text": "The CEO of Acme is Bob."}) + "\n")

    def full(*_: Any, **__: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(FaissIndex, "save", full)
        code, _, err = run_main(["--kb", str(folder), "ingest", str(source)])
    errors = [line for line in err.splitlines() if not line.startswith("documents ")]
    assert code == 1 and len(errors) == 1 and errors[0].startswith("Error: the disk is full"), err
    code, out, err = run_main(["--kb", str(folder), "verify"])  # the index caught up from SQL
    assert code == 0, out + err


def test_disk_full_errors_are_recognised_in_the_chain() -> None:
    from kbase.errors import disk_full

    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("write failed") from inner
    except RuntimeError as outer:
        assert disk_full(outer)
    assert disk_full(sqlite3.OperationalError("database or disk is full"))
    assert not disk_full(OSError(errno.EACCES, "Permission denied"))
    assert issubclass(DiskFull, StoreError)


# -- a damaged folder, a misleading path, permissions --------------------------------------
@pytest.mark.parametrize("content", ["[1, 2]", '"x"', "{not json", '{"database_url": 5}', "\xff"])
def test_a_configuration_that_is_not_a_json_object_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str
) -> None:
    fast_fakes(monkeypatch)
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "kbase.json").write_bytes(content.encode("latin-1"))
    code, _, err = run_main(["--kb", str(folder), "stats"])
    assert code == 1 and "is not a kbase configuration" in err and err.count("\n") == 1, err


@pytest.mark.sqlite
@pytest.mark.parametrize("keep", [0, 100, 1000, 4096, 50_000])
def test_a_truncated_database_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep: int
) -> None:
    fast_fakes(monkeypatch)
    folder, source = tmp_path / "kb", tmp_path / "a.txt"
    source.write_text("The CEO of Acme is Bob. " * 200)
    assert run_main(["--kb", str(folder), "ingest", str(source)])[0] == 0
    for extra in ("kbase.db-wal", "kbase.db-shm"):
        (folder / extra).unlink(missing_ok=True)
    database = folder / "kbase.db"
    database.write_bytes(database.read_bytes()[:keep])
    for args in (["stats"], ["docs", "list"], ["ask", CEO]):
        code, _, err = run_main(["--kb", str(folder), *args])
        assert "unexpected" not in err, (keep, args, err)
        if keep == 0:
            continue  # an empty file is an empty store: nothing stored, no error
        assert code == 1 and err.count("\n") == 1, (keep, args, err)


def test_a_folder_path_a_database_url_would_misread_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if ON_POSTGRES:
        pytest.skip("the store is not a file in the folder")
    fast_fakes(monkeypatch)
    (tmp_path / "kq").mkdir()
    for name in ("outside.db?x=/kb", "a?b"):
        code, _, err = run_main(["--kb", str(tmp_path / "kq" / name), "init"])
        assert code == 1 and "choose a folder without them" in err, (name, err)
    assert list((tmp_path / "kq").iterdir()) == []


@pytest.mark.sqlite
def test_a_new_knowledge_base_is_readable_by_its_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast_fakes(monkeypatch)
    monkeypatch.setattr(os, "umask", os.umask)  # restored below whatever happens
    old = os.umask(0o022)
    try:
        folder, source = tmp_path / "kb", tmp_path / "a.txt"
        source.write_text("The CEO of Acme is Bob.")
        assert run_main(["--kb", str(folder), "ingest", str(source)])[0] == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("kbase.db", "kbase.json", "kbase.db-wal", "kbase.db-shm"):
        path = folder / name
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name


# -- ids, dates, one id with two texts -----------------------------------------------------
def test_terminal_escapes_in_ids_are_never_printed_raw(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast_fakes(monkeypatch)
    folder, source = tmp_path / "kb", tmp_path / "a.txt"
    source.write_text("The CEO of Acme is Bob.")
    feed = tmp_path / "f.jsonl"
    feed.write_text(json.dumps({"id": "x\x1b]0;owned\x07", "text": "The CEO of Acme is Bob."}))
    for args in (
        ["ingest", "--id", "a\x1b[31mb", str(source)],
        ["ingest", str(feed)],
        ["docs", "show", "\x1b[2Jx"],
        ["forget", "\x1b[2Jx"],
        ["history", "\x1b[2J"],
    ):
        code, out, err = run_main(["--kb", str(folder), *args])
        assert code != 0 and "\x1b" not in out + err and "\x07" not in out + err, (args, err)


def dated(doc_id: str, text_: str, when: datetime) -> SourceDocument:
    return SourceDocument(doc_id=doc_id, text=text_, source="test", published=when)


def test_extreme_dates_as_of_the_first_day_cite_nothing_dated_later(open_kb: OpenKB) -> None:
    kb = open_kb()
    kb.ingest(
        [
            dated("far", "The CEO of Acme is Zed.", datetime(9999, 12, 31)),
            dated("first", "The CEO of Acme is Ann.", datetime(1, 1, 1)),
            dated("epoch", "The CEO of Acme is Bob.", datetime(1970, 1, 1)),
        ]
    )
    for as_of, allowed in [
        (date(1, 1, 1), {"first"}),
        (date(1970, 1, 1), {"first", "epoch"}),
        (date(9999, 12, 30), {"first", "epoch"}),
    ]:
        answer = kb.ask(CEO, as_of=as_of)
        cited = {c.doc_id for c in answer.citations}
        shown = {f.doc_id for f in answer.facts}
        assert cited <= allowed and shown <= allowed, (as_of, cited, shown)
        assert {h.doc_id for h in kb.search(CEO, as_of=as_of)} <= allowed
    assert kb.ask(CEO, as_of=date(1, 1, 1)).citations[0].doc_id == "first"
    assert {c.doc_id for c in kb.ask(CEO).citations} == {"far"}


def test_one_id_with_two_texts_in_one_command_stores_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast_fakes(monkeypatch)
    folder = tmp_path / "kb"
    (tmp_path / "ok.jsonl").write_text(json.dumps({"id": "y", "text": "The CEO of Y is Ann."}))
    (tmp_path / "1.jsonl").write_text(json.dumps({"id": "x", "text": "The CEO of X is Bob."}))
    (tmp_path / "2.jsonl").write_text(json.dumps({"id": "x", "text": "The CEO of X is Eve."}))
    sources = [str(tmp_path / n) for n in ("ok.jsonl", "1.jsonl", "2.jsonl")]
    assert run_main(["--kb", str(folder), "init"])[0] == 0
    code, _, err = run_main(["--kb", str(folder), "ingest", *sources])
    assert code == 1 and "given twice with different texts" in err, err
    with KnowledgeBase.open(folder, create=False, embedder=HashingEmbedder()) as kb:
        assert kb.documents() == []


def test_a_poll_whose_item_failed_fetches_the_feed_in_full_next_time_and_retries_it(
    open_kb: OpenKB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers import local_server, no_proxies
    from tests.test_feeds import Site, by_url, item, rss

    def garbage_for_globex(request: LLMRequest) -> str | Any:
        if request.task == "extract" and "Globex" in request.fields.get("chunk", ""):
            return "not json"
        return world(request)

    no_proxies(monkeypatch)
    monkeypatch.setenv("KBASE_ALLOW_PRIVATE_URLS", "1")  # the feed server is on 127.0.0.1
    Site.bodies, Site.versions, Site.modes, Site.seen = {}, {}, {}, []
    folder = tmp_path / "kb"
    with local_server(Site) as site:
        url = f"{site}/news.xml"
        Site.publish("/news.xml", rss([item("acme", BOB.text, day=1), item("globex", GLOBEX.text)]))
        kb = open_kb(folder, llm=ScriptedLLM(garbage_for_globex))
        kb.subscribe([url])
        first = by_url(kb.poll(), url)
        assert first.status == "failed" and "not stored" in (first.error or ""), first
        assert doc_ids(kb) == ["acme"]
        kb.close()
        healed = open_kb(folder)
        second = by_url(healed.poll(), url)
        assert Site.seen[-1][1] is None  # no If-None-Match: fetched in full, not a 304
        assert second.status == "stored" and second.new == 1, second
        assert doc_ids(healed) == ["acme", "globex"]
