"""The benchmarks run end to end on the fake models, and the synthetic stream is sound."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from benchmarks import ingest_retrieval, plot_qa, qa, report, synth
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
