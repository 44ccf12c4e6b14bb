"""The ``kb`` command: parse, call the library, print.

Errors become one line in one place (:func:`main`); ``KBASE_DEBUG=1`` shows the
traceback instead. Heavy modules are imported inside commands, so ``kb --help``
never loads torch or llama.cpp.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from kbase.kb import KnowledgeBase
    from kbase.reports import Answer, FactHit


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _parse_date(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date: use YYYY-MM-DD") from None


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
    help="Database URL (postgresql://...); default: SQLite inside the folder.",
)
@click.option(
    "--llm",
    type=click.Choice(["llama-cpp", "openai", "vllm"]),
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
    type=click.Choice(["kbase", "erase-paper", "rag"]),
    default="kbase",
    show_default=True,
    help="How new documents edit stored facts.",
)
@click.option(
    "--embedder",
    type=click.Choice(["minilm", "fake"]),
    default="minilm",
    show_default=True,
    help="Embedding model.",
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
    from kbase.config import Settings
    from kbase.kb import KnowledgeBase
    from kbase.paths import kb_folder

    folder = kb_folder(opts.kb)
    if (folder / "kbase.json").exists():
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


@cli.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--id", "doc_id", default=None, help="Document id (a source with one document only).")
@click.option("--replace", is_flag=True, help="Replace a stored document that has the same id.")
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
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@json_option
@pass_options
def ingest(
    opts: Options,
    sources: tuple[str, ...],
    doc_id: str | None,
    replace: bool,
    max_bytes: int | None,
    timeout: float,
    skip_bad: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Add documents: feeds (RSS, Atom, RDF), JSONL, text, Markdown or HTML files,
    folders, http(s) URLs, or - for stdin."""
    from kbase.sources import read_source
    from kbase.sources.base import DEFAULT_MAX_BYTES

    if doc_id is not None and len(sources) != 1:
        raise click.ClickException("--id needs exactly one source")
    documents = []
    for spec in sources:  # read and check every source before storing anything
        documents += read_source(
            spec,
            doc_id=doc_id,
            max_bytes=max_bytes or DEFAULT_MAX_BYTES,
            timeout=timeout,
            skip_bad=skip_bad,
        )
    progress = _Progress(len(documents), enabled=not (quiet or as_json))
    with opts.open(create=True) as kb:
        try:
            report = kb.ingest(documents, replace=replace, progress=progress)
        finally:
            progress.done()
    if as_json:
        _emit_json(report.to_dict())
        return
    if quiet:
        return
    for doc in report.stored:
        click.echo(
            f"  {doc.doc_id}: {doc.facts_created} facts created, "
            f"{doc.facts_reinforced} reinforced, {doc.facts_retired} retired, "
            f"{doc.facts_rewritten} rewritten; {doc.llm_calls} LLM calls, "
            f"{doc.prompt_tokens} prompt tokens ({doc.cached_tokens} cached), "
            f"{doc.completion_tokens} generated, {doc.model_seconds:.1f} s"
        )
        for warning in doc.warnings:
            click.echo(f"  warning: {warning}", err=True)
    for unchanged in report.unchanged:
        click.echo(f"  {unchanged}: already stored, unchanged")
    click.echo(
        f"Stored {len(report.stored)} documents ({len(report.unchanged)} unchanged) in "
        f"{report.seconds:.1f} s; LLM: {report.llm_calls} calls ({report.model_calls} to the "
        f"model), {report.prompt_tokens} prompt tokens ({report.cached_tokens} from cache), "
        f"{report.completion_tokens} generated, {report.model_seconds:.1f} s model time."
    )


def _print_hits(hits: list[FactHit]) -> None:
    for i, hit in enumerate(hits, 1):
        c = hit.citation
        click.echo(f"[{i}] {hit.text}")
        click.echo(
            f"    fact {hit.id} · {c.doc_id} · {c.title or '(untitled)'} · "
            f"{c.published or 'undated'} · score {hit.score:.3f}" + (f" · {c.url}" if c.url else "")
        )


def _print_answer(answer: Answer) -> None:
    marks = "".join(f"[{i}]" for i in range(1, len(answer.citations) + 1))
    click.echo(f"{answer.answer} {marks}".rstrip())
    if answer.citations:
        click.echo("\nSources:")
        for i, c in enumerate(answer.citations, 1):
            parts = [c.doc_id, c.title or "(untitled)", c.published or "undated"]
            if c.url:
                parts.append(c.url)
            click.echo(f"  [{i}] " + " · ".join(parts))


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
        _print_answer(answer)


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
    elif hits:
        _print_hits(hits)
    else:
        click.echo("No facts found.")


@cli.group()
def docs() -> None:
    """List and show stored documents."""


ACCOUNTING = (
    "doc_id",
    "llm_calls",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
    "model_seconds",
)


def _doc_summary(d: Any) -> dict[str, Any]:
    return {
        "doc_id": d.doc_id,
        "seq": d.seq,
        "title": d.title,
        "url": d.url,
        "published": d.published.date().isoformat() if d.published else None,
        "source": d.source,
        "llm_calls": d.llm_calls,
        "prompt_tokens": d.prompt_tokens,
        "cached_tokens": d.cached_tokens,
        "completion_tokens": d.completion_tokens,
        "model_seconds": round(d.model_seconds, 3),
    }


@docs.command("list")
@json_option
@pass_options
def docs_list(opts: Options, as_json: bool) -> None:
    """List documents in ingest order."""
    from sqlalchemy import select

    from kbase.store.models import Document

    with opts.open() as kb:
        rows = kb.read(
            lambda s: [_doc_summary(d) for d in s.scalars(select(Document).order_by(Document.seq))]
        )
    if as_json:
        _emit_json(rows)
        return
    if not rows:
        click.echo("No documents yet: add some with `kb ingest`.")
    for r in rows:
        click.echo(
            f"{r['seq']:>5}  {r['doc_id']}  {r['published'] or 'undated'}  "
            f"{r['title'] or '(untitled)'}"
        )


@docs.command("show")
@click.argument("doc_id")
@json_option
@pass_options
def docs_show(opts: Options, doc_id: str, as_json: bool) -> None:
    """Show a document, its accounting and the edits it caused."""
    from kbase.store import queries

    def load(session: Any) -> dict[str, Any]:
        doc = queries.document(session, doc_id)
        return {
            **_doc_summary(doc),
            "text": doc.text,
            "edits": queries.document_edits(session, doc),
        }

    with opts.open() as kb:
        data = kb.read(load)
    if as_json:
        _emit_json(data)
        return
    click.echo(
        f"{data['doc_id']} (#{data['seq']}) · {data['title'] or '(untitled)'} · "
        f"{data['published'] or 'undated'}" + (f" · {data['url']}" if data["url"] else "")
    )
    click.echo(f"source: {data['source']}")
    click.echo(
        f"LLM: {data['llm_calls']} calls, {data['prompt_tokens']} prompt tokens "
        f"({data['cached_tokens']} from cache), {data['completion_tokens']} generated, "
        f"{data['model_seconds']} s"
    )
    click.echo("\n" + data["text"] + "\n")
    click.echo("Edits:" if data["edits"] else "Edits: none")
    for e in data["edits"]:
        click.echo(f"  {e['relation']:<10} fact {e['fact_id']}: {e['text']}")


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
    from kbase.store import queries

    with opts.open() as kb:
        rows = kb.read(
            lambda s: queries.facts(s, include_closed=include_closed, limit=limit, doc_id=doc_id)
        )
    if as_json:
        _emit_json(rows)
        return
    for r in rows:
        status = "" if r["current"] else f"  ({r['close_reason']})"
        click.echo(f"{r['id']:>6}  {r['text']}  [{r['doc_id']}]{status}")


@cli.command()
@click.argument("fact_id", type=int)
@json_option
@pass_options
def history(opts: Options, fact_id: int, as_json: bool) -> None:
    """Show every version of a fact and the documents behind each."""
    from kbase.store import queries

    with opts.open() as kb:
        versions = kb.read(lambda s: queries.history(s, fact_id))
    if as_json:
        _emit_json(versions)
        return
    for v in versions:
        start = v["valid_from"]
        end = v["valid_until"]
        until = (
            f"until {end['published'] or 'undated'} ({v['close_reason']} by {v['closed_by']})"
            if end
            else "current"
        )
        click.echo(f"fact {v['id']}: {v['text']}")
        click.echo(f"    from {start['published'] or 'undated'} ({v['created_by']}), {until}")
        for e in v["evidence"]:
            click.echo(f"    {e['relation']:<10} {e['doc_id']} ({e['published'] or 'undated'})")


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
    from sqlalchemy import select

    from kbase.store import queries
    from kbase.store.models import Document

    with opts.open() as kb:
        data = kb.read(queries.stats)
        data["index_vectors"] = kb.index_size()
        data["strategy"] = kb.settings.strategy
        data["llm"] = kb.settings.llm
        if per_document:
            data["per_document"] = kb.read(
                lambda s: [
                    {k: _doc_summary(d)[k] for k in ACCOUNTING}
                    for d in s.scalars(select(Document).order_by(Document.seq))
                ]
            )
    if as_json:
        _emit_json(data)
        return
    for key, value in data.items():
        if key != "per_document":
            click.echo(f"{key.replace('_', ' ')}: {value}")
    for r in data.get("per_document", []):
        click.echo(
            f"  {r['doc_id']}: {r['llm_calls']} calls, {r['prompt_tokens']} prompt tokens "
            f"({r['cached_tokens']} cached), {r['completion_tokens']} generated, "
            f"{r['model_seconds']} s"
        )


@cli.command()
@click.argument("doc_ids", nargs=-1, required=True)
@click.option(
    "--missing-ok",
    is_flag=True,
    help="Report ids that are not stored instead of failing (re-running an interrupted forget).",
)
@json_option
@pass_options
def forget(opts: Options, doc_ids: tuple[str, ...], missing_ok: bool, as_json: bool) -> None:
    """Forget documents exactly, as if they had never been ingested."""
    with opts.open() as kb:
        report = kb.forget(list(doc_ids), missing_ok=missing_ok)
    if as_json:
        _emit_json(report.to_dict())
        return
    for doc_id in report.missing:
        click.echo(f"{doc_id}: not stored, nothing to do")
    if not report.forgotten:
        return
    click.echo(
        f"Forgot {', '.join(report.forgotten)}: {report.documents_replayed} later documents "
        f"replayed ({report.replayed_calls} answers from the record, {report.model_calls} model "
        f"calls), {report.facts_removed} facts removed, {report.facts_restored} restored, "
        f"few-shot selection {'changed' if report.fewshot_changed else 'unchanged'}, "
        f"{report.seconds:.2f} s."
    )


def _print_curation(report: Any, as_json: bool) -> None:
    if as_json:
        _emit_json(report.to_dict())
        return
    changes = [
        f"added {', '.join(report.added)}" if report.added else "",
        f"removed {', '.join(report.removed)}" if report.removed else "",
    ]
    click.echo("; ".join(c for c in changes if c) or "No change.")
    if report.selection_changed:
        click.echo(
            f"The selected examples changed: {report.documents_replayed} documents "
            f"replayed, {report.model_calls} model calls, {report.seconds:.2f} s."
        )
    else:
        click.echo("The selected examples did not change; nothing was replayed.")


@cli.group()
def examples() -> None:
    """The few-shot example pool the prompts' examples are selected from."""


@examples.command("list")
@json_option
@pass_options
def examples_list(opts: Options, as_json: bool) -> None:
    """List built-in, user and correction examples, and which are selected."""
    from kbase import curation

    with opts.open() as kb:
        rows = curation.listing(kb)
    if as_json:
        _emit_json(rows)
        return
    for r in rows:
        mark = "*" if r["selected"] else " "
        tied = f"  (from {', '.join(r['documents'])})" if r["documents"] else ""
        click.echo(f"{mark} {r['task']:<8} {r['id']}  [{r['origin']}]{tied}")
    click.echo("(* selected: shown in prompts now)")


@examples.command("add")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@json_option
@pass_options
def examples_add(opts: Options, path: Path, as_json: bool) -> None:
    """Add examples from a JSONL file (see docs/design.md for the record forms)."""
    from kbase import curation

    records = curation.read_examples(path)
    with opts.open() as kb:
        _print_curation(curation.add(kb, records), as_json)


@examples.command("rm")
@click.argument("example_ids", nargs=-1, required=True)
@json_option
@pass_options
def examples_rm(opts: Options, example_ids: tuple[str, ...], as_json: bool) -> None:
    """Remove user or correction examples; the selection is updated exactly."""
    from kbase import curation

    with opts.open() as kb:
        _print_curation(curation.remove(kb, list(example_ids)), as_json)


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
    from kbase import curation

    with opts.open() as kb:
        report = curation.correct(kb, fact_id, should_be_true=should_be == "true", doc_id=doc_id)
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
    from kbase.verify import verify_deep, verify_index

    with opts.open() as kb:
        kb.index_size()  # catch the index up from SQL first, as every command does
        problems = verify_index(kb)
        if deep:
            problems += verify_deep(kb)
    if as_json:
        _emit_json({"ok": not problems, "problems": problems})
    else:
        for problem in problems:
            click.echo(f"problem: {problem}")
        click.echo(
            "OK: the store is consistent." if not problems else f"{len(problems)} problems found."
        )
    if problems:
        sys.exit(1)


def _one_line(text: str) -> str:
    """Messages can quote user input (a path with a newline, a list of choices)."""
    return " ".join(text.split())


def main() -> None:
    """Entry point: run the CLI, turning kbase errors into one-line messages."""
    from kbase.errors import KbaseError

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
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        click.echo(
            f"Error: unexpected {type(exc).__name__}: {first} "
            "(set KBASE_DEBUG=1 for the traceback and report it)",
            err=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
