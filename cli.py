"""The ``kb`` command: parse, call the library, print.

Errors become one line in one place (:func:`main`); ``KBASE_DEBUG=1`` shows the
traceback instead. Heavy modules are imported inside commands, so ``kb --help``
never loads torch or llama.cpp.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kbase import render
from kbase.config import Settings
from kbase.embed import EMBEDDERS
from kbase.llm import BACKENDS

if TYPE_CHECKING:
    from kbase.kb import KnowledgeBase
    from kbase.reports import CurationReport, PollProgress, PollReport


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _echo(lines: Iterable[str], *, err: bool = False) -> None:
    for line in lines:
        click.echo(line, err=err)


def _parse_date(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date: use YYYY-MM-DD") from None


class StrategyChoice(click.Choice):  # type: ignore[type-arg]
    """The strategies' registry as choices, read when first needed: it imports the
    pipeline, which ``kb --help`` and most commands never need."""

    def __init__(self) -> None:
        super().__init__([])

    @property  # type: ignore[override]
    def choices(self) -> list[str]:
        from kbase.pipeline.strategies import STRATEGIES

        return list(STRATEGIES)

    @choices.setter
    def choices(self, _value: object) -> None:
        pass  # click's __init__ sets it; the registry is the truth


class Options:
    """Global options, resolved into a knowledge base on demand."""

    def __init__(
        self,
        kb: str | None,
        db: str | None,
        llm: str | None,
        llm_url: str | None,
        model: str | None,
        llm_timeout: float | None,
    ) -> None:
        self.kb, self.db = kb, db
        self.overrides: dict[str, str | float | None] = {
            "llm": llm,
            "llm_url": llm_url,
            "llm_model": model,
            "llm_timeout": llm_timeout,
        }

    def open(self, *, create: bool = False) -> KnowledgeBase:
        from kbase.kb import KnowledgeBase

        return KnowledgeBase.open(
            self.kb, database_url=self.db, create=create, overrides=self.overrides
        )


pass_options = click.make_pass_decorator(Options)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
k_option = click.option(
    "--k",
    "k",
    type=click.IntRange(1, 100),
    default=None,
    help="How many facts to retrieve (default: the knowledge base's setting).",
)
as_of_option = click.option(
    "--as-of",
    "as_of",
    callback=_parse_date,
    default=None,
    metavar="YYYY-MM-DD",
    help="Use the knowledge base as it stood on that date.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--kb",
    envvar="KBASE_HOME",
    metavar="PATH",
    help="Knowledge-base folder (default: $KBASE_HOME, else a per-user folder).",
)
@click.option(
    "--db",
    envvar="KBASE_DATABASE_URL",
    metavar="URL",
    help="Database URL (postgresql://...); default: SQLite inside the folder. A password "
    "in it is never stored: give it each time ($KBASE_DATABASE_URL, $PGPASSWORD, ~/.pgpass).",
)
@click.option(
    "--llm",
    type=click.Choice(list(BACKENDS)),
    default=None,
    help="LLM backend for this command (default: the knowledge base's).",
)
@click.option(
    "--llm-url",
    metavar="URL",
    default=None,
    help="Base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1.",
)
@click.option(
    "--model",
    metavar="NAME",
    default=None,
    help="Model name (openai, vllm) or GGUF path (llama-cpp).",
)
@click.option(
    "--llm-timeout",
    type=click.FloatRange(0.1),
    default=None,
    metavar="SECONDS",
    help="Seconds an LLM server may take per request, each of 3 tries (default 120).",
)
@click.version_option(package_name="kbase")
@click.pass_context
def cli(
    ctx: click.Context,
    kb: str | None,
    db: str | None,
    llm: str | None,
    llm_url: str | None,
    model: str | None,
    llm_timeout: float | None,
) -> None:
    """kbase: a knowledge base that edits itself as news arrives and forgets exactly."""
    ctx.obj = Options(kb, db, llm, llm_url, model, llm_timeout)


@cli.command()
@click.option(
    "--strategy",
    type=StrategyChoice(),
    default=Settings().strategy,
    show_default=True,
    help="How new documents edit stored facts.",
)
@click.option(
    "--embedder",
    type=click.Choice(list(EMBEDDERS)),
    default=Settings().embedder,
    show_default=True,
    help="Embedding model: all-MiniLM-L6-v2 on onnxruntime (minilm-onnx) or torch (minilm).",
)
@click.option(
    "--chunk-tokens",
    type=click.IntRange(32, 4096),
    default=None,
    help="Chunk size in estimated tokens.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    default=None,
    help="Cosine above which a stored fact is a candidate for an edit.",
)
@pass_options
def init(
    opts: Options, strategy: str, embedder: str, chunk_tokens: int | None, threshold: float | None
) -> None:
    """Create a knowledge base with fixed settings (ingest creates one with defaults)."""
    from kbase.kb import KnowledgeBase
    from kbase.paths import kb_folder
    from kbase.runtime import CONFIG_FILE

    folder = kb_folder(opts.kb)
    if (folder / CONFIG_FILE).exists():
        raise click.ClickException(f"a knowledge base exists at {folder}: use another --kb")
    settings = Settings(strategy=strategy, embedder=embedder).with_overrides(
        chunk_tokens=chunk_tokens, candidate_threshold=threshold, **opts.overrides
    )
    with KnowledgeBase.open(folder, database_url=opts.db, settings=settings):
        pass
    click.echo(f"Created a knowledge base at {folder} (strategy {strategy}).")


class _Progress:
    """A status line on stderr: rewritten in place on a terminal, else one line per
    document."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self.tty = sys.stderr.isatty()
        self.last_documents = -1

    def __call__(self, state: dict[str, Any]) -> None:
        if not self.enabled or (not self.tty and state["documents"] == self.last_documents):
            return
        self.last_documents = state["documents"]
        line = (
            f"documents {state['documents']}/{self.total} · facts {state['facts']} · "
            f"LLM calls {state['llm_calls']} · {state['tokens_per_second']} tokens/s"
        )
        click.echo(("\r" + line) if self.tty else line, err=True, nl=not self.tty)

    def done(self) -> None:
        if self.enabled and self.tty:
            click.echo(err=True)


#: The URL policy's one exception (kbase/sources/fetch.py): private networks allowed.
allow_private_option = click.option(
    "--allow-private-urls",
    "allow_private",
    is_flag=True,
    help="Fetch from loopback and private addresses too (default: refused, unless "
    "$KBASE_ALLOW_PRIVATE_URLS=1).",
)


@cli.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--id", "doc_id", default=None, help="Document id (a source with one document only).")
@click.option(
    "--max-bytes",
    type=click.IntRange(1),
    default=None,
    help="Largest file or download accepted (default 20 MiB).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.1),
    default=20.0,
    show_default=True,
    help="Seconds to wait for a URL.",
)
@click.option("--skip-bad", is_flag=True, help="Skip bad JSONL lines instead of failing.")
@allow_private_option
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@json_option
@pass_options
def ingest(
    opts: Options,
    sources: tuple[str, ...],
    doc_id: str | None,
    max_bytes: int | None,
    timeout: float,
    skip_bad: bool,
    allow_private: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Add documents: feeds (RSS, Atom, RDF), JSONL, text, Markdown or HTML files,
    folders, http(s) URLs, or - for stdin."""
    from kbase.sources import read_sources
    from kbase.sources.base import DEFAULT_MAX_BYTES

    if doc_id is not None and len(sources) != 1:
        raise click.ClickException("--id needs exactly one source")
    # Every source is read and checked, as one batch, before anything is stored.
    documents = read_sources(
        sources,
        doc_id=doc_id,
        max_bytes=max_bytes or DEFAULT_MAX_BYTES,
        timeout=timeout,
        skip_bad=skip_bad,
        allow_private=allow_private or None,
    )
    progress = _Progress(len(documents), enabled=not (quiet or as_json))
    with opts.open(create=True) as kb:
        try:
            report = kb.ingest(documents, progress=progress)
        finally:
            progress.done()
    if as_json:
        _emit_json(report.to_dict())
    elif not quiet:
        out, warnings = render.ingest_lines(report)
        _echo(out)
        _echo(warnings, err=True)
    if report.failed:
        raise click.ClickException(render.not_stored(report))


@cli.command()
@click.argument("question")
@k_option
@as_of_option
@json_option
@pass_options
def ask(opts: Options, question: str, k: int | None, as_of: date | None, as_json: bool) -> None:
    """Answer a question from the stored facts, citing the documents used."""
    with opts.open() as kb:
        answer = kb.ask(question, k=k, as_of=as_of)
    if as_json:
        _emit_json(answer.to_dict())
    else:
        _echo(render.answer_lines(answer))


@cli.command()
@click.argument("query")
@k_option
@as_of_option
@json_option
@pass_options
def search(opts: Options, query: str, k: int | None, as_of: date | None, as_json: bool) -> None:
    """Retrieve the facts nearest a query, with provenance (no LLM)."""
    with opts.open() as kb:
        hits = kb.search(query, k=k, as_of=as_of)
    if as_json:
        _emit_json({"facts": [h.to_dict() for h in hits]})
    else:
        _echo(render.hit_lines(hits))


@cli.group()
def docs() -> None:
    """List and show stored documents."""


@docs.command("list")
@json_option
@pass_options
def docs_list(opts: Options, as_json: bool) -> None:
    """List documents in ingest order."""
    with opts.open() as kb:
        documents = kb.documents()
    if as_json:
        _emit_json([d.to_dict() for d in documents])
    else:
        _echo(render.document_list_lines(documents))


@docs.command("show")
@click.argument("doc_id")
@json_option
@pass_options
def docs_show(opts: Options, doc_id: str, as_json: bool) -> None:
    """Show a document, its accounting and the edits it caused."""
    with opts.open() as kb:
        detail = kb.document(doc_id)
    if as_json:
        _emit_json(detail.to_dict())
    else:
        _echo(render.document_lines(detail))


@cli.group()
def facts() -> None:
    """List stored facts."""


@facts.command("list")
@click.option(
    "--all", "include_closed", is_flag=True, help="Include retired and rewritten versions."
)
@click.option("--doc", "doc_id", default=None, help="Only facts created by this document.")
@click.option("--limit", type=click.IntRange(1), default=None, help="At most this many.")
@json_option
@pass_options
def facts_list(
    opts: Options, include_closed: bool, doc_id: str | None, limit: int | None, as_json: bool
) -> None:
    """List current facts (or every version with --all)."""
    with opts.open() as kb:
        rows = kb.facts(include_closed=include_closed, doc_id=doc_id, limit=limit)
    if as_json:
        _emit_json([r.to_dict() for r in rows])
    else:
        _echo(render.fact_list_lines(rows))


@cli.command()
@click.argument("fact_id", type=int)
@json_option
@pass_options
def history(opts: Options, fact_id: int, as_json: bool) -> None:
    """Show every version of a fact and the documents behind each."""
    with opts.open() as kb:
        versions = kb.history(fact_id)
    if as_json:
        _emit_json([v.to_dict() for v in versions])
    else:
        _echo(render.history_lines(versions))


@cli.command()
@click.option(
    "--documents",
    "per_document",
    is_flag=True,
    help="Also list each document's LLM calls, tokens and model time.",
)
@json_option
@pass_options
def stats(opts: Options, per_document: bool, as_json: bool) -> None:
    """Totals: documents, facts, index size, LLM calls and tokens."""
    with opts.open() as kb:
        totals = kb.stats(per_document=per_document)
    if as_json:
        _emit_json(totals.to_dict())
    else:
        _echo(render.stats_lines(totals))


@cli.command()
@click.argument("doc_ids", nargs=-1, required=True)
@click.option(
    "--missing-ok",
    is_flag=True,
    help="Report ids that are not stored instead of failing (re-running an interrupted forget).",
)
@click.option(
    "--allow-again",
    is_flag=True,
    help="Keep no record of the ids, so a feed that still lists them brings them back at the "
    "next poll (with --missing-ok, also for ids forgotten before).",
)
@click.option(
    "--purge",
    is_flag=True,
    help="Then rewrite the database's files so the rows' old bytes leave them too "
    "(PostgreSQL: VACUUM FULL of the kbase tables, which blocks readers while it runs).",
)
@json_option
@pass_options
def forget(
    opts: Options,
    doc_ids: tuple[str, ...],
    missing_ok: bool,
    allow_again: bool,
    purge: bool,
    as_json: bool,
) -> None:
    """Forget documents exactly, as if they had never been ingested.

    A keyed hash of each id (not the id, nor any text) is kept so that `kb poll`
    does not bring a document back while its feed still lists it; `kb ingest` of
    the document stores it again all the same."""
    with opts.open() as kb:
        report = kb.forget(doc_ids, missing_ok=missing_ok, allow_again=allow_again, purge=purge)
    if as_json:
        _emit_json(report.to_dict())
    else:
        _echo(render.forget_lines(report))


# -- feeds --------------------------------------------------------------------------------
max_bytes_option = click.option(
    "--max-bytes",
    type=click.IntRange(1),
    default=None,
    help="Largest feed accepted, in bytes (default 20 MiB).",
)
fetch_timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(0.1),
    default=20.0,
    show_default=True,
    help="Seconds to wait for each feed.",
)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _parse_duration(_ctx: click.Context, _param: click.Parameter, value: str) -> float:
    text = value.strip().lower()
    parts = list(_DURATION.finditer(text))
    if not parts or "".join(p.group(0) for p in parts) != text:
        raise click.BadParameter(f"{value!r} is not a duration: use e.g. 90s, 15m, 2h or 1h30m")
    seconds = sum(float(p.group(1)) * _UNITS[p.group(2)] for p in parts)
    if seconds < 1:
        raise click.BadParameter(f"{value!r} is under a second: poll at most once a second")
    return seconds


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


@cli.group()
def feeds() -> None:
    """Subscriptions: the feeds `kb poll` and `kb watch` fetch."""


@feeds.command("add")
@click.argument("urls", nargs=-1)
@click.option(
    "--opml",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also subscribe to every feed of this OPML file (a feed reader's export).",
)
@json_option
@pass_options
def feeds_add(opts: Options, urls: tuple[str, ...], opml: Path | None, as_json: bool) -> None:
    """Subscribe to feeds (http(s) URLs of RSS, Atom or RDF feeds)."""
    if not urls and opml is None:
        raise click.UsageError("give the URLs of feeds, or --opml FILE")
    with opts.open(create=True) as kb:
        change = kb.subscribe(urls, opml=opml)
    if as_json:
        _emit_json(change.to_dict())
    else:
        _echo(render.feeds_change_lines(change))


@feeds.command("list")
@json_option
@pass_options
def feeds_list(opts: Options, as_json: bool) -> None:
    """List subscriptions with their last fetch, last new item and errors."""
    with opts.open() as kb:
        rows = kb.feeds()
    if as_json:
        _emit_json([r.to_dict() for r in rows])
    else:
        _echo(render.feed_list_lines(rows))


@feeds.command("rm")
@click.argument("urls", nargs=-1, required=True)
@json_option
@pass_options
def feeds_rm(opts: Options, urls: tuple[str, ...], as_json: bool) -> None:
    """Unsubscribe from feeds; the documents they gave stay."""
    with opts.open() as kb:
        change = kb.unsubscribe(urls)
    if as_json:
        _emit_json(change.to_dict())
    else:
        _echo(render.feeds_change_lines(change))


@feeds.command("export")
@click.option(
    "--opml",
    "as_opml",
    is_flag=True,
    default=True,
    help="As OPML, which feed readers import (the only format; the default).",
)
@pass_options
def feeds_export(opts: Options, as_opml: bool) -> None:
    """Print the subscriptions as OPML (addresses without user names or passwords)."""
    with opts.open() as kb:
        click.echo(kb.export_feeds(), nl=False)


class _PollBar:
    """On a terminal, a progress bar on stderr for each phase of a poll (fetching
    the feeds, ingesting their items): counts, an estimate, and the time so far."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.bar: Any = None
        self.phase = ""
        self.started = time.monotonic()

    def __call__(self, state: PollProgress) -> None:
        if not self.enabled:
            return
        if state.phase != self.phase:
            self.close()
            self.phase = state.phase
            if state.phase == "fetch":
                self.started = time.monotonic()
            if state.total == 0:
                return
            label = "Fetching feeds" if state.phase == "fetch" else "Ingesting items"
            self.bar = click.progressbar(
                length=state.total,
                label=label,
                file=sys.stderr,
                show_eta=True,
                show_pos=True,
                item_show_func=self._item,
            )
            self.bar.__enter__()
        if self.bar is not None:
            self.bar.update(max(state.done - self.bar.pos, 0), state)

    def _item(self, state: PollProgress | None) -> str | None:
        if state is None:
            return None
        elapsed = int(time.monotonic() - self.started)
        stored = f"{state.stored} stored · " if state.phase == "ingest" else ""
        return f"{stored}{elapsed // 60}:{elapsed % 60:02d} elapsed"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def _print_poll(report: PollReport, *, quiet: bool, as_json: bool) -> None:
    if as_json:
        _emit_json(report.to_dict())
        return
    out, errors = render.poll_lines(report)
    if quiet:
        errors = [line for line in errors if not line.startswith("  warning:")]
    else:
        _echo(out)
    _echo(errors, err=True)


@cli.command()
@fetch_timeout_option
@max_bytes_option
@allow_private_option
@click.option("--quiet", "-q", is_flag=True, help="Print nothing unless a feed failed.")
@json_option
@pass_options
def poll(
    opts: Options,
    timeout: float,
    max_bytes: int | None,
    allow_private: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Fetch every subscribed feed once and ingest what is new or updated.

    Each feed is fetched with a conditional request (an unchanged feed costs no
    parse and no model call); an edited item becomes a new version, a forgotten one
    stays out. One summary line per feed; the exit status is non-zero only when
    every feed failed. For cron: `kb poll -q`."""
    from kbase.sources.base import DEFAULT_MAX_BYTES

    bar = _PollBar(enabled=not (quiet or as_json))
    with opts.open() as kb:
        try:
            report = kb.poll(
                timeout=timeout,
                max_bytes=max_bytes or DEFAULT_MAX_BYTES,
                progress=bar,
                allow_private=allow_private or None,
            )
        finally:
            bar.close()
    _print_poll(report, quiet=quiet, as_json=as_json)
    if report.all_failed:
        sys.exit(1)


@cli.command()
@click.option(
    "--every",
    default="15m",
    show_default=True,
    callback=_parse_duration,
    metavar="DURATION",
    help="How often to poll each feed (90s, 15m, 2h); longer after failures.",
)
@fetch_timeout_option
@max_bytes_option
@allow_private_option
@click.option("--quiet", "-q", is_flag=True, help="Print nothing unless a feed failed.")
@json_option
@pass_options
def watch(
    opts: Options,
    every: float,
    timeout: float,
    max_bytes: int | None,
    allow_private: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Poll the feeds in a loop until interrupted (Ctrl-C, SIGTERM).

    A stop takes effect between documents, so every stored document is complete; a
    failing feed waits twice as long after each failure (at most a day), and a
    server's Retry-After is honoured. A second Ctrl-C stops at once (the document
    being stored is then not stored at all)."""
    from kbase.sources.base import DEFAULT_MAX_BYTES

    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        if not quiet:
            click.echo("Stopping after the current document...", err=True)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    bar = _PollBar(enabled=not (quiet or as_json))

    def on_poll(report: PollReport) -> None:
        bar.close()
        bar.phase = ""
        _print_poll(report, quiet=quiet, as_json=as_json)

    try:
        with opts.open() as kb:
            if not (quiet or as_json):
                count = len(kb.feeds())
                click.echo(
                    f"Watching {count} feeds, each every {_duration(every)}; stop with Ctrl-C.",
                    err=True,
                )
            try:
                kb.watch(
                    stop=stop,
                    every=every,
                    on_poll=on_poll,
                    timeout=timeout,
                    max_bytes=max_bytes or DEFAULT_MAX_BYTES,
                    progress=bar,
                    allow_private=allow_private or None,
                )
            finally:
                bar.close()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not (quiet or as_json):
        click.echo("Stopped; every stored document is complete.", err=True)


def _print_curation(report: CurationReport, as_json: bool) -> None:
    if as_json:
        _emit_json(report.to_dict())
    else:
        _echo(render.curation_lines(report))


@cli.group()
def examples() -> None:
    """The few-shot example pool the prompts' examples are selected from."""


@examples.command("list")
@json_option
@pass_options
def examples_list(opts: Options, as_json: bool) -> None:
    """List built-in, user and correction examples, and which are selected."""
    with opts.open() as kb:
        rows = kb.examples()
    if as_json:
        _emit_json([r.to_dict() for r in rows])
    else:
        _echo(render.example_lines(rows))


@examples.command("add")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@json_option
@pass_options
def examples_add(opts: Options, path: Path, as_json: bool) -> None:
    """Add examples from a JSONL file (see docs/design.md for the record forms)."""
    from kbase.fewshot.curation import read_examples

    records = read_examples(path)  # a bad file fails before the knowledge base opens
    with opts.open() as kb:
        _print_curation(kb.add_examples(records), as_json)


@examples.command("rm")
@click.argument("example_ids", nargs=-1, required=True)
@json_option
@pass_options
def examples_rm(opts: Options, example_ids: tuple[str, ...], as_json: bool) -> None:
    """Remove user or correction examples; the selection is updated exactly."""
    with opts.open() as kb:
        _print_curation(kb.remove_examples(example_ids), as_json)


@cli.command()
@click.argument("fact_id", type=int)
@click.option(
    "--should-be",
    type=click.Choice(["true", "false"]),
    required=True,
    help="The right verdict: true (it should not have been closed) or false.",
)
@click.option(
    "--doc",
    "doc_id",
    default=None,
    help="With --should-be false: the article that should have made it false.",
)
@json_option
@pass_options
def correct(opts: Options, fact_id: int, should_be: str, doc_id: str | None, as_json: bool) -> None:
    """Record that a decision about a fact was wrong, as a few-shot example."""
    with opts.open() as kb:
        report = kb.correct(fact_id, should_be_true=should_be == "true", doc_id=doc_id)
    _print_curation(report, as_json)


@cli.command()
@click.option(
    "--deep",
    is_flag=True,
    help="Also rebuild the store from the ingest log with the recorded answers and compare.",
)
@json_option
@pass_options
def verify(opts: Options, deep: bool, as_json: bool) -> None:
    """Check that the vector index and SQL agree (and, with --deep, that a replay of
    the ingest log gives the same store)."""
    with opts.open() as kb:
        report = kb.verify(deep=deep)
    if as_json:
        _emit_json(report.to_dict())
    else:
        _echo(render.verify_lines(report))
    if not report.ok:
        sys.exit(1)


# -- the server: HTTP API, MCP tools, web page (docs/server.md) ----------------------------
@cli.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; any but loopback needs --token.",
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8321, show_default=True, help="Port."
)
@click.option(
    "--token",
    envvar="KBASE_TOKEN",
    default=None,
    metavar="SECRET",
    help="Require Authorization: Bearer SECRET on every request (default: $KBASE_TOKEN).",
)
@click.option(
    "--max-bytes",
    type=click.IntRange(1),
    default=None,
    help="Largest request body or URL download accepted (default 20 MiB).",
)
@allow_private_option
@pass_options
def serve(
    opts: Options,
    host: str,
    port: int,
    token: str | None,
    max_bytes: int | None,
    allow_private: bool,
) -> None:
    """Serve the knowledge base over HTTP with the models loaded once: a JSON API
    (schema at /openapi.json), the MCP tools at /mcp and a web page at /."""
    from kbase.server.run import check_binding, serve_http
    from kbase.server.service import Service
    from kbase.sources.base import DEFAULT_MAX_BYTES

    check_binding(host, token)  # before any model loads
    service = Service.open(
        opts.kb,
        database_url=opts.db,
        overrides=opts.overrides,
        allow_private_urls=allow_private or None,
    )
    click.echo(f"Loading the models, then serving {service.writer.folder} ...", err=True)
    try:
        serve_http(
            service,
            host=host,
            port=port,
            token=token,
            max_body_bytes=max_bytes or DEFAULT_MAX_BYTES,
        )
    finally:
        service.close()


@cli.command()
@allow_private_option
@pass_options
def mcp(opts: Options, allow_private: bool) -> None:
    """Serve the MCP tools (ask, search, ingest, forget, history, feeds) over stdin
    and stdout, for an agent that starts `kb mcp` itself."""
    from kbase.server.run import serve_stdio
    from kbase.server.service import Service

    service = Service.open(
        opts.kb,
        database_url=opts.db,
        overrides=opts.overrides,
        allow_private_urls=allow_private or None,
    )
    try:
        serve_stdio(service)
    finally:
        service.close()


def _one_line(text: str) -> str:
    """Messages can quote user input (a path with a newline, a list of choices)."""
    return " ".join(text.split())


def main() -> None:
    """Entry point: run the CLI, turning kbase errors into one-line messages."""
    from kbase.errors import KbaseError, disk_full

    try:
        cli.main(prog_name="kb", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else "")
        where = exc.ctx.command_path if exc.ctx else "kb"
        click.echo(f"Error: give a command (see `{where} --help`)", err=True)
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "kb"
        click.echo(f"Error: {_one_line(exc.format_message())} (see `{where} --help`)", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"Error: {_one_line(exc.format_message())}", err=True)
        sys.exit(exc.exit_code)
    except KbaseError as exc:
        if os.environ.get("KBASE_DEBUG"):
            raise
        click.echo(f"Error: {_one_line(str(exc))}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Interrupted; finished documents are stored.", err=True)
        sys.exit(130)
    except Exception as exc:  # the last line of defence: no traceback for the user
        if os.environ.get("KBASE_DEBUG"):
            raise
        if disk_full(exc):
            click.echo(
                "Error: the disk is full: free some space and run the command again", err=True
            )
            sys.exit(1)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        click.echo(
            f"Error: unexpected {type(exc).__name__}: {first} "
            "(set KBASE_DEBUG=1 for the traceback and report it)",
            err=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
