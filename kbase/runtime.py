"""What every operation works with: the folder, the database, the settings, the
models and the vector index of one open knowledge base.

Models load lazily: listing documents never loads the embedder's weights, and a
replay whose every answer is recorded never loads the LLM. Every write goes
through :meth:`Runtime.write`, the one place the write protocol lives.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from kbase.config import Settings
from kbase.embed import Embedder, get_embedder
from kbase.errors import DiskFull, LockTimeout, StoreError, disk_full, without_password
from kbase.hashing import content_hash
from kbase.index.faiss_index import FaissIndex
from kbase.llm import LLMBackend, backend_for, model_id_for
from kbase.llm.prefix_states import FOLDER_NAME as STATES_FOLDER
from kbase.llm.prefix_states import PrefixStates
from kbase.locking import clean_scratch, writer_lock
from kbase.paths import kb_folder
from kbase.records import Recorder
from kbase.store.db import (
    FILE_MODE,
    checkpoint_sqlite,
    create_sqlite_file,
    open_engine,
    purge,
    sqlite_url,
)
from kbase.store.models import FewshotState, Meta
from kbase.vectors import FactVectors, state_token

CONFIG_FILE = "kbase.json"
#: A new knowledge base is its owner's alone: its folder and the files kbase creates.
FOLDER_MODE = 0o700
T = TypeVar("T")


def fact_ids(ids: list[int]) -> Any:
    """Fact ids as the index takes them."""
    return np.array(ids, dtype=np.int64)


@dataclass
class Write:
    """One writer's work: its session, the index it keeps in step with SQL, and the
    recorder of its model calls."""

    session: Session
    vectors: FactVectors
    recorder: Recorder
    #: Fact ids added to the in-memory index in the open transaction.
    pending: list[int] = field(default_factory=list)
    #: Fact ids the open transaction deletes.
    deleted: list[int] = field(default_factory=list)
    #: Whether rows were deleted: their bytes must leave the database's files.
    compact: bool = False
    #: Whether to rewrite the database's files after the work (``kb forget --purge``).
    purge: bool = False

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A transaction after which the index matches what SQL committed: if it
        fails, the vectors it added are removed; if it commits, those of the fact
        versions it deleted."""
        self.pending.clear()
        self.deleted.clear()
        try:
            with self.session.begin():
                yield self.session
        except BaseException:
            self.vectors.index.remove(fact_ids(self.pending))
            raise
        finally:
            self.pending.clear()
        if self.deleted:
            self.vectors.index.remove(fact_ids(sorted(set(self.deleted))))
            self.deleted.clear()
            self.compact = True

    def delete(self, fact_ids_: list[int]) -> None:
        """Fact versions the open transaction deletes: their vectors go when it commits."""
        self.deleted += fact_ids_


def pool_signature(session: Session) -> str:
    """A signature of the few-shot pool the examples are selected from (it changes
    whenever they can)."""
    rows = session.execute(select(FewshotState.task, FewshotState.pool_signature)).all()
    return content_hash(sorted([task, signature] for task, signature in rows))


def _read_config(path: Path) -> dict[str, Any]:
    """The folder's ``kbase.json`` (empty when there is none)."""
    if not path.exists():
        return {}
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        config = exc
    if not isinstance(config, dict) or not isinstance(config.get("database_url") or "", str):
        raise StoreError(
            f"{path} is not a kbase configuration (a JSON object, with database_url a "
            "string if set): fix it (`{}` for SQLite in the folder) or move it away"
        )
    return config


def _database_url(given: str | None, configured: str | None) -> str | None:
    """The database to open: the one given, else the folder's; the folder's lacks its
    password, which ``$KBASE_DATABASE_URL`` naming the same database supplies."""
    if given:
        return given
    env = os.environ.get("KBASE_DATABASE_URL")
    if configured:
        if env and without_password(env) == configured:
            return env
        return configured
    return env or None


def _make_folder(path: Path) -> bool:
    """Create the knowledge base's folder, readable by its owner only; whether it was made."""
    if path.is_dir():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=FOLDER_MODE)
    except FileExistsError:
        return False
    os.chmod(path, FOLDER_MODE)  # whatever the umask
    return True


def _write_private(path: Path, content: str) -> None:
    """Write a new file readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(content)


class Runtime:
    """An open knowledge base's machinery, shared by every operation in :mod:`kbase.ops`."""

    def __init__(
        self,
        folder: Path,
        engine: Engine,
        settings: Settings,
        *,
        embedder: Embedder,
        backend: Callable[[], LLMBackend],
        owns_backend: bool,
    ) -> None:
        self.folder = folder
        self.engine = engine
        self.settings = settings
        self.embedder = embedder
        self._backend_factory = backend
        self._backend: LLMBackend | None = None
        #: A backend made from the settings is ours to close; one passed in is the caller's.
        self.owns_backend = owns_backend
        #: Seconds a write waits for another writer (None: $KBASE_LOCK_TIMEOUT or 60).
        self.lock_timeout: float | None = None
        self._vectors: FactVectors | None = None
        #: Saved model states of prompt prefixes (the first call of a process resumes
        #: from them instead of recomputing the shared instructions and examples).
        self.prefix_states = PrefixStates(folder / STATES_FOLDER)

    @classmethod
    def open(
        cls,
        folder: str | Path | None = None,
        *,
        database_url: str | None = None,
        create: bool = True,
        settings: Settings | None = None,
        overrides: dict[str, Any] | None = None,
        embedder: Embedder | None = None,
        backend: Callable[[], LLMBackend] | None = None,
    ) -> Runtime:
        """Open (or create) the knowledge base in ``folder``.

        ``settings`` apply only when the knowledge base is created; ``overrides``
        (LLM backend, model, URL) apply to this session only.
        """
        path = kb_folder(folder)
        config_path = path / CONFIG_FILE
        config = _read_config(config_path)
        url = _database_url(database_url, config.get("database_url"))
        exists = config_path.exists() or (path / "kbase.db").exists()
        if not exists and not create:
            raise StoreError(
                f"no knowledge base at {path}: create one with `kb init` or `kb ingest`"
            )
        if path.exists() and not path.is_dir():
            raise StoreError(
                f"{path} is a file, not a knowledge-base folder: give a folder to --kb"
            )
        local = url is None
        url = sqlite_url(path) if url is None else url  # refuses a path a URL misreads
        made = _make_folder(path)
        try:
            if local:
                create_sqlite_file(path / "kbase.db")
            engine = open_engine(url)
        except BaseException:
            if made:
                shutil.rmtree(path, ignore_errors=True)  # nothing of a failed creation stays
            raise
        # Written once the database answered, so a bad URL does not block a retry; the
        # password stays out of the file (it comes from the environment every time).
        if not config_path.exists():
            _write_private(
                config_path,
                json.dumps(
                    {"database_url": without_password(database_url)} if database_url else {}
                ),
            )
        clean_scratch(path)  # what a killed `kb verify --deep` left
        with Session(engine) as session, session.begin():
            row = session.get(Meta, "settings")
            if row is None:
                stored = settings or Settings()
                if stored.llm_url:
                    stored = replace(stored, llm_url=without_password(stored.llm_url))
                session.add(Meta(key="settings", value=stored.to_json()))
            else:
                stored = Settings.from_json(row.value)
        active = stored.with_overrides(**(overrides or {}))
        runtime = cls(
            path,
            engine,
            active,
            embedder=embedder or get_embedder(active.embedder),
            # Called on first use, when ``runtime`` exists: one folder of states.
            backend=backend or (lambda: backend_for(active, prefix_states=runtime.prefix_states)),
            owns_backend=backend is None,
        )
        return runtime

    def close(self) -> None:
        """Release the model (if ours) and the database connections."""
        if self._backend is not None and self.owns_backend:
            self._backend.close()
        self._backend = None
        self.engine.dispose()

    # -- sessions -----------------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transactions the caller begins."""
        with Session(self.engine, autobegin=False) as session:
            yield session

    def read(self, fn: Callable[[Session], T]) -> T:
        """Run a query function in one transaction; what it returns stays readable
        after the transaction ends. A function may write derived state (a few-shot
        selection fitted for the first time), which then commits."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            return fn(session)

    # -- models -------------------------------------------------------------------------
    def llm(self) -> LLMBackend:
        """The LLM, loaded on first use."""
        if self._backend is None:
            self._backend = self._backend_factory()
        return self._backend

    def _model_id(self) -> str:
        return model_id_for(self.settings)

    def recorder(self, session: Session) -> Recorder:
        """Answers a reader's model requests from the record, or from the LLM, recording
        the answer when that does not wait for a writer (on SQLite, only if the writer
        lock is free at once): a reader never fails or waits because another process
        writes."""
        guard = None
        if self.engine.dialect.name == "sqlite":
            guard = lambda: writer_lock(self.folder, self.engine, timeout=0)  # noqa: E731
        return Recorder(session, self._model_id(), self.llm, guard=guard)

    # -- the vector index ---------------------------------------------------------------
    def vectors(self, session: Session) -> FactVectors:
        """The fact index, caught up with SQL whenever the store changed since it was
        last synced (another process may have written). A caught-up index is saved
        only by a process that can take the writer lock right away."""
        vectors = self._fact_vectors()
        if session.in_transaction():
            return vectors  # the caller's transaction: synced when it began
        with session.begin():
            self.read_vectors(session)
        self.save_caught_up_index(session)
        return vectors

    def read_vectors(self, session: Session) -> FactVectors:
        """In the caller's (read) transaction: the fact index, caught up with the store
        state that transaction reads. When nothing changed since the last check this
        costs one read of the state token. Call :meth:`save_caught_up_index` once the
        transaction is over."""
        vectors = self._fact_vectors()
        token = state_token(session)
        if token is None or token != vectors.synced:
            vectors.sync(session)
        return vectors

    def save_caught_up_index(self, session: Session) -> None:
        """Save the fact index if it was caught up past its file's stamp, when the
        writer lock can be taken right away (else the writer holding it saves it).
        ``session`` must not be in a transaction."""
        vectors = self._vectors
        if vectors is None or (vectors.index.state or None) == vectors.synced:
            return
        try:
            with writer_lock(self.folder, self.engine, timeout=0), session.begin():
                vectors.save(session)
        except LockTimeout:
            pass

    def _fact_vectors(self) -> FactVectors:
        if self._vectors is None:
            index = FaissIndex(self.folder / "index", self.embedder.dim)
            self._vectors = FactVectors(self.embedder, index)
        return self._vectors

    def index_size(self) -> int:
        """Number of vectors in the fact index (caught up with SQL first)."""
        with self.session() as session:
            return len(self.vectors(session).index)

    # -- writing ------------------------------------------------------------------------
    def writer_lock(self) -> AbstractContextManager[None]:
        """One writer at a time per knowledge base."""
        return writer_lock(self.folder, self.engine, self.lock_timeout)

    @contextmanager
    def write(self) -> Iterator[Write]:
        """The write protocol: take the writer lock, open a session with the index
        caught up, and when the work ends (done or failed) save the index, which
        matches what SQL committed; after deletions, compact the database files."""
        with self.writer_lock(), self.session() as session:
            self.prefix_states.follow(self.read(pool_signature))
            work = Write(
                session, self.vectors(session), Recorder(session, self._model_id(), self.llm)
            )
            try:
                try:
                    yield work
                except BaseException:
                    try:
                        self._save_index(work)
                    except Exception:
                        self._vectors = None  # reloaded from disk and caught up from SQL
                    raise
                self._save_index(work)
                # A write that changed the pool deleted the states first: those saved
                # since show the pool it committed.
                self.prefix_states.mark(self.read(pool_signature))
                if work.purge:
                    purge(self.engine)
                elif work.compact:
                    checkpoint_sqlite(self.engine)
            except Exception as exc:
                if disk_full(exc) and not isinstance(exc, DiskFull):
                    raise DiskFull(
                        f"the disk is full (writing to {self.folder}): free some space and run "
                        "the command again; what it had not finished is not stored"
                    ) from exc
                raise

    def _save_index(self, work: Write) -> None:
        with work.session.begin():
            work.vectors.save(work.session)
