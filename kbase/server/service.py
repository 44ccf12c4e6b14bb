"""One knowledge base served to many requests: the models loaded once, one writer
at a time, reads running while a write does.

A :class:`~kbase.kb.KnowledgeBase` keeps an in-memory vector index that its
operations catch up from SQL, which is not safe to share between a writer and
readers running at once in threads. So the service opens the knowledge base three
times on one embedder and one LLM (each loaded once, and serialised: neither a
llama.cpp model nor a tokenizer may run two calls at once): a *writer* for
ingest and forget, one at a time (an :class:`asyncio.Lock`; the writer lock of
:mod:`kbase.locking` keeps out other processes), a *searcher* for search and
stats, and an *asker* for answers. Each reader's index is caught up from SQL
when a write commits, as another process's would be. Reads of SQL only
(documents, facts, histories) run fully concurrently.

One handle for all of them would need more than a lock around the index's lazy
load and catch-up: a write's transaction changes its index before it commits
(its new vectors added, removed again if it fails), FAISS allows no search while
an index changes, and a reader's catch-up between two of a writer's transactions
(the store state changed by the first) would drop the vectors of the one still
open, which the writer would then save as caught up. So each handle's index is
used by one thread at a time, and readers never touch the writer's.

Every blocking call runs in Starlette's thread pool, so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from kbase.config import Settings
from kbase.embed import Embedder, Vectors, get_embedder
from kbase.kb import KnowledgeBase
from kbase.llm import LLMBackend, backend_for
from kbase.llm.base import LLMRequest, LLMResponse
from kbase.reports import (
    Answer,
    DocumentDetail,
    DocumentSummary,
    FactHit,
    FactRow,
    FactVersion,
    FeedRow,
    FeedsChange,
    ForgetReport,
    IngestReport,
    PollReport,
    Stats,
    VerifyReport,
)
from kbase.sources import read_source
from kbase.sources.base import DEFAULT_MAX_BYTES, SourceDocument
from kbase.sources.fetch import check_url

T = TypeVar("T")


class SerialEmbedder(Embedder):
    """An embedder shared by threads, one call at a time."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dim = inner.dim
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> Vectors:
        with self._lock:
            return self.inner.embed(texts)

    def embed_batch(self, texts: Sequence[str]) -> Vectors:
        with self._lock:
            return self.inner.embed_batch(texts)


class SharedLLM(LLMBackend):
    """One LLM for every knowledge base of the service: made on first use (or by
    :meth:`load`), one request at a time, closed by the service."""

    def __init__(self, factory: Callable[[], LLMBackend]) -> None:
        self._factory = factory
        self._inner: LLMBackend | None = None
        self._make = threading.Lock()
        self._call = threading.Lock()

    def load(self) -> LLMBackend:
        with self._make:
            if self._inner is None:
                self._inner = self._factory()
                self.model_id = self._inner.model_id
                self.supports_logprobs = self._inner.supports_logprobs
            return self._inner

    @property
    def loaded(self) -> bool:
        return self._inner is not None

    def get(self) -> LLMBackend:
        """This object, the backend every knowledge base is given (the model loaded)."""
        self.load()
        return self

    def generate(self, request: LLMRequest) -> LLMResponse:
        inner = self.load()
        with self._call:
            return inner.generate(request)

    def score(self, request: LLMRequest) -> LLMResponse:
        inner = self.load()
        with self._call:
            return inner.score(request)

    def generate_many(self, requests: Sequence[LLMRequest]) -> list[LLMResponse]:
        inner = self.load()
        with self._call:
            return inner.generate_many(requests)

    def close(self) -> None:
        with self._make, self._call:
            if self._inner is not None:
                self._inner.close()
            self._inner = None


class _Reader:
    """A knowledge base for reads whose index is used by one request at a time."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb = kb
        self.lock = threading.Lock()

    def run(self, fn: Callable[[KnowledgeBase], T]) -> T:
        with self.lock:
            return fn(self.kb)


class Service:
    """The knowledge base behind the HTTP API, the MCP tools and the web page."""

    def __init__(
        self,
        writer: KnowledgeBase,
        searcher: KnowledgeBase,
        asker: KnowledgeBase,
        embedder: SerialEmbedder,
        llm: SharedLLM,
        *,
        allow_private_urls: bool | None = None,
    ) -> None:
        self.writer = writer
        self._searcher = _Reader(searcher)
        self._asker = _Reader(asker)
        self.embedder = embedder
        self.llm = llm
        self._write_lock: asyncio.Lock | None = None
        self._embedder_ready = False
        #: Whether URLs may reach loopback and private addresses (None:
        #: ``$KBASE_ALLOW_PRIVATE_URLS``); see :mod:`kbase.sources.fetch`.
        self.allow_private_urls = allow_private_urls

    @classmethod
    def open(
        cls,
        folder: str | Path | None = None,
        *,
        allow_private_urls: bool | None = None,
        **options: Any,
    ) -> Service:
        """Open (or create) the knowledge base in ``folder`` as
        ``KnowledgeBase.open(folder, **options)`` does (the same options: database
        URL, settings, overrides, models); no model is loaded yet (see :meth:`warm`).
        URLs (ingest by URL, feeds) reach loopback and private addresses only with
        ``allow_private_urls`` (None: ``$KBASE_ALLOW_PRIVATE_URLS``)."""
        first = KnowledgeBase.open(folder, **options)
        active, where = first.settings, first.folder
        first.close()
        embedder: Embedder | None = options.get("embedder")
        backend: Callable[[], LLMBackend] | None = options.get("backend")
        shared_embedder = SerialEmbedder(embedder or get_embedder(active.embedder))
        shared_llm = SharedLLM(backend or (lambda: backend_for(active)))
        # The same database and session overrides; the models shared, the settings
        # those the knowledge base was created with.
        again = {k: v for k, v in options.items() if k in ("database_url", "overrides")}

        def reopen() -> KnowledgeBase:
            return KnowledgeBase.open(
                where, create=False, embedder=shared_embedder, backend=shared_llm.get, **again
            )

        return cls(
            reopen(),
            reopen(),
            reopen(),
            shared_embedder,
            shared_llm,
            allow_private_urls=allow_private_urls,
        )

    @property
    def settings(self) -> Settings:
        return self.writer.settings

    @property
    def ready(self) -> bool:
        """Whether the models are loaded."""
        return self._embedder_ready and self.llm.loaded

    def warm(self) -> None:
        """Load the embedder and the LLM now rather than on the first request."""
        self.embedder.embed(["warm up"])
        self._embedder_ready = True
        self.llm.load()

    def close(self) -> None:
        for kb in (self.writer, self._searcher.kb, self._asker.kb):
            kb.close()
        self.llm.close()

    # -- writes: one at a time ----------------------------------------------------------
    def _writes(self) -> asyncio.Lock:
        if self._write_lock is None:  # made on the event loop that uses it
            self._write_lock = asyncio.Lock()
        return self._write_lock

    async def ingest(self, documents: list[SourceDocument]) -> IngestReport:
        async with self._writes():
            return await run_in_threadpool(self.writer.ingest, documents)

    async def ingest_url(
        self,
        url: str,
        *,
        doc_id: str | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        timeout: float = 20.0,
    ) -> IngestReport:
        """Fetch ``url`` (http(s) only, under the URL policy, at most ``max_bytes``)
        and ingest its documents, as ``kb ingest URL`` does. The download runs
        before the write lock is taken."""
        check_url(url)  # never a local path or standard input

        def read() -> list[SourceDocument]:
            return read_source(
                url,
                doc_id=doc_id,
                max_bytes=max_bytes,
                timeout=timeout,
                allow_private=self.allow_private_urls,
            )

        documents = await run_in_threadpool(read)
        return await self.ingest(documents)

    async def subscribe(self, urls: list[str]) -> FeedsChange:
        async with self._writes():
            return await run_in_threadpool(self.writer.subscribe, urls)

    async def unsubscribe(self, urls: list[str]) -> FeedsChange:
        async with self._writes():
            return await run_in_threadpool(self.writer.unsubscribe, urls)

    async def poll(
        self, *, max_bytes: int = DEFAULT_MAX_BYTES, timeout: float = 20.0
    ) -> PollReport:
        """Fetch every subscribed feed once and ingest what is new, as ``kb poll``."""

        def poll() -> PollReport:
            return self.writer.poll(
                timeout=timeout, max_bytes=max_bytes, allow_private=self.allow_private_urls
            )

        async with self._writes():
            return await run_in_threadpool(poll)

    async def forget(self, doc_ids: list[str]) -> tuple[ForgetReport, VerifyReport]:
        """Forget documents, then check that the index and SQL agree."""

        def forget_and_verify() -> tuple[ForgetReport, VerifyReport]:
            report = self.writer.forget(doc_ids)
            return report, self.writer.verify()

        async with self._writes():
            return await run_in_threadpool(forget_and_verify)

    # -- reads --------------------------------------------------------------------------
    async def ask(self, question: str, *, k: int | None, as_of: date | None) -> Answer:
        return await run_in_threadpool(
            self._asker.run, lambda kb: kb.ask(question, k=k, as_of=as_of)
        )

    async def search(self, query: str, *, k: int | None, as_of: date | None) -> list[FactHit]:
        return await run_in_threadpool(
            self._searcher.run, lambda kb: kb.search(query, k=k, as_of=as_of)
        )

    async def stats(self, *, per_document: bool = False) -> Stats:
        return await run_in_threadpool(
            self._searcher.run, lambda kb: kb.stats(per_document=per_document)
        )

    async def documents(self) -> list[DocumentSummary]:
        return await run_in_threadpool(self._searcher.kb.documents)

    async def document(self, doc_id: str) -> DocumentDetail:
        return await run_in_threadpool(self._searcher.kb.document, doc_id)

    async def facts(
        self, *, include_closed: bool = False, doc_id: str | None = None, limit: int | None = None
    ) -> list[FactRow]:
        kb = self._searcher.kb
        return await run_in_threadpool(
            lambda: kb.facts(include_closed=include_closed, doc_id=doc_id, limit=limit)
        )

    async def history(self, fact_id: int) -> list[FactVersion]:
        return await run_in_threadpool(self._searcher.kb.history, fact_id)

    async def feeds(self) -> list[FeedRow]:
        return await run_in_threadpool(self._searcher.kb.feeds)
