"""The ``kb`` command, run in-process on the fake embedder and the fake-world LLM
(registered through the real backend registry)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli import cli, main
from kbase.config import Settings
from kbase.kb import KnowledgeBase
from tests.helpers import local_server, no_proxies

FEED = """<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
<item><guid>acme-1</guid><title>Acme picks Bob</title><link>https://n.example/acme-1</link>
<pubDate>Mon, 08 Jan 2024 09:00:00 GMT</pubDate>
<description>The CEO of Acme is Bob. Acme is based in Leeds.</description></item>
<item><guid>acme-2</guid><title>Acme picks Alice</title><link>https://n.example/acme-2</link>
<pubDate>Thu, 02 May 2024 09:00:00 GMT</pubDate>
<description>The CEO of Acme is Alice.</description></item>
</channel></rss>"""


@pytest.fixture
def kb_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "kb"
    KnowledgeBase.open(folder, settings=Settings(embedder="fake", llm="fake")).close()
    return folder


@pytest.fixture
def feed(tmp_path: Path) -> Path:
    path = tmp_path / "news.xml"
    path.write_text(FEED)
    return path


def kb(kb_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--kb", str(kb_dir), *args], catch_exceptions=False)


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    """Run the real entry point (with its error handling); returns (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", ["kb", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return int(exit_info.value.code or 0), capsys.readouterr().err


def test_ingest_reports_what_it_stored_and_a_rerun_changes_nothing(
    kb_dir: Path, feed: Path
) -> None:
    first = kb(kb_dir, "ingest", str(feed))
    assert "acme-1: 2 facts created" in first.output
    assert "Stored 2 documents (0 unchanged)" in first.output
    again = kb(kb_dir, "ingest", str(feed))
    assert "acme-1: already stored, unchanged" in again.output
    assert "Stored 0 documents (2 unchanged)" in again.output


def test_ask_json_answers_with_citations_and_the_facts_used(kb_dir: Path, feed: Path) -> None:
    kb(kb_dir, "ingest", "--quiet", str(feed))
    data = json.loads(kb(kb_dir, "ask", "--json", "Who is the CEO of Acme?").output)
    assert data["answer"] == "The CEO of Acme is Alice."
    assert data["citations"] == [
        {
            "doc_id": "acme-2",
            "title": "Acme picks Alice",
            "url": "https://n.example/acme-2",
            "published": "2024-05-02",
        }
    ]
    assert {"id", "text", "doc_id"} == set(data["facts"][0])


def test_ask_prints_the_answer_and_a_numbered_source_list(kb_dir: Path, feed: Path) -> None:
    kb(kb_dir, "ingest", "-q", str(feed))
    out = kb(kb_dir, "ask", "Who is the CEO of Acme?").output
    assert out.startswith("The CEO of Acme is Alice. [1]")
    assert "[1] acme-2 · Acme picks Alice · 2024-05-02 · https://n.example/acme-2" in out


def test_ask_as_of_a_past_date_uses_the_facts_valid_then(kb_dir: Path, feed: Path) -> None:
    kb(kb_dir, "ingest", "-q", str(feed))
    data = json.loads(kb(kb_dir, "ask", "--json", "--as-of", "2024-02-01", "CEO of Acme?").output)
    assert data["answer"] == "The CEO of Acme is Bob."
    assert [c["doc_id"] for c in data["citations"]] == ["acme-1"]


def test_search_history_docs_facts_and_stats(kb_dir: Path, feed: Path) -> None:
    kb(kb_dir, "ingest", "-q", str(feed))
    hits = json.loads(kb(kb_dir, "search", "--json", "--k", "1", "CEO of Acme").output)["facts"]
    assert hits[0]["text"] == "The CEO of Acme is Alice." and hits[0]["doc_id"] == "acme-2"
    versions = json.loads(kb(kb_dir, "history", "--json", str(hits[0]["id"])).output)
    assert [v["text"] for v in versions] == ["The CEO of Acme is Bob.", "The CEO of Acme is Alice."]
    assert versions[0]["closed_by"] == "acme-2" and versions[0]["close_reason"] == "rewritten"
    listed = json.loads(kb(kb_dir, "docs", "list", "--json").output)
    assert [d["doc_id"] for d in listed] == ["acme-1", "acme-2"]
    shown = json.loads(kb(kb_dir, "docs", "show", "--json", "acme-2").output)
    assert {e["relation"] for e in shown["edits"]} == {"rewritten", "created"}
    current = json.loads(kb(kb_dir, "facts", "list", "--json").output)
    every = json.loads(kb(kb_dir, "facts", "list", "--all", "--json").output)
    assert len(every) == len(current) + 1
    stats = json.loads(kb(kb_dir, "stats", "--json").output)
    assert stats["documents"] == 2 and stats["facts_closed"] == 1
    assert stats["index_vectors"] == len(every)


def test_forget_restores_what_the_document_changed(kb_dir: Path, feed: Path) -> None:
    kb(kb_dir, "ingest", "-q", str(feed))
    report = json.loads(kb(kb_dir, "forget", "--json", "acme-2").output)
    assert report["forgotten"] == ["acme-2"] and report["facts_restored"] == 1
    data = json.loads(kb(kb_dir, "ask", "--json", "Who is the CEO of Acme?").output)
    assert data["answer"] == "The CEO of Acme is Bob."


def test_forget_missing_ok_reports_ids_not_stored_and_succeeds(
    kb_dir: Path, feed: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kb(kb_dir, "ingest", "-q", str(feed))
    code, err = run_main(monkeypatch, capsys, "--kb", str(kb_dir), "forget", "acme-2", "nope")
    assert code == 1 and "no document with id 'nope'" in err
    listed = json.loads(kb(kb_dir, "docs", "list", "--json").output)
    assert [d["doc_id"] for d in listed] == ["acme-1", "acme-2"]  # a typo changes nothing
    first = kb(kb_dir, "forget", "--missing-ok", "acme-2", "nope")
    assert first.exit_code == 0
    assert first.output.splitlines()[0] == "nope: not stored, nothing to do"
    assert first.output.splitlines()[1].startswith("Forgot acme-2: ")
    # Re-running a forget that was interrupted after its commit finishes without error.
    monkeypatch.setattr(
        sys, "argv", ["kb", "--kb", str(kb_dir), "forget", "--missing-ok", "acme-2"]
    )
    main()  # returns: exit code 0
    out, err = capsys.readouterr()
    assert (out, err) == ("acme-2: not stored, nothing to do\n", "")
    again = kb(kb_dir, "forget", "--missing-ok", "--json", "acme-2")
    report = json.loads(again.output)
    assert report["forgotten"] == [] and report["missing"] == ["acme-2"]
    assert report["documents_replayed"] == 0 and report["facts_removed"] == 0
    assert kb(kb_dir, "verify").exit_code == 0
    listed = json.loads(kb(kb_dir, "docs", "list", "--json").output)
    assert [d["doc_id"] for d in listed] == ["acme-1"]


def test_errors_are_one_line_and_exit_non_zero(
    kb_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    binary = tmp_path / "x.txt"
    binary.write_bytes(b"\x00\x01\x02binary")
    cases = [
        (["ingest", str(tmp_path / "missing.xml")], "missing.xml"),
        (["ingest", str(binary)], "binary"),
        (["forget", "nope"], "no document with id 'nope'"),
        (["history", "999"], "no fact with id 999"),
        (["ask", "--as-of", "yesterday", "q"], "not a date"),
    ]
    for args, expected in cases:
        code, err = run_main(monkeypatch, capsys, "--kb", str(kb_dir), *args)
        assert code != 0, args
        assert expected in err, (args, err)
        assert len(err.strip().splitlines()) == 1, err


def test_commands_on_a_missing_knowledge_base_say_how_to_create_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_main(monkeypatch, capsys, "--kb", str(tmp_path / "none"), "stats")
    assert code == 1 and "kb init" in err
    assert not (tmp_path / "none").exists()


def test_help_imports_neither_torch_nor_llama_cpp() -> None:
    probe = (
        "import sys, cli; from click.testing import CliRunner; "
        "CliRunner().invoke(cli.cli, ['--help']); "
        "print([m for m in ('torch', 'llama_cpp', 'sentence_transformers') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_llm_timeout_bounds_the_wait_on_a_hung_server(
    kb_dir: Path, feed: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import time
    from http.server import BaseHTTPRequestHandler

    class Hung(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            time.sleep(3)

        def log_message(self, *args: object) -> None:
            pass

    no_proxies(monkeypatch)
    with local_server(Hung) as base:
        url = f"{base}/v1"
        started = time.monotonic()
        code, err = run_main(
            monkeypatch,
            capsys,
            "--kb",
            str(kb_dir),
            "--llm",
            "openai",
            "--llm-url",
            url,
            "--model",
            "m",
            "--llm-timeout",
            "0.2",
            "ingest",
            str(feed),
        )
        assert code == 1 and "did not answer" in err and len(err.strip().splitlines()) == 1
        assert time.monotonic() - started < 10
    assert json.loads(kb(kb_dir, "docs", "list", "--json").output) == []


def test_one_id_with_two_texts_across_the_sources_of_one_ingest_stores_nothing(
    kb_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text(json.dumps({"id": "x", "text": "The CEO of Acme is Bob."}) + "\n")
    second.write_text(json.dumps({"id": "x", "text": "The CEO of Acme is Carol."}) + "\n")
    code, err = run_main(
        monkeypatch, capsys, "--kb", str(kb_dir), "ingest", str(first), str(second)
    )
    assert code == 1 and "id 'x' is given twice with different texts" in err
    assert err.count("\n") == 1
    assert json.loads(kb(kb_dir, "docs", "list", "--json").output) == []
