"""Question answering over a dated news stream, every strategy in one process.

For each strategy (same models, same data): a fresh knowledge base ingests the
documents in date order (whatever their order in the file); each question is
answered with ``kb.choose(..., allow_unknown=True)`` as of its date, just before the
first document published after that date is ingested, so the model may answer
that the facts do not say. Reported: accuracy overall, per time of asking, on
questions whose answer changed and on those whose answer did not, on answerable
and on unanswerable ones (gold "unknown": right only if it abstains), and how
often it abstains on answerable ones; for the strategies of ``--abstention-cost``
the answerable questions are also asked without abstention, at the same moment,
to show what abstaining costs them. With ``--changes``, the statements the stream
made false that a fact current at its end still states (:mod:`benchmarks.qa_scores`).
Per document: the LLM calls, prompt, cached, computed (prompt - cached +
completion) and completion tokens and wall time.

Each strategy starts on a freshly loaded LLM, as a new process would: its first
document also computes the instructions and examples that every later prompt
reuses from the cache. That one-time cost is reported apart ("first document");
the per-document figures and ratios are over the documents after the first, the
cost of one more document in a running stream.

``--parallel`` runs the strategies in worker processes of the same run, one per
usable CPU and each pinned to its CPU (llama.cpp gains only about 1.1x from a
second thread here, so two one-core workers finish a long stream in little more
than half the time); every strategy then has one core, the same data and the same
code, and the report says so. Each worker saves its strategies' results as it
finishes them (``<json stem>.<group>.partial.json``); ``--from-partials``, with the
run's other arguments, reports those of a run that was stopped.

    python -m benchmarks.synth --out benchmarks/data/synth
    KBASE_CACHE=/tmp/kbcache python -m benchmarks.qa --docs benchmarks/data/synth/documents.jsonl \\
        --questions benchmarks/data/synth/questions.jsonl --json benchmarks/results/qa.json
    KBASE_CACHE=/tmp/kbcache python -m benchmarks.qa \\
        --docs benchmarks/data/realistic/documents.jsonl \\
        --questions benchmarks/data/realistic/questions.jsonl \\
        --changes benchmarks/data/realistic/changes.jsonl \\
        --json benchmarks/results/qa-realistic.json --markdown docs/benchmarks.md \\
        --section qa-realistic
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from benchmarks import qa_scores, report
from benchmarks.models import Models, load_models
from kbase.kb import KnowledgeBase
from kbase.ops import questions as answering
from kbase.pipeline.strategies import STRATEGIES
from kbase.sources.base import SourceDocument
from kbase.store.models import Document, LLMRecord

TOKENS = ("llm_calls", "prompt_tokens", "cached_tokens", "computed_tokens", "completion_tokens")
PER_DOC = (*TOKENS, "model_seconds", "wall_seconds")
#: The per-document means that the report and the ratios use: one more document in a
#: running stream, without the first document's one-time cost.
STEADY = "per_document_mean_after_first"


def load_stream(
    docs_path: Path, questions_path: Path, limit_docs: int | None = None
) -> tuple[list[SourceDocument], list[dict[str, Any]]]:
    """Documents in date order and questions in order of asking. With ``limit_docs``,
    only the first documents, and only the questions asked before the next one."""
    rows = [json.loads(line) for line in docs_path.read_text().splitlines() if line.strip()]
    docs = sorted(
        (
            SourceDocument(
                doc_id=r["id"],
                text=r["text"],
                source=str(docs_path),
                title=r.get("title"),
                url=r.get("url"),
                published=datetime.fromisoformat(r["published"]),
            )
            for r in rows
        ),
        key=lambda d: d.published or datetime.min,
    )
    lines = questions_path.read_text().splitlines()
    questions = sorted((json.loads(x) for x in lines if x.strip()), key=lambda q: q["asked_at"])
    if limit_docs is not None and limit_docs < len(docs):
        cut = docs[limit_docs].published
        docs = docs[:limit_docs]
        questions = [q for q in questions if cut and date.fromisoformat(q["asked_at"]) < cut.date()]
    return docs, questions


#: Which strategies ``--abstention-cost`` asks the answerable questions again, without
#: abstention.
ABSTENTION_COST = {"kbase": ("kbase",), "all": tuple(STRATEGIES), "none": ()}


def _ask(kb: KnowledgeBase, q: dict[str, Any], *, allow_unknown: bool) -> dict[str, Any]:
    started = time.perf_counter()
    found = answering.choice(
        kb.runtime,
        q["question"],
        q["choices"],
        kb.settings.answer_k,
        date.fromisoformat(q["asked_at"]),
        allow_unknown=allow_unknown,
    )
    chosen = None if found.index is None else q["choices"][found.index]
    return {
        "id": q["id"],
        "asked_at": q["asked_at"],
        "changed": bool(q.get("changed", False)),
        "unknown": qa_scores.is_unknown(q),
        "chosen": chosen,
        "abstained": chosen is None,
        "correct": qa_scores.is_correct(q, chosen),
        "why": found.reason,
        "letter_probabilities": _probabilities(found.scores),
        "seconds": round(time.perf_counter() - started, 3),
    }


def _probabilities(scores: dict[str, float]) -> dict[str, float]:
    """Letter log-probabilities as probabilities over the letters, for reading why a
    question was answered as it was."""
    if not scores:
        return {}
    top = max(scores.values())
    weights = {letter: math.exp(v - top) for letter, v in scores.items()}
    total = sum(weights.values())
    return {letter: round(w / total, 4) for letter, w in weights.items()}


def run_strategy(
    models: Models,
    strategy: str,
    docs: list[SourceDocument],
    questions: list[dict[str, Any]],
    folder: Path,
    *,
    changes: list[dict[str, Any]] | None = None,
    abstention_cost: bool = False,
) -> dict[str, Any]:
    """Ingest the stream with one strategy, answering each question on time (with
    ``abstention_cost``, the answerable ones a second time without abstention); with
    ``changes``, which of them the facts current at the end still state."""
    kb = models.open(folder, strategy)
    pending = list(questions)
    answers: list[dict[str, Any]] = []
    plain: list[dict[str, Any]] = []

    def ask(q: dict[str, Any]) -> None:
        answers.append(_ask(kb, q, allow_unknown=True))
        if abstention_cost and not qa_scores.is_unknown(q):
            plain.append(_ask(kb, q, allow_unknown=False))

    walls: list[float] = []
    stored = []
    try:
        for n, doc in enumerate(docs, 1):
            day = doc.published.date() if doc.published else date.max
            while pending and date.fromisoformat(pending[0]["asked_at"]) < day:
                ask(pending.pop(0))
            started = time.perf_counter()
            stored += kb.ingest([doc]).stored
            walls.append(time.perf_counter() - started)
            print(f"{strategy}: document {n}/{len(docs)} in {walls[-1]:.1f} s", file=sys.stderr)
        for q in pending:
            ask(q)
        current = [f.text for f in kb.facts()] if changes is not None else []
        rows = kb.runtime.read(lambda s: list(s.scalars(select(Document).order_by(Document.seq))))
        by_task = kb.runtime.read(
            lambda s: {
                task: {
                    "requests": n,
                    "prompt_tokens": p,
                    "cached_tokens": k,
                    "computed_tokens": p - k + c,
                    "completion_tokens": c,
                    "model_seconds": round(t, 3),
                }
                for task, n, p, k, c, t in s.execute(
                    select(
                        LLMRecord.task,
                        func.count(),
                        func.sum(LLMRecord.prompt_tokens),
                        func.sum(LLMRecord.cached_tokens),
                        func.sum(LLMRecord.completion_tokens),
                        func.sum(LLMRecord.seconds),
                    ).group_by(LLMRecord.task)
                )
            }
        )
    finally:
        kb.close()
    per_doc = []
    for row, wall, rep in zip(rows, walls, stored, strict=True):
        per_doc.append(
            {
                "doc_id": row.doc_id,
                "llm_calls": row.llm_calls,
                "prompt_tokens": row.prompt_tokens,
                "cached_tokens": row.cached_tokens,
                "computed_tokens": row.prompt_tokens - row.cached_tokens + row.completion_tokens,
                "completion_tokens": row.completion_tokens,
                "model_seconds": round(row.model_seconds, 3),
                "wall_seconds": round(wall, 3),
                "facts_created": rep.facts_created,
                "facts_rewritten": rep.facts_rewritten,
                "facts_retired": rep.facts_retired,
            }
        )
    stale = None if changes is None else qa_scores.stale_report(changes, current)
    n = max(len(per_doc), 1)
    return {
        **qa_scores.summary(answers, plain if abstention_cost else None),
        "stale": stale,
        "stale_rate": stale["rate"] if stale else None,
        "documents": len(per_doc),
        "per_document_mean": _mean(per_doc),
        "per_document_mean_after_first": _mean(per_doc[1:]),
        "first_document": _mean(per_doc[:1]),
        "facts": {
            k: sum(d[k] for d in per_doc)
            for k in ("facts_created", "facts_rewritten", "facts_retired")
        },
        "question_seconds_mean": round(
            sum(a["seconds"] for a in answers) / max(len(answers), 1), 3
        ),
        "recorded_requests_by_task": by_task,
        "editing_per_document_mean": _editing(by_task, n),
        "per_document": per_doc,
        "answers": answers,
        "answers_no_abstention": plain if abstention_cost else None,
    }


def _mean(per_doc: list[dict[str, Any]]) -> dict[str, float]:
    n = max(len(per_doc), 1)
    return {k: round(sum(d[k] for d in per_doc) / n, 3) for k in PER_DOC}


#: Tasks that are not editing: extraction (the same for every strategy) and questions.
NOT_EDITING = ("extract", "choice", "answer")


def _editing(by_task: dict[str, dict[str, Any]], documents: int) -> dict[str, float]:
    """Per document, what the editing tasks (verdicts and rewrites) cost."""
    editing = [v for task, v in by_task.items() if task not in NOT_EDITING]
    keys = ("requests", "prompt_tokens", "computed_tokens", "completion_tokens", "model_seconds")
    return {k: round(sum(v[k] for v in editing) / documents, 3) for k in keys}


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def comparison(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per-document cost ratios (documents after the first) and accuracy differences
    between strategies."""
    out: dict[str, Any] = {}
    for num, den in (("kbase", "erase-paper"), ("erase-paper", "rag"), ("kbase", "rag")):
        if num in results and den in results:
            a, b = results[num], results[den]
            out[f"{num} / {den} per document"] = {
                k: _ratio(a[STEADY][k], b[STEADY][k]) for k in PER_DOC
            }
            out[f"{num} / {den} editing per document"] = {
                k: _ratio(a["editing_per_document_mean"][k], b["editing_per_document_mean"][k])
                for k in a["editing_per_document_mean"]
            }
            out[f"{num} - {den} accuracy"] = {
                k: None if a[k] is None or b[k] is None else round(a[k] - b[k], 4)
                for k in DIFFERENCES
            }
    return out


#: The accuracies (and the stale rate) whose differences between strategies are
#: reported.
DIFFERENCES = (
    "accuracy",
    "accuracy_changed",
    "accuracy_unchanged",
    "accuracy_answerable",
    "accuracy_unanswerable",
    "stale_rate",
)


def _stale_cell(r: dict[str, Any]) -> str:
    stale = r.get("stale")
    if not stale:
        return ""
    return f"{stale['still_current']}/{stale['changes']} ({stale['rate']:.3f})"


def _accuracy_tables(res: dict[str, dict[str, Any]]) -> list[str]:
    heads = ["strategy", "accuracy", "changed", "unchanged", "answerable", "unanswerable"]
    heads += ["abstained on answerable", "stale facts still current"]
    rows = [
        [
            name,
            r["accuracy"],
            r["accuracy_changed"],
            r["accuracy_unchanged"],
            r["accuracy_answerable"],
            r["accuracy_unanswerable"],
            r["abstention_rate_answerable"],
            _stale_cell(r),
        ]
        for name, r in res.items()
    ]
    out = [
        "Accuracy with abstention allowed (`unanswerable`: the share answered "
        '"unknown"; `changed` and `unchanged` are the answerable questions whose '
        "answer did or did not change):",
        "",
        report.table(heads, rows),
    ]
    costs = [(n, r) for n, r in res.items() if r.get("no_abstention")]
    if costs:
        out += [
            "",
            "What abstention costs the answerable questions (the same questions asked "
            "again at the same moment without the unknown choice):",
            "",
            report.table(
                [
                    "strategy",
                    "answerable, no abstention",
                    "answerable, with abstention",
                    "changed, no abstention",
                    "changed, with abstention",
                    "cost (points)",
                ],
                [
                    [
                        n,
                        r["no_abstention"]["accuracy_answerable"],
                        r["accuracy_answerable"],
                        r["no_abstention"]["accuracy_changed"],
                        r["accuracy_changed"],
                        None
                        if r["no_abstention"]["abstention_cost"] is None
                        else round(100 * r["no_abstention"]["abstention_cost"], 1),
                    ]
                    for n, r in costs
                ],
            ),
        ]
    return out


def markdown(data: dict[str, Any], title: str) -> str:
    """A Markdown report: accuracy and cost per strategy, per step, and the ratios."""
    res = data["strategies"]
    heads = ["strategy", "LLM calls/doc", "prompt tok/doc", "cached tok/doc"]
    heads += [
        "computed tok/doc",
        "completion tok/doc",
        "model s/doc",
        "wall s/doc",
        "first doc computed tok",
    ]
    rows = [
        [name, *[r[STEADY][k] for k in PER_DOC], r["first_document"]["computed_tokens"]]
        for name, r in res.items()
    ]
    steps = sorted({s for r in res.values() for s in r["accuracy_by_step"]})
    step_rows = [[n, *[r["accuracy_by_step"].get(s) for s in steps]] for n, r in res.items()]
    d = data["data"]
    out = [
        f"## {title}",
        "",
        f"Machine: {report.describe(data['machine'])}.",
        f"Models: {data['models']['embedder']}, {data['models']['llm']}.",
        *(
            [
                "Workers (`--parallel`): "
                + "; ".join(f"CPU {w['cpu']}: {', '.join(w['strategies'])}" for w in par)
                + ". Each strategy ran on one core, beside the other worker."
            ]
            if (par := data.get("parallel"))
            else []
        ),
        *(
            [
                f"Not finished: {', '.join(unfinished)}. The run was stopped; this report "
                "gives the strategies its workers had saved (`--from-partials`)."
            ]
            if (unfinished := data.get("unfinished"))
            else []
        ),
        f"Data: {d['documents']} documents, {d['questions']} questions "
        f"({d['changed']} whose answer changed, {d.get('unanswerable', 0)} unanswerable)"
        + (f", {d['changes']} changes" if d.get("changes") is not None else "")
        + f", `{d['docs']}`.",
        "",
        f"    {data['command']}",
        "",
        *(
            [
                "The fake LLM answers from the top retrieved fact only and counts words as "
                "tokens: these numbers show that the harness runs end to end, nothing about "
                "the quality or the speed of the real models.",
                "",
            ]
            if data["models"].get("fake")
            else []
        ),
        *_accuracy_tables(res),
        "",
        "Cost per document: the mean over the documents after the first. Each strategy "
        "starts on a freshly loaded model, so its first document also computes the "
        "instructions and examples that later prompts take from the cache (last column).",
        "",
        report.table(heads, rows),
        "",
        "Accuracy by date of asking:",
        "",
        report.table(["strategy", *steps], step_rows),
    ]
    tasks = sorted({t for r in res.values() for t in r["recorded_requests_by_task"]})
    task_rows = [
        [
            n,
            *[
                r["recorded_requests_by_task"].get(t, {}).get("computed_tokens", 0) / r["documents"]
                for t in tasks
            ],
        ]
        for n, r in res.items()
    ]
    out += [
        "",
        "Computed tokens per document by task, over all documents, the first included "
        "(extraction is the same work for every strategy; `choice` is the questions):",
        "",
        report.table(["strategy", *tasks], task_rows),
    ]
    comp = data["comparison"]
    ratios = [
        [k.removesuffix(" per document"), *v.values()]
        for k, v in comp.items()
        if "/" in k and "editing" not in k
    ]
    editing = [
        [k.removesuffix(" editing per document"), *v.values()]
        for k, v in comp.items()
        if "editing" in k
    ]
    diffs = [[k.removesuffix(" accuracy"), *v.values()] for k, v in comp.items() if " - " in k]
    if ratios:
        out += [
            "",
            "Cost ratios per document (after the first):",
            "",
            report.table(["ratio", *heads[1:-1]], ratios),
        ]
        edit_heads = ["ratio", "requests", "prompt tok", "computed tok", "completion tok"]
        out += [
            "",
            "Cost ratios of the editing alone (verdicts and rewrites, per document):",
            "",
            report.table([*edit_heads, "model s"], editing),
        ]
        diff_heads = ["difference", "accuracy", "changed", "unchanged", "answerable"]
        out += [
            "",
            "Accuracy differences (with abstention allowed):",
            "",
            report.table([*diff_heads, "unanswerable", "stale rate"], diffs),
        ]
    return "\n".join(out)


#: Rough relative cost of a strategy on the real model, to balance --parallel workers.
RELATIVE_COST = {"erase-paper": 3.0, "kbase": 1.5, "rag": 1.0}


def worker_groups(strategies: list[str], workers: int) -> list[list[str]]:
    """The strategies split over ``workers`` groups, longest first into the least
    loaded group, each group in the given order."""
    groups: list[list[str]] = [[] for _ in range(max(1, min(workers, len(strategies))))]
    loads = [0.0] * len(groups)
    for s in sorted(strategies, key=lambda s: -RELATIVE_COST.get(s, 1.0)):
        i = loads.index(min(loads))
        groups[i].append(s)
        loads[i] += RELATIVE_COST.get(s, 1.0)
    return [sorted(g, key=strategies.index) for g in groups if g]


def _run_strategies(
    models: Models,
    group: list[str],
    args: argparse.Namespace,
    docs: list[SourceDocument],
    questions: list[dict[str, Any]],
    tmp: str,
    partial: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """``group``'s strategies in order on ``models``, each on a freshly loaded LLM,
    saving what is done after each (a long run keeps what it has)."""
    changes = qa_scores.load_changes(args.changes) if args.changes else None
    results: dict[str, dict[str, Any]] = {}
    for i, strategy in enumerate(group):
        if i:
            models.restart_llm()
        results[strategy] = run_strategy(
            models,
            strategy,
            docs,
            questions,
            Path(tmp) / strategy,
            changes=changes,
            abstention_cost=strategy in ABSTENTION_COST[args.abstention_cost],
        )
        name = f"{args.json.stem}.{'-'.join(group)}.partial.json"
        report.write_json(args.json.with_name(name), {**partial, "strategies": results})
    return results


def _run_worker(
    cpu: int, group: list[str], args: argparse.Namespace, tmp: str
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """A --parallel worker, pinned to ``cpu``: its own models, its strategies."""
    os.sched_setaffinity(0, {cpu})
    docs, questions = load_stream(args.docs, args.questions, args.limit_docs)
    models = load_models(fake=args.fake)
    try:
        names = _model_names(models, args.fake)
        return names, _run_strategies(
            models, group, args, docs, questions, tmp, {"cpu": cpu, "models": names}
        )
    finally:
        models.close()


def _saved_partials(
    path: Path, strategies: list[str], data: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """The strategies a --parallel run saved beside ``path`` (its workers' partial
    files), in ``strategies``' order; the rest are listed in ``data["unfinished"]``."""
    saved: dict[str, dict[str, Any]] = {}
    for part in sorted(path.parent.glob(f"{path.stem}.*.partial.json")):
        loaded = json.loads(part.read_text())
        saved.update(loaded["strategies"])
        data["models"] = loaded.get("models", {"embedder": "not saved", "llm": "not saved"})
    data["unfinished"] = [s for s in strategies if s not in saved]
    return {s: saved[s] for s in strategies if s in saved}


def _model_names(models: Models, fake: bool) -> dict[str, Any]:
    return {"embedder": models.embedder_name, "llm": models.llm_name, "fake": fake}


def _title(args: argparse.Namespace) -> str:
    if args.title:
        return str(args.title)
    if args.fake:
        return "Question answering (fake models: plumbing numbers only)"
    name = {"synth": "synthetic"}.get(args.docs.parent.name, args.docs.parent.name)
    return f"Question answering on the {name} news stream"


def main(argv: list[str] | None = None) -> None:
    """Run the strategies, write the JSON, print (and optionally save) the report."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.qa", description=__doc__)
    p.add_argument("--docs", type=Path, required=True, help="documents.jsonl")
    p.add_argument("--questions", type=Path, required=True, help="questions.jsonl")
    p.add_argument("--changes", type=Path, help="changes.jsonl: count stale facts at the end")
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument(
        "--abstention-cost",
        choices=sorted(ABSTENTION_COST),
        default="kbase",
        help="strategies that also answer without abstention (default kbase)",
    )
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--fake", action="store_true", help="fake models (plumbing only)")
    p.add_argument("--limit-docs", type=int)
    p.add_argument("--markdown", type=Path, help="also write the report into this file")
    p.add_argument("--section", help="section key in --markdown (default qa or qa-fake)")
    p.add_argument("--title", help="heading of the report (default from the data folder)")
    p.add_argument(
        "--parallel",
        action="store_true",
        help="one worker process per usable CPU, each pinned to it (see above)",
    )
    p.add_argument(
        "--from-partials",
        action="store_true",
        help="run nothing: report the strategies a stopped --parallel run saved",
    )
    args = p.parse_args(argv)
    docs, questions = load_stream(args.docs, args.questions, args.limit_docs)
    changes = qa_scores.load_changes(args.changes) if args.changes else None
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    data: dict[str, Any] = {"machine": report.machine(), "command": report.command_line()}
    data["data"] = {
        "docs": str(args.docs),
        "questions_file": str(args.questions),
        "changes_file": str(args.changes) if args.changes else None,
        "documents": len(docs),
        "questions": len(questions),
        "changed": sum(bool(q.get("changed")) for q in questions),
        "unanswerable": sum(qa_scores.is_unknown(q) for q in questions),
        "changes": len(changes) if changes is not None else None,
        "limit_docs": args.limit_docs,
        "abstention_cost": args.abstention_cost,
    }
    with tempfile.TemporaryDirectory(prefix="kbase-qa-") as tmp:
        if args.from_partials:
            results = _saved_partials(args.json, strategies, data)
        elif args.parallel:
            cpus = sorted(os.sched_getaffinity(0))
            groups = worker_groups(strategies, len(cpus))
            # spawn: each worker loads its own models in a clean process.
            pinned = list(zip(cpus, groups, strict=False))
            with multiprocessing.get_context("spawn").Pool(len(pinned)) as pool:
                runs = [pool.apply_async(_run_worker, (c, g, args, tmp)) for c, g in pinned]
                done = [run.get() for run in runs]
            merged = {k: v for _, part in done for k, v in part.items()}
            results = {s: merged[s] for s in strategies}
            data["models"] = done[0][0]
            data["parallel"] = [{"cpu": c, "strategies": g} for c, g in pinned]
        else:
            models = load_models(fake=args.fake)
            data["models"] = _model_names(models, args.fake)
            try:
                results = _run_strategies(models, strategies, args, docs, questions, tmp, data)
            finally:
                models.close()
    data["machine"]["load_average_1m_at_end"] = report.load_average()
    data["strategies"] = results
    data["comparison"] = comparison(results)
    report.write_json(args.json, data)
    text = markdown(data, _title(args))
    print(text)
    if args.markdown:
        section = args.section or ("qa-fake" if args.fake else "qa")
        report.update_section(args.markdown, section, text)


if __name__ == "__main__":
    main()
