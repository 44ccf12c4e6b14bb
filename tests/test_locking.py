"""One writer at a time per knowledge base; a second writer waits, then fails clearly;
readers are never blocked."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kbase.errors import LockTimeout
from kbase.locking import writer_lock
from tests.conftest import OpenKB
from tests.helpers import news

HOLD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from sqlalchemy import create_engine
    from kbase.locking import writer_lock
    url = sys.argv[2] if len(sys.argv) > 2 else "sqlite://"
    engine = create_engine(url.replace("postgresql:", "postgresql+psycopg:"))
    with writer_lock(Path(sys.argv[1]), engine, timeout=5):
        print("locked", flush=True)
        time.sleep(30)
""")


def stop(process: subprocess.Popen[str]) -> None:
    process.kill()
    process.wait()
    assert process.stdout is not None
    process.stdout.close()


def hold_lock(folder: Path, url: str | None = None) -> subprocess.Popen[str]:
    """Another process that takes the writer lock and keeps it."""
    folder.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-c", HOLD, str(folder)] + ([url] if url else [])
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "locked"
    return process


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_second_writer_waits_then_fails_with_a_clear_message(
    open_kb: OpenKB, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    kb = open_kb(tmp_path / "kb", database_url=url)
    kb.runtime.lock_timeout = 0.3
    holder = hold_lock(tmp_path / "kb", url)
    try:
        started = time.monotonic()
        with pytest.raises(LockTimeout, match=f"process {holder.pid} is writing"):
            kb.ingest([news("d1", "The CEO of Acme is Bob.")])
        assert time.monotonic() - started >= 0.3
        assert kb.search("Acme") == []  # readers work while the writer holds the lock
    finally:
        stop(holder)
    kb.ingest([news("d1", "The CEO of Acme is Bob.")])  # free again once the holder died
    assert [h.doc_id for h in kb.search("Acme")] == ["d1"]


@pytest.mark.postgres
def test_the_database_lock_alone_stops_a_writer_on_another_host(
    open_kb: OpenKB, tmp_path: Path, pg_url: str
) -> None:
    """Two folders (two hosts) sharing one PostgreSQL schema cannot write at once."""
    holder = hold_lock(tmp_path / "other-host", pg_url)
    kb = open_kb(tmp_path / "kb", database_url=pg_url)
    try:
        with (
            pytest.raises(LockTimeout, match="database"),
            writer_lock(tmp_path / "kb", kb.runtime.engine, timeout=0.2),
        ):
            pass
    finally:
        stop(holder)
