"""One writer at a time per knowledge base.

A writer holds an exclusive ``flock`` on ``<folder>/write.lock`` (the folder holds
the vector index, which every writer rewrites) and, when the store is in
PostgreSQL, a session-level advisory lock keyed by the database schema, so two
hosts sharing one database cannot write at once either. A second writer waits up
to its timeout, then fails with a message that says who holds the lock.
Readers take no lock: SQL transactions show them committed documents only.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

from kbase.errors import LockTimeout
from kbase.hashing import sha256_hex

#: Seconds a writer waits for another one by default ($KBASE_LOCK_TIMEOUT).
DEFAULT_TIMEOUT = float(os.environ.get("KBASE_LOCK_TIMEOUT", "60"))
_POLL = 0.05


def _holder(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        return "another process"
    return f"process {pid}" if pid else "another process"


@contextmanager
def _file_lock(folder: Path, timeout: float) -> Iterator[None]:
    path = folder / "write.lock"
    with open(path, "a+") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"{_holder(path)} is writing to the knowledge base at {folder}; waited "
                        f"{timeout:g} s: retry when it is done, or raise KBASE_LOCK_TIMEOUT"
                    ) from None
                time.sleep(_POLL)
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _advisory_lock(engine: Engine, timeout: float) -> Iterator[None]:
    with engine.connect() as connection:
        schema = connection.execute(text("SELECT current_schema()")).scalar() or "public"
        key = int(sha256_hex(f"kbase-writer:{schema}")[:15], 16)
        deadline = time.monotonic() + timeout
        while not connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
            connection.rollback()
            if time.monotonic() >= deadline:
                raise LockTimeout(
                    f"another process is writing to this knowledge base's database (schema "
                    f"{schema}); waited {timeout:g} s: retry when it is done"
                )
            time.sleep(_POLL)
        connection.commit()
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            connection.commit()


@contextmanager
def writer_lock(folder: Path, engine: Engine, timeout: float | None = None) -> Iterator[None]:
    """Hold the knowledge base's writer lock for the duration of the block."""
    wait = DEFAULT_TIMEOUT if timeout is None else timeout
    with _file_lock(folder, wait):
        if engine.dialect.name == "postgresql":
            with _advisory_lock(engine, wait):
                yield
        else:
            yield


@contextmanager
def try_named_lock(folder: Path, engine: Engine, name: str) -> Iterator[bool]:
    """Take the lock called ``name`` if no one holds it; yields whether it was taken.

    Like the writer lock, a file lock (``<folder>/locks/``) and, on PostgreSQL, an
    advisory lock, so two hosts sharing one database do not hold it at once; the
    operating system and the server release both if the holder dies.
    """
    digest = sha256_hex(name)
    locks = folder / "locks"
    locks.mkdir(exist_ok=True)
    with open(locks / f"{digest[:32]}.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            if engine.dialect.name != "postgresql":
                yield True
                return
            with engine.connect() as connection:
                schema = connection.execute(text("SELECT current_schema()")).scalar() or "public"
                key = int(sha256_hex(f"kbase-lock:{schema}:{name}")[:15], 16)
                taken = bool(
                    connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
                )
                connection.commit()
                try:
                    yield taken
                finally:
                    if taken:
                        connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                        connection.commit()
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


#: Scratch folders inside a knowledge base's folder start with this.
SCRATCH_PREFIX = ".scratch-"
#: A scratch folder without its lock file is its creator's for this many seconds.
_SCRATCH_GRACE = 60.0


@contextmanager
def scratch_folder(folder: Path, purpose: str) -> Iterator[Path]:
    """A private folder inside the knowledge base's ``folder`` (never the system's
    temporary folder: what a command copies of the store stays where the store is),
    removed when the block ends. Its process holds a lock on it, so that
    :func:`clean_scratch` removes it only once that process is gone (a kill -9)."""
    path = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{purpose}-", dir=folder))
    try:
        with open(path / ".lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def clean_scratch(folder: Path) -> list[Path]:
    """Remove the scratch folders in ``folder`` whose processes are gone; returns them."""
    removed = []
    for path in sorted(folder.glob(f"{SCRATCH_PREFIX}*")):
        if not path.is_dir() or path.is_symlink():
            continue
        lock = path / ".lock"
        if not lock.exists():
            try:
                young = time.time() - path.stat().st_mtime < _SCRATCH_GRACE
            except OSError:
                continue
            if young:
                continue  # its creator is about to lock it
        else:
            try:
                with open(lock, "a+") as handle:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # in use
            except OSError:
                pass
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed
