"""Several hosts on one PostgreSQL database (issue 17): ``kb serve`` processes, each
with its own folder (its vector index a local cache) and the same database URL.

Any host serves reads and writes; one writer at a time across hosts (the
PostgreSQL advisory lock); a write on one host is visible on the others at their
next read, and a forget is gone from them, their indexes caught up from the
database to what an index rebuilt from it holds.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from kbase.kb import KnowledgeBase
from kbase.locking import writer_lock
from tests.test_server import ALICE, BOB, CEO, FAKE, assert_error

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parents[1]
CAROL = {
    "id": "carol",
    "title": "Globex names Carol Diaz",
    "url": "https://news.example.org/carol",
    "published": "2024-02-01",
    "text": "The chief executive of Globex is Carol Diaz.",
}
QUERY = "chief executive"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Host:
    """``kb --kb FOLDER --db URL --llm fake serve`` in a process of its own."""

    def __init__(self, folder: Path, database_url: str) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-c", "from cli import main; main()", "--kb", str(folder)]
        command += ["--db", database_url, "--llm", "fake", "serve", "--port", str(self.port)]
        env = {k: v for k, v in os.environ.items() if k not in ("KBASE_TOKEN", "KBASE_HOME")}
        env["KBASE_LOCK_TIMEOUT"] = "1"
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
        )
        self.client = httpx.Client(base_url=self.url, timeout=60)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 90
        while True:
            if self.process.poll() is not None:
                raise AssertionError(self.process.stderr.read() if self.process.stderr else "")
            try:
                if self.client.get("/health").json()["ready"]:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "kb serve did not start"
            time.sleep(0.1)

    def stop(self) -> str:
        self.client.close()
        self.process.send_signal(signal.SIGINT)
        _out, errors = self.process.communicate(timeout=30)
        assert self.process.returncode == 0, errors
        return errors

    # -- what a reader sees ------------------------------------------------------------
    def search(self) -> list[tuple[str, str, float]]:
        hits = self.client.get("/search", params={"q": QUERY, "k": 10}).json()["facts"]
        return [(h["doc_id"], h["text"], round(h["score"], 4)) for h in hits]

    def answer(self) -> str:
        response = self.client.post("/ask", json={"question": CEO})
        assert response.status_code == 200, response.text
        answer: str = response.json()["answer"]
        return answer

    def index_vectors(self) -> int:
        count: int = self.client.get("/stats").json()["index_vectors"]
        return count


@pytest.fixture
def hosts(tmp_path: Path, pg_url: str) -> Iterator[list[Host]]:
    """Three hosts on one fresh database, each with its own folder."""
    KnowledgeBase.open(tmp_path / "host-0", database_url=pg_url, settings=FAKE).close()
    started = [Host(tmp_path / f"host-{i}", pg_url) for i in range(3)]
    try:
        for host in started:
            host.wait_ready()
        yield started
    finally:
        for host in started:
            errors = host.stop()
            assert "Traceback" not in errors, errors


def rebuilt(tmp_path: Path, pg_url: str) -> tuple[list[tuple[str, str, float]], int]:
    """What a host that never saw any of it finds (its index built from the
    database): the search, and the index's size."""
    folder = tmp_path / f"fresh-{time.monotonic_ns()}"
    with KnowledgeBase.open(folder, database_url=pg_url) as fresh:
        hits = [(h.doc_id, h.text, round(h.score, 4)) for h in fresh.search(QUERY, k=10)]
        return hits, fresh.stats().index_vectors


def test_a_write_on_one_host_is_read_on_the_others_and_a_forget_is_gone_from_them(
    hosts: list[Host], tmp_path: Path, pg_url: str
) -> None:
    a, b, c = hosts
    for host in hosts:  # every host has loaded (and cached) its empty index
        assert host.search() == [] and host.index_vectors() == 0

    assert a.client.post("/documents", json=[BOB, CAROL]).status_code == 200
    for host in (b, c):
        assert {doc for doc, _, _ in host.search()} == {"bob", "carol"}
        assert "Bob Marsh" in host.answer()

    # A write on another host: b rewrites what a wrote.
    assert b.client.post("/documents", json=[ALICE]).status_code == 200
    expected, size = rebuilt(tmp_path, pg_url)
    assert size == 3  # bob's version (closed), carol's, alice's
    for host in hosts:
        assert "Alice Chen" in host.answer()
        assert host.search() == expected
        assert host.index_vectors() == size

    # A forget on the third host: gone everywhere, bob's fact current again.
    receipt = c.client.delete("/documents/alice")
    assert receipt.status_code == 200 and receipt.json()["verify_ok"] is True
    expected, size = rebuilt(tmp_path, pg_url)
    assert "alice" not in {doc for doc, _, _ in expected} and size == 2
    for host in hosts:
        assert host.search() == expected
        assert host.index_vectors() == size
        assert "Bob Marsh" in host.answer()
        assert_error(host.client.get("/documents/alice"), 404)
        facts = host.client.get("/facts", params={"all": "true"}).json()
        assert "Alice Chen" not in str(facts)

    # Each host's folder holds its own index cache; none holds another's database.
    for host in hosts:
        assert (host.folder / "kbase.json").exists() and not (host.folder / "kbase.db").exists()


def test_one_writer_at_a_time_across_hosts(hosts: list[Host], pg_url: str) -> None:
    a, b, _c = hosts
    # A writer elsewhere (a fourth host, here this test) holds the database's lock:
    # every host's write waits for it (1 s here) and then answers 503; reads go on.
    with KnowledgeBase.open(a.folder.parent / "elsewhere", database_url=pg_url) as other:
        runtime = other.runtime
        with writer_lock(runtime.folder, runtime.engine):
            for host in (a, b):
                refused = host.client.post("/documents", json=[BOB])
                assert_error(refused, 503, "another process is writing")
                assert host.search() == []
    assert a.client.post("/documents", json=[BOB]).status_code == 200
    assert b.search()[0][0] == "bob"
    with (
        KnowledgeBase.open(a.folder.parent / "check", database_url=pg_url) as check,
        check.runtime.engine.connect() as connection,
    ):
        assert connection.execute(text("SELECT count(*) FROM documents")).scalar() == 1
