"""The knowledge base: one folder (or one PostgreSQL database plus a folder for its
vector index), opened with :meth:`KnowledgeBase.open`.

Models load lazily: listing documents never loads the embedder, and a replay
whose every answer is recorded never loads the LLM.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from kbase import questions
from kbase.config import Settings
from kbase.embed import Embedder, get_embedder
from kbase.errors import ConfigError, DocumentError, LockTimeout, StoreError
from kbase.examples import chosen_examples
from kbase.index.faiss_index import FaissIndex
from kbase.llm.base import LLMBackend
from kbase.locking import writer_lock
from kbase.paths import kb_folder
from kbase.pipeline.context import DocContext, DocReport
from kbase.pipeline.ingest import process_document
from kbase.prompts import Chosen
from kbase.records import CallStats, Recorder
from kbase.reports import Answer, FactHit, ForgetReport, IngestReport
from kbase.sources.base import SourceDocument
from kbase.store import queries
from kbase.store.db import open_engine, sqlite_url
from kbase.store.models import Document, Meta
from kbase.vectors import FactVectors, bump_state

CONFIG_FILE = "kbase.json"
DEFAULT_LLAMA_MODEL_ID = "qwen2.5-coder-1.5b-instruct-q4_k_m"
ProgressFn = Callable[[dict[str, Any]], None]


def model_id_for(settings: Settings) -> str:
    """The identity of the configured LLM, known without loading it."""
    if settings.llm == "llama-cpp":
        return (
            Path(settings.llm_model).stem.lower() if settings.llm_model else DEFAULT_LLAMA_MODEL_ID
        )
    if settings.llm in ("openai", "vllm"):
        if not settings.llm_model:
            raise ConfigError(f"the {settings.llm} backend needs a model name: pass --model NAME")
        return settings.llm_model
    return settings.llm_model or settings.llm


def _backend_factory(settings: Settings) -> Callable[[], LLMBackend]:
    def make() -> LLMBackend:
        from kbase.llm import get_backend

        options: dict[str, Any] = {}
        if settings.llm == "llama-cpp" and settings.llm_model:
            options["model_path"] = settings.llm_model
        elif settings.llm == "openai":
            if not settings.llm_url:
                raise ConfigError("the openai backend needs a server URL: pass --llm-url URL")
            options.update(
                base_url=settings.llm_url, model=settings.llm_model, timeout=settings.llm_timeout
            )
        elif settings.llm_model:
            options["model"] = settings.llm_model
        return get_backend(settings.llm, **options)

    return make


class KnowledgeBase:
    """Ingest, ask, search, forget; see the CLI for the user-facing verbs."""

    def __init__(
        self,
        folder: Path,
        engine: Engine,
        settings: Settings,
        *,
        embedder: Embedder,
        backend: Callable[[], LLMBackend],
    ) -> None:
        self.folder = folder
        self.engine = engine
        self.settings = settings
        self.embedder = embedder
        self._backend_factory = backend
        self._backend: LLMBackend | None = None
        #: A backend made from the settings is ours to close; one passed in is the caller's.
        self.owns_backend = True
        #: Seconds a write waits for another writer (None: $KBASE_LOCK_TIMEOUT or 60).
        self.lock_timeout: float | None = None
        self._vectors: FactVectors | None = None

    # -- opening ----------------------------------------------------------------------
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
    ) -> KnowledgeBase:
        """Open (or create) a knowledge base.

        ``settings`` apply only when the knowledge base is created; ``overrides``
        (LLM backend, model, URL) apply to this session only.
        """
        path = kb_folder(folder)
        config_path = path / CONFIG_FILE
        config: dict[str, Any] = {}
        if config_path.exists():
            config = json.loads(config_path.read_text())
        url = database_url or config.get("database_url") or os.environ.get("KBASE_DATABASE_URL")
        exists = config_path.exists() or (path / "kbase.db").exists()
        if not exists and not create:
            raise StoreError(
                f"no knowledge base at {path}: create one with `kb init` or `kb ingest`"
            )
        if path.exists() and not path.is_dir():
            raise StoreError(
                f"{path} is a file, not a knowledge-base folder: give a folder to --kb"
            )
        path.mkdir(parents=True, exist_ok=True)
        if not config_path.exists():
            config_path.write_text(
                json.dumps({"database_url": database_url} if database_url else {})
            )
        engine = open_engine(url or sqlite_url(path))
        with Session(engine) as session, session.begin():
            row = session.get(Meta, "settings")
            if row is None:
                stored = settings or Settings()
                session.add(Meta(key="settings", value=stored.to_json()))
            else:
                stored = Settings.from_json(row.value)
        active = stored.with_overrides(**(overrides or {}))
        chosen = embedder or get_embedder(active.embedder)
        kb = cls(path, engine, active, embedder=chosen, backend=backend or _backend_factory(active))
        kb.owns_backend = backend is None
        return kb

    def close(self) -> None:
        if self._backend is not None and self.owns_backend:
            self._backend.close()
        self._backend = None
        self.engine.dispose()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, autobegin=False) as session:
            yield session

    def _backend_once(self) -> LLMBackend:
        if self._backend is None:
            self._backend = self._backend_factory()
        return self._backend

    def recorder(self, session: Session) -> Recorder:
        return Recorder(session, model_id_for(self.settings), self._backend_once)

    def vectors(self, session: Session) -> FactVectors:
        """The fact index, caught up with SQL whenever the store changed since it was
        last synced (another process may have written). A caught-up index is saved
        only by a process that can take the writer lock right away."""
        if self._vectors is None:
            index = FaissIndex(self.folder / "index", self.embedder.dim)
            self._vectors = FactVectors(self.embedder, index)
        if session.in_transaction():
            return self._vectors  # the caller's transaction: synced when it began
        with session.begin():
            self._vectors.sync(session)
            stale = self._vectors.stamp_is_stale(session)
        if stale:
            try:
                with writer_lock(self.folder, self.engine, timeout=0), session.begin():
                    self._vectors.save(session)
            except LockTimeout:
                pass  # the writer holding it saves the index when it is done
        return self._vectors

    def writing(self) -> AbstractContextManager[None]:
        """The writer lock: one writer at a time per knowledge base."""
        return writer_lock(self.folder, self.engine, self.lock_timeout)

    # -- ingest -----------------------------------------------------------------------
    def ingest(
        self,
        sources: Iterable[SourceDocument],
        *,
        replace: bool = False,
        progress: ProgressFn | None = None,
    ) -> IngestReport:
        """Store documents in order, each in its own transaction: a failure leaves
        every earlier document stored and the failing one not at all."""
        report = IngestReport()
        started = time.perf_counter()
        with self.writing(), self.session() as session:
            vectors = self.vectors(session)
            recorder = self.recorder(session)
            if progress is not None:
                recorder.on_call = lambda _r, _f: progress(
                    self._progress(report, recorder, started)
                )
            try:
                for source in sources:
                    self._ingest_one(session, vectors, recorder, source, replace, report)
                    if progress is not None:
                        progress(self._progress(report, recorder, started))
            finally:
                with session.begin():
                    vectors.save(session)
                total = recorder.total
                report.llm_calls, report.model_calls = total.calls, total.model_calls
                report.prompt_tokens, report.cached_tokens = (
                    total.prompt_tokens,
                    total.cached_tokens,
                )
                report.completion_tokens = total.completion_tokens
                report.model_seconds = round(total.seconds, 3)
                report.seconds = round(time.perf_counter() - started, 3)
        return report

    @staticmethod
    def _progress(report: IngestReport, recorder: Recorder, started: float) -> dict[str, Any]:
        elapsed = max(time.perf_counter() - started, 1e-9)
        total = recorder.total
        return {
            "documents": len(report.stored) + len(report.unchanged),
            "facts": sum(r.facts_created for r in report.stored),
            "llm_calls": total.calls,
            "tokens_per_second": round(total.computed_tokens / elapsed, 1),
        }

    def _ingest_one(
        self,
        session: Session,
        vectors: FactVectors,
        recorder: Recorder,
        source: SourceDocument,
        replace: bool,
        report: IngestReport,
    ) -> None:
        with session.begin():
            existing = session.scalar(
                select(Document.content_hash).where(Document.doc_id == source.doc_id)
            )
        if existing is not None:
            if existing == source.content_hash:
                report.unchanged.append(source.doc_id)
                return
            if not replace:
                raise DocumentError(
                    f"document {source.doc_id!r} is stored with different content: "
                    "pass --replace to replace it, or give another --id"
                )
            from kbase.forget import forget_documents

            forget_documents(self, session, [source.doc_id])
            report.replaced.append(source.doc_id)
        ctx: DocContext | None = None
        try:
            with session.begin():
                doc = Document(
                    doc_id=source.doc_id,
                    seq=queries.next_seq(session),
                    source=source.source,
                    url=source.url,
                    title=source.title,
                    published=source.published,
                    content_hash=source.content_hash,
                    text=source.text,
                    ingested_at=datetime.now(UTC).replace(tzinfo=None),
                )
                session.add(doc)
                session.flush()
                examples = chosen_examples(session, self.embedder, self.settings.seed)
                ctx = self.run_pipeline(session, vectors, recorder, doc, examples=examples)
                bump_state(session)
        except BaseException:
            if ctx is not None:
                vectors.index.remove(_ids(ctx.indexed))
            raise
        report.stored.append(ctx.report)

    def run_pipeline(
        self,
        session: Session,
        vectors: FactVectors,
        recorder: Recorder,
        doc: Document,
        *,
        examples: Chosen,
    ) -> DocContext:
        """Run the pipeline for a stored document (first ingest or replay) and record
        its accounting on the document."""
        recorder.stats = CallStats()
        ctx = DocContext(
            session=session,
            settings=self.settings,
            recorder=recorder,
            vectors=vectors,
            doc=doc,
            report=DocReport(doc.doc_id, doc.seq),
            examples=examples,
        )
        try:
            process_document(ctx)
        except BaseException:
            vectors.index.remove(_ids(ctx.indexed))
            ctx.indexed.clear()
            raise
        stats, report = recorder.stats, ctx.report
        doc.llm_calls = report.llm_calls = stats.calls
        doc.prompt_tokens = report.prompt_tokens = stats.prompt_tokens
        doc.cached_tokens = report.cached_tokens = stats.cached_tokens
        doc.completion_tokens = report.completion_tokens = stats.completion_tokens
        doc.model_seconds = report.model_seconds = round(stats.seconds, 3)
        return ctx

    # -- questions --------------------------------------------------------------------
    def search(
        self, query: str, *, k: int | None = None, as_of: date | None = None
    ) -> list[FactHit]:
        """The facts nearest ``query`` (current ones, or those valid ``as_of``)."""
        return questions.search(self, query, k or self.settings.answer_k, as_of)

    def ask(self, question: str, *, k: int | None = None, as_of: date | None = None) -> Answer:
        """Answer ``question`` from the retrieved facts, with the documents it cites."""
        return questions.ask(self, question, k or self.settings.answer_k, as_of)

    def choose(
        self, question: str, choices: list[str], *, k: int | None = None, as_of: date | None = None
    ) -> int:
        """Index of the choice the LLM scores highest given the retrieved facts
        (multiple-choice questions, as in the benchmarks)."""
        return questions.choose(self, question, choices, k or self.settings.answer_k, as_of)

    # -- forgetting -------------------------------------------------------------------
    def forget(self, doc_ids: list[str], *, missing_ok: bool = False) -> ForgetReport:
        """Forget documents exactly: the store becomes what it would be had they
        never been ingested (see docs/design.md). An unknown id is an error, or with
        ``missing_ok`` is reported in ``missing`` (re-running an interrupted forget)."""
        from kbase.forget import forget_documents

        with self.writing(), self.session() as session:
            return forget_documents(self, session, doc_ids, missing_ok=missing_ok)

    def index_size(self) -> int:
        """Number of vectors in the fact index."""
        with self.session() as session:
            return len(self.vectors(session).index)

    def finish_write(self, session: Session, deleted_fact_ids: list[int]) -> None:
        """After a committed write that deleted fact versions: drop their vectors,
        rewrite the index file, and leave no copy of deleted rows on disk."""
        vectors = self.vectors(session)
        vectors.index.remove(_ids(sorted(set(deleted_fact_ids))))
        with session.begin():
            vectors.save(session)
        self.compact(session)

    def drop_vectors(self) -> None:
        """Forget the in-memory index (after a failed write); it reloads from disk and SQL."""
        self._vectors = None

    def compact(self, session: Session) -> None:
        """Leave no copy of deleted rows in the database's files."""
        from kbase.forget import checkpoint_sqlite

        checkpoint_sqlite(session)

    # -- looking ----------------------------------------------------------------------
    def read_write(self, fn: Callable[[Session], Any]) -> Any:
        """Run a query function that may write (e.g. fit a missing selection) in a
        transaction; what it returns stays readable after it."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            return fn(session)

    def read(self, fn: Callable[[Session], Any]) -> Any:
        """Run a read-only query function in a transaction; what it returns stays
        readable after the transaction ends."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            return fn(session)


def _ids(ids: list[int]) -> Any:
    import numpy as np

    return np.array(ids, dtype=np.int64)
