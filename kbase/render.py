"""Results as the lines a person reads (the ``kb`` command prints these).

Each function takes a result from :mod:`kbase.reports` and returns its lines; the
accounting of LLM work is worded in one place, :func:`accounting`.
"""

from __future__ import annotations

from collections.abc import Sequence

from kbase.reports import (
    Answer,
    Citation,
    CurationReport,
    DocumentDetail,
    DocumentSummary,
    ExampleRow,
    FactHit,
    FactRow,
    FactVersion,
    FeedPoll,
    FeedRow,
    FeedsChange,
    ForgetReport,
    IngestReport,
    PollReport,
    Stats,
    VerifyReport,
)


def accounting(
    llm_calls: int,
    prompt_tokens: int,
    cached_tokens: int,
    completion_tokens: int,
    model_seconds: float,
    *,
    model_calls: int | None = None,
) -> str:
    """What some work asked of the LLM, in one line."""
    to_model = f" ({model_calls} to the model)" if model_calls is not None else ""
    return (
        f"{llm_calls} LLM calls{to_model}, {prompt_tokens} prompt tokens "
        f"({cached_tokens} cached), {completion_tokens} generated, "
        f"{model_seconds:.1f} s model time"
    )


def _doc_accounting(d: DocumentSummary) -> str:
    return accounting(
        d.llm_calls, d.prompt_tokens, d.cached_tokens, d.completion_tokens, d.model_seconds
    )


def ingest_lines(report: IngestReport) -> tuple[list[str], list[str]]:
    """The lines of an ingest: (for stdout, for stderr: the warnings)."""
    out, warnings = [], []
    for d in report.stored:
        version = f" (version {d.version})" if d.version > 1 else ""
        late = (
            f"; placed before {d.later_documents} later documents, {d.documents_replayed} replayed"
            if d.later_documents
            else ""
        )
        out.append(
            f"  {d.doc_id}{version}: {d.facts_created} facts created, "
            f"{d.facts_reinforced} reinforced, {d.facts_retired} retired, "
            f"{d.facts_rewritten} rewritten{late}; "
            + accounting(
                d.llm_calls, d.prompt_tokens, d.cached_tokens, d.completion_tokens, d.model_seconds
            )
        )
        warnings += [f"  warning: {w}" for w in d.warnings]
    out += [f"  {doc_id}: already stored, unchanged" for doc_id in report.unchanged]
    warnings += [
        f"  warning: {d.doc_id}: not stored, the model's facts did not parse for "
        f"{d.chunks_skipped} of its {d.chunks} chunks"
        for d in report.failed
    ]
    updated = f", {len(report.updated)} updated" if report.updated else ""
    updated += f", {len(report.failed)} not stored" if report.failed else ""
    replayed = (
        f", {report.documents_replayed} later documents replayed"
        if report.documents_replayed
        else ""
    )
    out.append(
        f"Stored {len(report.stored)} documents ({len(report.unchanged)} unchanged{updated}"
        f"{replayed}) in {report.seconds:.1f} s; "
        + accounting(
            report.llm_calls,
            report.prompt_tokens,
            report.cached_tokens,
            report.completion_tokens,
            report.model_seconds,
            model_calls=report.model_calls,
        )
        + "."
    )
    return out, warnings


def not_stored(report: IngestReport) -> str:
    """The error after an ingest that left documents out because the model failed."""
    ids = ", ".join(repr(d.doc_id) for d in report.failed[:5])
    more = f" and {len(report.failed) - 5} more" if len(report.failed) > 5 else ""
    n = len(report.failed)
    return (
        f"{n} document{'s' if n > 1 else ''} not stored, the model's answers did not parse: "
        f"{ids}{more}; run the ingest again to retry (check the model if it fails again)"
    )


def _source(c: Citation) -> str:
    parts = [c.doc_id, c.title or "(untitled)", c.published or "undated"]
    return " · ".join([*parts, c.url] if c.url else parts)


def hit_lines(hits: Sequence[FactHit]) -> list[str]:
    """Retrieved facts, numbered, each with its provenance and score."""
    if not hits:
        return ["No facts found."]
    out = []
    for i, hit in enumerate(hits, 1):
        c = hit.citation
        out.append(f"[{i}] {hit.text}")
        out.append(
            f"    fact {hit.id} · {c.doc_id} · {c.title or '(untitled)'} · "
            f"{c.published or 'undated'} · score {hit.score:.3f}" + (f" · {c.url}" if c.url else "")
        )
    return out


def answer_lines(answer: Answer) -> list[str]:
    """The answer with its citation marks, then the sources they point to."""
    marks = "".join(f"[{i}]" for i in range(1, len(answer.citations) + 1))
    out = [f"{answer.answer} {marks}".rstrip()]
    if answer.citations:
        out += ["", "Sources:"]
        out += [f"  [{i}] {_source(c)}" for i, c in enumerate(answer.citations, 1)]
    return out


def document_list_lines(documents: Sequence[DocumentSummary]) -> list[str]:
    """One line per document: seq, id, date, title."""
    if not documents:
        return ["No documents yet: add some with `kb ingest`."]
    return [
        f"{d.seq:>5}  {d.doc_id}  {d.published or 'undated'}  {d.title or '(untitled)'}"
        for d in documents
    ]


def document_lines(detail: DocumentDetail) -> list[str]:
    """A document's provenance, accounting, text and edits."""
    d = detail.summary
    received = f"received {detail.ingested_at}"
    if detail.version > 1:
        received += (
            f" (version {detail.version}: updated; first received {detail.first_ingested_at})"
        )
    out = [
        f"{d.doc_id} (#{d.seq}) · {d.title or '(untitled)'} · {d.published or 'undated'}"
        + (f" · {d.url}" if d.url else ""),
        f"source: {d.source}",
        received,
        "LLM: " + _doc_accounting(d),
        "",
        detail.text,
        "",
        "Edits:" if detail.edits else "Edits: none",
    ]
    out += [f"  {e.relation:<10} fact {e.fact_id}: {e.text}" for e in detail.edits]
    return out


def fact_list_lines(facts: Sequence[FactRow]) -> list[str]:
    """One line per fact version: id, text, creating document, why it closed."""
    return [
        f"{f.id:>6}  {f.text}  [{f.doc_id}]" + ("" if f.current else f"  ({f.close_reason})")
        for f in facts
    ]


def history_lines(versions: Sequence[FactVersion]) -> list[str]:
    """Each version of a fact with its interval and evidence."""
    out = []
    for v in versions:
        end = v.valid_until
        until = (
            f"until {end.published or 'undated'} ({v.close_reason} by {v.closed_by})"
            if end
            else "current"
        )
        out.append(f"fact {v.id}: {v.text}")
        out.append(f"    from {v.valid_from.published or 'undated'} ({v.created_by}), {until}")
        out += [f"    {e.relation:<10} {e.doc_id} ({e.published or 'undated'})" for e in v.evidence]
    return out


def stats_lines(stats: Stats) -> list[str]:
    """Each total on its line, then each document's accounting when asked for."""
    totals = {k: v for k, v in stats.to_dict().items() if k != "per_document"}
    out = [f"{key.replace('_', ' ')}: {value}" for key, value in totals.items()]
    out += [f"  {d.doc_id}: " + _doc_accounting(d) for d in stats.per_document or []]
    return out


def forget_lines(report: ForgetReport) -> list[str]:
    """What forgetting did, or that there was nothing to do."""
    out = [f"{doc_id}: not stored, nothing to do" for doc_id in report.missing]
    if report.forgotten:
        out.append(
            f"Forgot {', '.join(report.forgotten)}: {report.documents_replayed} later "
            f"documents replayed ({report.replayed_calls} answers from the record, "
            f"{report.model_calls} model calls), {report.facts_removed} facts removed, "
            f"{report.facts_restored} restored, few-shot selection "
            f"{'changed' if report.fewshot_changed else 'unchanged'}, {report.seconds:.2f} s."
        )
        if not report.blocked:
            out.append("Polls may bring them back (--allow-again): no record of them is kept.")
    return out


def curation_lines(report: CurationReport) -> list[str]:
    """What a change of the example pool did."""
    changes = [
        f"added {', '.join(report.added)}" if report.added else "",
        f"removed {', '.join(report.removed)}" if report.removed else "",
    ]
    out = ["; ".join(c for c in changes if c) or "No change."]
    if report.selection_changed:
        out.append(
            f"The selected examples changed: {report.documents_replayed} documents "
            f"replayed, {report.model_calls} model calls, {report.seconds:.2f} s."
        )
    else:
        out.append("The selected examples did not change; nothing was replayed.")
    return out


def example_lines(rows: Sequence[ExampleRow]) -> list[str]:
    """The pool, the selected examples starred."""
    out = []
    for r in rows:
        tied = f"  (from {', '.join(r.documents)})" if r.documents else ""
        out.append(f"{'*' if r.selected else ' '} {r.task:<8} {r.id}  [{r.origin}]{tied}")
    out.append("(* selected: shown in prompts now)")
    return out


def verify_lines(report: VerifyReport) -> list[str]:
    """Each problem found, then the verdict."""
    out = [f"problem: {p}" for p in report.problems]
    out.append(
        "OK: the store is consistent." if report.ok else f"{len(report.problems)} problems found."
    )
    return out


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def feeds_change_lines(change: FeedsChange) -> list[str]:
    """What ``feeds add`` or ``feeds rm`` changed."""
    out = [f"  subscribed: {url}" for url in change.added]
    out += [f"  already subscribed: {url}" for url in change.already]
    out += [f"  unsubscribed: {url}" for url in change.removed]
    if change.removed:
        out.append(
            f"Unsubscribed from {_plural(len(change.removed), 'feed')}; "
            "the documents they gave stay (forget them with `kb forget`)."
        )
    else:
        out.append(
            f"Subscribed to {_plural(len(change.added), 'feed')} "
            f"({len(change.already)} already subscribed); fetch them with `kb poll`."
        )
    return out


def feed_list_lines(rows: Sequence[FeedRow]) -> list[str]:
    """Each subscription: its address and title, its last fetch, its last new item,
    its errors."""
    if not rows:
        return ["No feeds: subscribe with `kb feeds add URL` or `kb feeds add --opml FILE`."]
    out = []
    for r in rows:
        out.append(r.url + (f"  ({r.title})" if r.title else ""))
        fetched = "never fetched"
        if r.last_fetch_at:
            fetched = f"last fetch {r.last_fetch_at} ({r.last_status})"
        newest = (
            f"last new item {r.last_new_at}: {r.last_new_id}" if r.last_new_id else "no items yet"
        )
        out.append(f"    {fetched} · {newest} · {_plural(r.documents, 'document')}")
        if r.error:
            failures = f" ({_plural(r.failures, 'failure')} in a row)" if r.failures else ""
            out.append(f"    error{failures}: {r.error}")
        if r.retry_at:
            out.append(f"    the server asked to wait until {r.retry_at}")
    return out


def _feed_poll_line(f: FeedPoll) -> str:
    if f.status == "not modified":
        return f"  {f.url}: not modified"
    if f.status == "waiting":
        return f"  {f.url}: waiting until {f.retry_at} (the server asked, Retry-After)"
    if f.status == "busy":
        return f"  {f.url}: skipped, another process is polling it"
    if f.status == "failed":
        retry = f" (the server asked to wait until {f.retry_at})" if f.retry_at else ""
        return f"  {f.url}: failed: {f.error}{retry}"
    parts = [f"{f.new} new", f"{f.updated} updated", f"{f.unchanged} unchanged"]
    if f.forgotten:
        parts.append(f"{f.forgotten} forgotten left out")
    if f.duplicates:
        parts.append(f"{f.duplicates} listed by another feed")
    stopped = " (stopped before the rest)" if f.status == "interrupted" else ""
    replayed = f", {f.documents_replayed} replayed" if f.documents_replayed else ""
    return (
        f"  {f.url}: {', '.join(parts)}{stopped}; {f.llm_calls} LLM calls "
        f"({f.model_calls} to the model){replayed}, {f.seconds:.1f} s"
    )


def poll_lines(report: PollReport) -> tuple[list[str], list[str]]:
    """The lines of a poll, one per feed and a total: (for stdout, for stderr: the
    failures and warnings)."""
    if not report.feeds and not report.interrupted:
        return ["No feeds: subscribe with `kb feeds add URL`."], []
    out: list[str] = []
    errors: list[str] = []
    for f in report.feeds:
        (errors if f.status == "failed" else out).append(_feed_poll_line(f))
        errors += [f"  warning: {f.url}: {w}" for w in f.warnings]
    failed = len(report.failed)
    stopped = "; stopped on request" if report.interrupted else ""
    out.append(
        f"Polled {_plural(len(report.feeds), 'feed')} in {report.seconds:.1f} s: "
        f"{report.new} new, {report.updated} updated, {failed} failed{stopped}."
    )
    return out, errors
