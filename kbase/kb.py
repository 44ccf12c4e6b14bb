"""The knowledge base as a user sees it: one object, one call per verb.

A knowledge base is one folder (or one PostgreSQL database plus a folder for its
vector index), opened with :meth:`KnowledgeBase.open`. Each method is one call
into :mod:`kbase.ops` and returns a typed result from :mod:`kbase.reports`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from kbase.config import Settings
from kbase.embed import Embedder
from kbase.fewshot.curation import read_examples
from kbase.fewshot.example import Example
from kbase.llm.base import LLMBackend
from kbase.ops import browse, curation, forget, questions, verify
from kbase.ops.ingest import ProgressFn, ingest
from kbase.pipeline.strategies import strategy_named
from kbase.reports import (
    Answer,
    CurationReport,
    DocumentDetail,
    DocumentSummary,
    ExampleRow,
    FactHit,
    FactRow,
    FactVersion,
    FeedRow,
    FeedsChange,
    ForgetReport,
    IngestReport,
    PollProgress,
    PollReport,
    Stats,
    VerifyReport,
)
from kbase.runtime import Runtime
from kbase.sources.base import DEFAULT_MAX_BYTES, SourceDocument
from kbase.sources.fields import check_batch, storable


class KnowledgeBase:
    """Ingest documents, ask and search, look at facts and their histories, forget
    documents exactly, and curate the few-shot examples the prompts show."""

    def __init__(self, runtime: Runtime) -> None:
        #: The machinery underneath (sessions, models, index): for tests and benchmarks.
        self.runtime = runtime

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
        """Open (or, with ``create``, create) the knowledge base in ``folder``
        (default: ``$KBASE_HOME``, else a per-user folder).

        ``settings`` apply only when the knowledge base is created; ``overrides``
        (``llm``, ``llm_model``, ``llm_url``, ``llm_timeout``) apply to this session
        only. ``embedder`` and ``backend`` (a function that makes the LLM when it is
        first needed) replace the models the settings name.
        """
        if settings is not None:
            strategy_named(settings.strategy)  # before anything is created
        return cls(
            Runtime.open(
                folder,
                database_url=database_url,
                create=create,
                settings=settings,
                overrides=overrides,
                embedder=embedder,
                backend=backend,
            )
        )

    @property
    def folder(self) -> Path:
        """The knowledge base's folder."""
        return self.runtime.folder

    @property
    def settings(self) -> Settings:
        """The settings it was created with, and this session's overrides."""
        return self.runtime.settings

    def close(self) -> None:
        """Release the models and the database connections."""
        self.runtime.close()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ----------------------------------------------------------------------
    def ingest(
        self, sources: Iterable[SourceDocument], *, progress: ProgressFn | None = None
    ) -> IngestReport:
        """Store documents, each at its place in publication order and in its own
        transaction: a failure leaves every earlier document stored and the failing
        one not at all. A late document (published before some stored ones) is
        inserted at its date, replaying the later documents it could change. A
        document stored with the same content is skipped; with other content it is
        a new version: the old one is forgotten exactly, the new one placed. A
        document a chunk of which the model's answers never fitted is not stored and
        is listed in the report's ``failed``, so the next ingest retries it."""
        # The boundary rules of every source (ids, NUL, one text per id), for
        # documents built in code too.
        checked = check_batch([storable(s.source, s) for s in sources])
        return ingest(self.runtime, checked, progress=progress)

    def forget(
        self,
        doc_ids: Sequence[str],
        *,
        missing_ok: bool = False,
        allow_again: bool = False,
        purge: bool = False,
    ) -> ForgetReport:
        """Forget documents exactly: the store becomes what it would be had they
        never been ingested (see docs/design.md). An unknown id is an error, or with
        ``missing_ok`` is reported in ``missing`` (re-running an interrupted forget).

        A keyed hash of each id is kept so that polling a feed that still lists the
        document does not bring it back; ``allow_again`` keeps none (and drops an
        earlier one: with ``missing_ok``, ids forgotten before may come back).

        ``purge`` then rewrites the database's files (``VACUUM FULL`` of the kbase
        tables on PostgreSQL, which locks each table while it runs), so the rows'
        old bytes leave them; see docs/reliability.md for what only the server's
        write-ahead-log recycling clears."""
        return forget.forget(
            self.runtime,
            list(doc_ids),
            missing_ok=missing_ok,
            allow_again=allow_again,
            purge=purge,
        )

    # -- feeds ------------------------------------------------------------------------
    # kbase.ops.feeds is imported in each method: it loads the HTTP client and the feed
    # parsers (about half a second), which searching and asking never need.
    def subscribe(self, urls: Sequence[str] = (), *, opml: str | Path | None = None) -> FeedsChange:
        """Subscribe to feeds: http(s) URLs, and every feed an OPML file lists."""
        from kbase.ops import feeds as feed_ops
        from kbase.sources.opml import Subscription, read_opml

        subscriptions = [Subscription(url.strip()) for url in urls]
        if opml is not None:
            subscriptions += read_opml(str(opml))
        return feed_ops.add(self.runtime, subscriptions)

    def unsubscribe(self, urls: Sequence[str]) -> FeedsChange:
        """Unsubscribe from feeds; the documents they gave stay."""
        from kbase.ops import feeds as feed_ops

        return feed_ops.remove(self.runtime, urls)

    def feeds(self) -> list[FeedRow]:
        """Every subscription: its last fetch, its last new item, its errors."""
        from kbase.ops import feeds as feed_ops

        return feed_ops.listing(self.runtime)

    def export_feeds(self) -> str:
        """The subscriptions as an OPML document (addresses without credentials)."""
        from kbase.ops import feeds as feed_ops

        return feed_ops.export(self.runtime)

    def poll(
        self,
        *,
        timeout: float = 20.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        should_stop: Callable[[], bool] | None = None,
        progress: Callable[[PollProgress], None] | None = None,
        allow_private: bool | None = None,
    ) -> PollReport:
        """Fetch every subscribed feed once (a conditional request: an unchanged feed
        costs no parse and no model call) and ingest what is new or updated, each
        document as :meth:`ingest` does, leaving out forgotten ones. One feed's
        failure is recorded on it and the others go on. A feed on a loopback or
        private address fails unless ``allow_private`` (None:
        ``$KBASE_ALLOW_PRIVATE_URLS``)."""
        from kbase.ops import feeds as feed_ops

        return feed_ops.poll(
            self.runtime,
            timeout=timeout,
            max_bytes=max_bytes,
            should_stop=should_stop,
            progress=progress,
            allow_private=allow_private,
        )

    def watch(
        self,
        *,
        stop: threading.Event,
        on_poll: Callable[[PollReport], None],
        every: float | None = None,
        timeout: float = 20.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        progress: Callable[[PollProgress], None] | None = None,
        allow_private: bool | None = None,
    ) -> int:
        """Poll each feed every ``every`` seconds (None: 15 minutes; longer after
        failures, never before a server's Retry-After) until ``stop`` is set; a stop
        is seen between documents, so none is half-stored. Returns how many polls ran."""
        from kbase.ops import feeds as feed_ops

        return feed_ops.watch(
            self.runtime,
            every=feed_ops.DEFAULT_EVERY if every is None else every,
            stop=stop,
            on_poll=on_poll,
            timeout=timeout,
            max_bytes=max_bytes,
            progress=progress,
            allow_private=allow_private,
        )

    # -- questions --------------------------------------------------------------------
    def search(
        self, query: str, *, k: int | None = None, as_of: date | None = None
    ) -> list[FactHit]:
        """The facts nearest ``query`` (current ones, or those valid ``as_of``)."""
        return questions.search(self.runtime, query, k or self.settings.answer_k, as_of)

    def ask(self, question: str, *, k: int | None = None, as_of: date | None = None) -> Answer:
        """Answer ``question`` from the retrieved facts, with the documents it cites."""
        return questions.ask(self.runtime, question, k or self.settings.answer_k, as_of)

    def choose(
        self,
        question: str,
        choices: list[str],
        *,
        k: int | None = None,
        as_of: date | None = None,
        allow_unknown: bool = False,
    ) -> int | None:
        """Index of the choice the LLM scores highest given the retrieved facts
        (multiple-choice questions, as in the benchmarks). With ``allow_unknown``,
        None when the knowledge base does not know; without, always an index. More
        choices than letters (26) raise :class:`kbase.errors.InputError`."""
        return questions.choose(
            self.runtime,
            question,
            choices,
            k or self.settings.answer_k,
            as_of,
            allow_unknown=allow_unknown,
        )

    # -- looking ----------------------------------------------------------------------
    def documents(self) -> list[DocumentSummary]:
        """Every stored document, in ingest order."""
        return browse.documents(self.runtime)

    def document(self, doc_id: str) -> DocumentDetail:
        """A stored document with its text and the edits it caused."""
        return browse.document(self.runtime, doc_id)

    def facts(
        self, *, include_closed: bool = False, doc_id: str | None = None, limit: int | None = None
    ) -> list[FactRow]:
        """Current facts (every version with ``include_closed``), optionally only those
        a document created, at most ``limit``."""
        return browse.facts(self.runtime, include_closed=include_closed, doc_id=doc_id, limit=limit)

    def history(self, fact_id: int) -> list[FactVersion]:
        """Every version of a fact, oldest first, and the documents behind each."""
        return browse.history(self.runtime, fact_id)

    def stats(self, *, per_document: bool = False) -> Stats:
        """Totals: documents, facts, index size, LLM calls and tokens."""
        return browse.stats(self.runtime, per_document=per_document)

    def verify(self, *, deep: bool = False) -> VerifyReport:
        """Check that the vector index and SQL agree and, with ``deep``, that a
        replay of the ingest log from the recorded answers gives the same store."""
        return verify.verify(self.runtime, deep=deep)

    # -- few-shot examples ------------------------------------------------------------
    def examples(self) -> list[ExampleRow]:
        """Every example in the pool, and whether prompts show it now."""
        return curation.listing(self.runtime)

    def add_examples(self, examples: Sequence[Example] | Path) -> CurationReport:
        """Add examples (or every example of a JSONL file) to the pool."""
        given = read_examples(examples) if isinstance(examples, Path) else examples
        return curation.add(self.runtime, given)

    def remove_examples(self, example_ids: Sequence[str]) -> CurationReport:
        """Remove user or correction examples; the selection is updated exactly."""
        return curation.remove(self.runtime, example_ids)

    def correct(
        self, fact_id: int, *, should_be_true: bool, doc_id: str | None = None
    ) -> CurationReport:
        """Record that a decision about a fact was wrong (it should have stayed true,
        or ``doc_id`` should have made it false), as a few-shot example."""
        return curation.correct(self.runtime, fact_id, should_be_true=should_be_true, doc_id=doc_id)
