"""End to end on the real parts: the MiniLM embedder, the embedded Qwen2.5-Coder-1.5B
in llama.cpp, and SQLite, through the ``kb`` command as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli

pytestmark = pytest.mark.real

NORTHWIND = {
    "id": "northwind-ceo",
    "title": "Northwind Ferries appoints Ingrid Dahl",
    "published": "2024-02-06",
    "url": "https://news.example.org/northwind-ceo",
    "text": "Northwind Ferries, the ferry operator based in Oslo, appointed Ingrid Dahl as its "
    "chief executive. Ingrid Dahl previously ran the company's freight division.",
}
GLOBEX = {
    "id": "globex-bakery",
    "title": "Globex Foods opens a bakery in Leeds",
    "published": "2024-03-20",
    "url": "https://news.example.org/globex-bakery",
    "text": "Globex Foods opened a new bakery in Leeds that will employ 300 people. The bakery "
    "makes bread for supermarkets in the north of England.",
}


def kb(folder: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--kb", str(folder), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_ask_cites_the_document_about_the_company_asked_about(tmp_path: Path) -> None:
    source = tmp_path / "news.jsonl"
    source.write_text("\n".join(json.dumps(d) for d in (NORTHWIND, GLOBEX)) + "\n")
    kb(tmp_path / "kb", "ingest", "--quiet", str(source))

    ferries = json.loads(
        kb(tmp_path / "kb", "ask", "--json", "Who is the chief executive of Northwind Ferries?")
    )
    assert "Ingrid Dahl" in ferries["answer"]
    assert [c["doc_id"] for c in ferries["citations"]] == ["northwind-ceo"]

    bakery = json.loads(
        kb(tmp_path / "kb", "ask", "--json", "In which city did Globex Foods open a bakery?")
    )
    assert "Leeds" in bakery["answer"]
    assert [c["doc_id"] for c in bakery["citations"]] == ["globex-bakery"]
