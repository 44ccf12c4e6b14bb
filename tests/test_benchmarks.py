"""The benchmarks run end to end on the fake models, and the synthetic stream is sound."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from benchmarks import ingest_retrieval, plot_qa, qa, qa_scores, report, synth
from benchmarks.models import load_models
from kbase import prompts


def _value_stated(docs: list[dict[str, Any]], subject: str, until: str) -> str | None:
    """The last value the documents published up to ``until`` give ``subject``."""
    pattern = re.compile(re.escape(subject) + r" is (?:the )?([^.]+)\.")
    value = None
    for doc in docs:
        if doc["published"] <= until:
            for found in pattern.findall(doc["text"]):
                value = found
    return value


@pytest.mark.parametrize("options", [{}, synth.SMALL, {"people": 7, "steps": 4}])
def test_synth_stream_is_well_formed(options: dict[str, Any]) -> None:
    docs, questions = synth.generate(seed=3, **options)
    dates = [d["published"] for d in docs]
    assert dates == sorted(dates)
    assert len({d["id"] for d in docs}) == len(docs)
    assert [q["asked_at"] for q in questions] == sorted(q["asked_at"] for q in questions)
    assert len({q["asked_at"] for q in questions}) == options.get("steps", 6)
    for q in questions:
        assert q["answer"] in q["choices"]
        assert 3 <= len(q["choices"]) <= 4
        assert len(set(q["choices"])) == len(q["choices"])
        assert _value_stated(docs, q["subject"], q["asked_at"]) == q["answer"]
        first = _value_stated(docs, q["subject"], questions[0]["asked_at"])  # end of step 0
        assert q["changed"] == (q["answer"] != first)
    assert any(q["changed"] for q in questions)
    assert not all(q["changed"] for q in questions)


def test_synth_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    assert synth.generate(seed=5) == synth.generate(seed=5)
    assert synth.generate(seed=5) != synth.generate(seed=6)
    synth.main(["--out", str(tmp_path / "a"), "--small"])
    synth.main(["--out", str(tmp_path / "b"), "--small"])
    for name in ("documents.jsonl", "questions.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_default_stream_fits_the_real_model_budget() -> None:
    docs, questions = synth.generate()
    assert 18 <= len(docs) <= 26
    assert 25 <= len(questions) <= 35
    assert max(len(d["text"].split(". ")) for d in docs) <= 4


def test_limit_docs_keeps_only_questions_answerable_from_them(tmp_path: Path) -> None:
    synth.main(["--out", str(tmp_path), "--small"])
    docs, questions = qa.load_stream(
        tmp_path / "documents.jsonl", tmp_path / "questions.jsonl", limit_docs=3
    )
    rows = [json.loads(x) for x in (tmp_path / "documents.jsonl").read_text().splitlines()]
    assert [d.doc_id for d in docs] == [r["id"] for r in rows[:3]]
    assert questions
    assert all(q["asked_at"] < rows[3]["published"] for q in questions)


def test_qa_runs_end_to_end_on_fake_models(tmp_path: Path) -> None:
    synth.main(["--out", str(tmp_path / "data"), "--small"])
    out, md = tmp_path / "qa.json", tmp_path / "bench.md"
    qa.main(
        [
            "--docs", str(tmp_path / "data" / "documents.jsonl"),
            "--questions", str(tmp_path / "data" / "questions.jsonl"),
            "--json", str(out), "--fake", "--markdown", str(md),
        ]
    )  # fmt: skip
    data = json.loads(out.read_text())
    assert set(data) >= {"machine", "command", "models", "data", "strategies", "comparison"}
    assert list(data["strategies"]) == ["rag", "erase-paper", "kbase"]
    for result in data["strategies"].values():
        assert {"accuracy", "accuracy_changed", "accuracy_unchanged", "accuracy_by_step"} <= set(
            result
        )
        assert set(result["per_document_mean"]) == set(qa.PER_DOC)
        assert set(result[qa.STEADY]) == set(result["first_document"]) == set(qa.PER_DOC)
        assert result["questions"] == data["data"]["questions"]
        assert len(result["per_document"]) == data["data"]["documents"]
    assert "kbase / erase-paper per document" in data["comparison"]
    assert data["strategies"]["rag"]["facts"]["facts_rewritten"] == 0
    # by default only kbase also answers without abstention; no changes file, no stale count
    assert [n for n, r in data["strategies"].items() if r.get("no_abstention")] == ["kbase"]
    assert all(r["stale"] is None for r in data["strategies"].values())
    assert "<!-- bench:qa-fake -->" in md.read_text()
    plot_qa.main(["--json", str(out), "--png", str(tmp_path / "qa.png")])
    assert (tmp_path / "qa.png").stat().st_size > 0


def test_a_restarted_llm_has_nothing_cached_from_the_last_run() -> None:
    models = load_models(fake=True)
    request = prompts.extract_request("Acme named Alice Chen CEO.", title=None, published=None)
    assert models.backend is not None
    models.backend.generate(request)
    assert models.backend.generate(request).cached_tokens > 0
    models.restart_llm()
    assert models.backend.generate(request).cached_tokens == 0


@pytest.mark.sqlite  # the benchmark reports the size of the SQLite file
def test_ingest_retrieval_runs_on_fake_models(tmp_path: Path) -> None:
    out, md = tmp_path / "ir.json", tmp_path / "bench.md"
    ingest_retrieval.main(
        ["--fake", "--sizes", "40,120", "--queries", "6", "--json", str(out), "--markdown", str(md)]
    )
    data = json.loads(out.read_text())
    ingest = data["ingest"]
    assert ingest["documents"] == len(ingest["per_document"]) > 0
    assert {"model_seconds", "other_seconds", "wall_seconds", "llm_calls"} <= set(
        ingest["per_document_mean"]
    )
    sizes = data["retrieval"]["sizes"]
    assert [s["facts"] for s in sizes] == [40, 120]
    for s in sizes:
        assert s["indexed"] == s["facts"]
        assert s["search_now"]["total"]["p50_ms"] >= s["search_now"]["embed"]["p50_ms"]
    assert "<!-- bench:ingest_retrieval -->" in md.read_text()


def test_update_section_replaces_only_its_own(tmp_path: Path) -> None:
    md = tmp_path / "b.md"
    report.update_section(md, "one", "first")
    report.update_section(md, "two", "second")
    report.update_section(md, "one", "again")
    text = md.read_text()
    assert "again" in text and "second" in text and "first" not in text
    assert text.count("<!-- bench:one -->") == 1


def test_committed_stream_is_the_generators_default(tmp_path: Path) -> None:
    synth.main(["--out", str(tmp_path)])
    committed = Path(__file__).parent.parent / "benchmarks" / "data" / "synth"
    for name in ("documents.jsonl", "questions.jsonl"):
        assert (committed / name).read_bytes() == (tmp_path / name).read_bytes()


REALISTIC = Path(__file__).parent.parent / "benchmarks" / "data" / "realistic"


def _rows(name: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (REALISTIC / name).read_text().splitlines() if x.strip()]


def test_realistic_stream_is_a_feed_of_enough_articles() -> None:
    docs = _rows("documents.jsonl")
    assert len(docs) >= 80
    dates = [d["published"] for d in docs]
    assert dates == sorted(dates, reverse=True)  # newest first, as a feed lists them
    assert len({d["id"] for d in docs}) == len(docs)
    assert all(d["url"].startswith("https://news.example.org/realistic/") for d in docs)
    assert sum(len(d["text"].split()) for d in docs) < 7000


def test_realistic_changes_use_their_wordings() -> None:
    docs = {d["id"]: d for d in _rows("documents.jsonl")}
    changes = _rows("changes.jsonl")
    assert len({c["wording"] for c in changes}) >= 25
    for c in changes:
        doc = docs[c["made_false_by"]]
        assert doc["published"] == c["published"]
        parts = [re.escape(p) for p in c["wording"].split(" ... ")]
        assert re.search(".+".join(parts), doc["text"], re.I), (c["id"], c["wording"])
        assert c["stale_keywords"] and c["not_if"]


def test_realistic_questions_follow_from_the_articles_published_by_then() -> None:
    docs = _rows("documents.jsonl")
    questions = _rows("questions.jsonl")
    assert len(questions) >= 120
    assert len({q["subject"] for q in questions}) >= 15
    assert 6 <= len({q["asked_at"] for q in questions}) <= 8
    assert sum(q["unknown"] for q in questions) >= 20
    for q in questions:
        assert 3 <= len(q["choices"]) <= 5 and len(set(q["choices"])) == len(q["choices"])
        assert q["unknown"] == (q["answer"] == "unknown")
        if q["unknown"]:
            assert not q["changed"]
            continue
        assert q["answer"] in q["choices"]
        assert any(d["published"] <= q["asked_at"] and q["answer"] in d["text"] for d in docs), q[
            "id"
        ]
    for q in questions:
        if q["changed"]:
            earlier = {
                p["answer"]
                for p in questions
                if p["subject"] == q["subject"]
                and p["asked_at"] < q["asked_at"]
                and not p["unknown"]
            }
            assert earlier - {q["answer"]}, q["id"]
    for subject in {q["subject"] for q in questions}:
        asked = [q for q in questions if q["subject"] == subject and not q["unknown"]]
        first = min(asked, key=lambda q: q["asked_at"])["answer"] if asked else None
        assert all(q["changed"] == (q["answer"] != first) for q in asked), subject


def test_realistic_stream_is_ingested_in_publication_order() -> None:
    docs, questions = qa.load_stream(
        REALISTIC / "documents.jsonl", REALISTIC / "questions.jsonl", limit_docs=19
    )
    rows = sorted(_rows("documents.jsonl"), key=lambda r: r["published"])
    assert [d.doc_id for d in docs] == [r["id"] for r in rows[:19]]
    assert questions and all(q["asked_at"] < rows[19]["published"] for q in questions)


def _answer(
    correct: bool, *, unknown: bool = False, changed: bool = False, abstained: bool = False
) -> dict[str, Any]:
    return {
        "asked_at": "2024-01-01",
        "correct": correct,
        "unknown": unknown,
        "changed": changed,
        "abstained": abstained,
    }


def test_abstention_is_right_only_where_the_answer_is_unknown() -> None:
    unknown = {"answer": "unknown", "choices": ["A", "B"]}
    marked = {"answer": "A", "unknown": True, "choices": ["A", "B"]}
    known = {"answer": "A", "choices": ["A", "B"]}
    assert qa_scores.is_correct(unknown, None) and qa_scores.is_correct(marked, None)
    assert not qa_scores.is_correct(unknown, "A") and not qa_scores.is_correct(marked, "A")
    assert qa_scores.is_correct(known, "A")
    assert not qa_scores.is_correct(known, None) and not qa_scores.is_correct(known, "B")


def test_summary_separates_answerable_unanswerable_and_the_cost_of_abstaining() -> None:
    answers = [
        _answer(True, unknown=True, abstained=True),
        _answer(False, unknown=True),
        _answer(True, changed=True),
        _answer(False, changed=True, abstained=True),
        _answer(True),
        _answer(False, abstained=True),
    ]
    plain = [
        _answer(True, changed=True),
        _answer(True, changed=True),
        _answer(True),
        _answer(False),
    ]
    out = qa_scores.summary(answers, plain)
    assert out["accuracy"] == 0.5
    assert out["accuracy_unanswerable"] == 0.5
    assert out["accuracy_answerable"] == 0.5
    assert out["accuracy_changed"] == out["accuracy_unchanged"] == 0.5
    assert out["abstention_rate_answerable"] == 0.5
    assert (out["answerable"], out["unanswerable"]) == (4, 2)
    assert out["no_abstention"]["accuracy_answerable"] == 0.75
    assert out["no_abstention"]["accuracy_changed"] == 1.0
    assert out["no_abstention"]["abstention_cost"] == 0.25
    assert "no_abstention" not in qa_scores.summary(answers)


def test_a_stale_fact_has_every_keyword_as_a_word_and_no_historical_one() -> None:
    reed = {"stale": "Reed runs Mossbank", "stale_keywords": ["Reed", "chief executive|CEO"]}
    reed["not_if"] = ["former", "was"]
    assert qa_scores.states("Fiona Reed is the CEO of Mossbank Brewing.", reed)
    assert qa_scores.states("FIONA REED is chief executive.", reed)
    assert not qa_scores.states("Fiona Reed was the CEO of Mossbank Brewing.", reed)
    assert not qa_scores.states("The former CEO Fiona Reed stays on the board.", reed)
    assert not qa_scores.states("Fiona Reeds is the CEO.", reed)  # words, not substrings
    assert not qa_scores.states("Omar Haddad is the CEO of Mossbank Brewing.", reed)
    price = {"stale": "1.64", "stale_keywords": ["1.64"], "not_if": []}
    assert qa_scores.states("Petrol costs 1.64.", price)
    assert not qa_scores.states("Petrol costs 1.645 euros.", price)
    facts = ["Fiona Reed is the CEO.", "Petrol costs 1.55.", "Fiona Reed was the CEO."]
    out = qa_scores.stale_report([{"id": "a", **reed}, {"id": "b", **price}], facts)
    assert (out["changes"], out["still_current"], out["rate"]) == (2, 1, 0.5)
    assert out["items"] == [
        {"id": "a", "made_false_by": None, "stale": reed["stale"], "facts": [facts[0]]}
    ]


def test_a_change_without_keywords_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "changes.jsonl"
    path.write_text(json.dumps({"id": "c1", "stale": "x", "stale_keywords": []}) + "\n")
    with pytest.raises(ValueError, match="c1"):
        qa_scores.load_changes(path)


def _tiny_stream(folder: Path) -> tuple[Path, Path, Path]:
    """A fake-world stream, written newest first: Acme's chief executive changes, and
    one question asks about a company the stream never mentions."""
    docs = [
        ("d3", "2024-03-01", "The club of Yusuf Jensen is the Cork Pilots."),
        ("d2", "2024-02-10", "The chief executive of Acme is Bruno Tanaka."),
        ("d1", "2024-01-05", "The chief executive of Acme is Alice Chen."),
    ]
    people = ["Alice Chen", "Bruno Tanaka", "Nia Quist"]
    ceo = "Who is the chief executive of Acme?"
    questions: list[dict[str, Any]] = [
        {"id": "q1", "asked_at": "2024-01-20", "question": ceo, "answer": "Alice Chen"},
        {"id": "q2", "asked_at": "2024-02-20", "question": ceo, "answer": "Bruno Tanaka"},
        {
            "id": "q3",
            "asked_at": "2024-02-20",
            "question": "Who is the general counsel of Pioneer Media?",
            "answer": "unknown",
            "unknown": True,
        },
    ]
    for q in questions:
        q["choices"] = ["Omar Quist", "Eli Iversen", "Tove Castillo"] if q["id"] == "q3" else people
        q["changed"] = q["id"] == "q2"
    change = {
        "id": "c1",
        "made_false_by": "d2",
        "stale": "Alice Chen is the chief executive of Acme",
        "stale_keywords": ["Alice Chen", "chief executive"],
        "not_if": ["was", "former"],
    }
    paths = [folder / n for n in ("documents.jsonl", "questions.jsonl", "changes.jsonl")]
    rows: list[dict[str, Any]] = [
        {"id": i, "published": d, "title": None, "text": t, "url": None} for i, d, t in docs
    ]
    for path, lines in zip(paths, [rows, questions, [change]], strict=True):
        path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return paths[0], paths[1], paths[2]


def test_qa_scores_abstention_and_stale_facts_on_fake_models(tmp_path: Path) -> None:
    docs, questions, changes = _tiny_stream(tmp_path)
    out, md = tmp_path / "qa.json", tmp_path / "bench.md"
    report.update_section(md, "qa", "the synthetic run")
    args = ["--docs", str(docs), "--questions", str(questions), "--changes", str(changes)]
    args += ["--json", str(out), "--fake", "--markdown", str(md), "--section", "qa-realistic"]
    qa.main([*args, "--abstention-cost", "all"])
    data = json.loads(out.read_text())
    assert data["data"]["unanswerable"] == 1 and data["data"]["changes"] == 1
    results = data["strategies"]
    for name, r in results.items():
        by_id = {a["id"]: a for a in r["answers"]}
        assert by_id["q3"]["chosen"] is None and by_id["q3"]["correct"], name
        assert r["accuracy_unanswerable"] == 1.0
        assert [a["id"] for a in r["answers_no_abstention"]] == ["q1", "q2"]
        assert all(a["chosen"] is not None for a in r["answers_no_abstention"])
        assert set(r["no_abstention"]) >= {"accuracy_answerable", "abstention_cost"}
    # rag only adds, so Alice Chen is still chief executive at the end; kbase edits.
    assert results["rag"]["stale"]["still_current"] == 1
    assert results["rag"]["stale"]["items"][0]["facts"] == [
        "The chief executive of Acme is Alice Chen."
    ]
    assert results["kbase"]["stale"]["still_current"] == 0
    assert results["kbase"]["stale_rate"] == 0.0
    assert data["comparison"]["kbase - rag accuracy"]["stale_rate"] == -1.0
    text = md.read_text()
    assert text.count("<!-- bench:qa-realistic -->") == 1 and "the synthetic run" in text
    assert "What abstention costs the answerable questions" in text
    assert "1/1 (1.000)" in text and "0/1 (0.000)" in text
    qa.main([*args, "--abstention-cost", "none"])
    data = json.loads(out.read_text())
    assert all(r["answers_no_abstention"] is None for r in data["strategies"].values())
    assert "no_abstention" not in data["strategies"]["kbase"]
    assert md.read_text().count("<!-- bench:qa-realistic -->") == 1
    plot_qa.main(["--json", str(out), "--png", str(tmp_path / "qa.png")])


def test_worker_groups_balance_the_strategies_over_the_cpus() -> None:
    assert qa.worker_groups(["rag", "erase-paper", "kbase"], 2) == [
        ["erase-paper"],
        ["rag", "kbase"],
    ]
    assert qa.worker_groups(["rag", "erase-paper", "kbase"], 1) == [["rag", "erase-paper", "kbase"]]
    assert qa.worker_groups(["rag", "kbase"], 8) == [["kbase"], ["rag"]]


def test_parallel_workers_give_the_answers_of_one_process(tmp_path: Path) -> None:
    docs, questions, changes = _tiny_stream(tmp_path)
    args = ["--docs", str(docs), "--questions", str(questions), "--changes", str(changes)]
    args += ["--fake", "--markdown", str(tmp_path / "bench.md")]
    qa.main([*args, "--json", str(tmp_path / "one.json")])
    qa.main([*args, "--json", str(tmp_path / "par.json"), "--parallel"])
    one, par = (json.loads((tmp_path / n).read_text()) for n in ("one.json", "par.json"))

    def without_times(result: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [(a["id"], a["chosen"], a["correct"]) for a in result["answers"]]

    assert list(par["strategies"]) == list(one["strategies"])
    for name, result in one["strategies"].items():
        assert without_times(par["strategies"][name]) == without_times(result), name
        assert par["strategies"][name]["stale"] == result["stale"], name
    assert {s for w in par["parallel"] for s in w["strategies"]} == set(one["strategies"])
    assert "Workers (`--parallel`)" in (tmp_path / "bench.md").read_text()

    # A stopped run: one worker's file is left, the report gives what it saved.
    saved, *others = sorted(tmp_path.glob("par.*.partial.json"))
    for other in others:
        other.unlink()
    kept = json.loads(saved.read_text())["strategies"]
    (tmp_path / "bench.md").write_text("")
    qa.main([*args, "--json", str(tmp_path / "par.json"), "--from-partials"])
    stopped = json.loads((tmp_path / "par.json").read_text())
    assert list(stopped["strategies"]) == [s for s in one["strategies"] if s in kept]
    assert stopped["unfinished"] == [s for s in one["strategies"] if s not in kept]
    for name in kept:
        assert stopped["strategies"][name]["answers"] == kept[name]["answers"]
    if others:
        assert "Not finished: " in (tmp_path / "bench.md").read_text()
