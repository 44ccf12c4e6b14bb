"""End to end on the real parts: the MiniLM embedder, the embedded Qwen2.5-Coder-1.5B
in llama.cpp, and SQLite, through the ``kb`` command as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli
from tests.helpers import ACME_ALICE, ACME_BOB

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


UNRELATED = {
    "id": "arena-seats",
    "title": "Harbour Arena adds 2,000 seats",
    "published": "2024-07-09",
    "url": "https://news.example.org/arena-seats",
    "text": "Harbour Arena in Riverside finished an expansion that raises its capacity to 12,000 "
    "seats. The city of Riverside owns the arena.",
}
CEO = "Who is the chief executive of Acme Robotics?"


def write_jsonl(path: Path, *docs: dict[str, str]) -> Path:
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def test_a_later_article_rewrites_the_fact_it_makes_false_and_forgetting_it_restores_it(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "kb"
    kb(folder, "ingest", "-q", str(write_jsonl(tmp_path / "a.jsonl", ACME_BOB)))
    kb(folder, "ingest", "-q", str(write_jsonl(tmp_path / "b.jsonl", ACME_ALICE)))

    # Now: Alice, from the second article.
    now = json.loads(kb(folder, "ask", "--json", CEO))
    assert "Alice" in now["answer"] and "Bob" not in now["answer"]
    assert "acme-alice" in [c["doc_id"] for c in now["citations"]]

    # The Bob fact is closed by the second article, and its history says so.
    every = json.loads(kb(folder, "facts", "list", "--all", "--json"))
    bob = [
        f
        for f in every
        if "Bob Marsh" in f["text"] and "chief executive" in f["text"] and f["doc_id"] == "acme-bob"
    ]
    assert bob and not bob[0]["current"], every
    versions = json.loads(kb(folder, "history", "--json", str(bob[0]["id"])))
    assert versions[0]["closed_by"] == "acme-alice"

    # As of a date between the two articles: Bob, from the first.
    then = json.loads(kb(folder, "ask", "--json", "--as-of", "2024-03-01", CEO))
    assert "Bob" in then["answer"]
    assert [c["doc_id"] for c in then["citations"]] == ["acme-bob"]

    # An unrelated later article retires nothing.
    before = json.loads(kb(folder, "facts", "list", "--json"))
    kb(folder, "ingest", "-q", str(write_jsonl(tmp_path / "c.jsonl", UNRELATED)))
    after = json.loads(kb(folder, "facts", "list", "--json"))
    assert {f["id"] for f in before} <= {f["id"] for f in after}
    shown = json.loads(kb(folder, "docs", "show", "--json", "arena-seats"))
    assert {e["relation"] for e in shown["edits"]} <= {"created", "reinforced"}

    # Forget the article that named Alice: Bob again, from the first article, fact open.
    report = json.loads(kb(folder, "forget", "--json", "acme-alice"))
    assert report["facts_restored"] >= 1
    again = json.loads(kb(folder, "ask", "--json", CEO))
    assert "Bob" in again["answer"] and "Alice" not in again["answer"]
    assert [c["doc_id"] for c in again["citations"]] == ["acme-bob"]
    reopened = json.loads(kb(folder, "history", "--json", str(bob[0]["id"])))
    assert reopened[-1]["current"] and reopened[-1]["closed_by"] is None


def rss(path: Path, *docs: dict[str, str]) -> Path:
    """An RSS 2.0 feed listing ``docs`` in the order given (feeds list newest first)."""
    from email.utils import format_datetime

    from kbase.sources.dates import parse_date

    items = "".join(
        f"<item><guid>{d['id']}</guid><title>{d['title']}</title><link>{d['url']}</link>"
        f"<pubDate>{format_datetime(parse_date(d['published']))}</pubDate>"  # type: ignore[arg-type]
        f"<description>{d['text']}</description></item>"
        for d in docs
    )
    path.write_text(
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Acme news</title>'
        f"<link>https://news.example.org/</link>{items}</channel></rss>"
    )
    return path


def test_a_feed_listed_newest_first_and_polled_twice_ends_as_if_read_oldest_first(
    tmp_path: Path,
) -> None:
    """The May article arrives first; the next poll lists it and, below it, the
    January one, which takes its place before it."""
    oldest_first, newest_first = tmp_path / "oldest-first", tmp_path / "newest-first"
    kb(oldest_first, "ingest", "-q", str(rss(tmp_path / "a.xml", ACME_BOB, ACME_ALICE)))
    kb(newest_first, "ingest", "-q", str(rss(tmp_path / "b1.xml", ACME_ALICE)))
    late = json.loads(
        kb(newest_first, "ingest", "--json", str(rss(tmp_path / "b2.xml", ACME_ALICE, ACME_BOB)))
    )
    assert late["unchanged"] == ["acme-alice"]
    assert [d["doc_id"] for d in late["stored"]] == ["acme-bob"]
    assert late["stored"][0]["later_documents"] == 1

    for folder in (oldest_first, newest_first):
        now = json.loads(kb(folder, "ask", "--json", CEO))
        assert "Alice" in now["answer"] and "Bob" not in now["answer"]
        assert "acme-alice" in [c["doc_id"] for c in now["citations"]]
        then = json.loads(kb(folder, "ask", "--json", "--as-of", "2024-03-01", CEO))
        assert "Bob" in then["answer"]
        assert [c["doc_id"] for c in then["citations"]] == ["acme-bob"]
        docs = json.loads(kb(folder, "docs", "list", "--json"))
        assert [d["doc_id"] for d in docs] == ["acme-bob", "acme-alice"]

    def facts(folder: Path) -> list[tuple[str, str, bool]]:
        rows = json.loads(kb(folder, "facts", "list", "--all", "--json"))
        return sorted((r["text"], r["doc_id"], r["current"]) for r in rows)

    assert facts(newest_first) == facts(oldest_first)


MILLBROOK_ORTEGA = {
    "id": "millbrook-footbridge",
    "title": "Harbour footbridge opens in Millbrook",
    "published": "2024-03-02",
    "url": "https://news.example.org/millbrook-footbridge",
    "text": "Helen Ortega, the mayor of Millbrook, opened the new harbour footbridge on "
    "Saturday. The bridge cost 4.1 million dollars and links the ferry terminal to the old town.",
}
MILLBROOK_REYES = {
    "id": "millbrook-sworn-in",
    "title": "Reyes takes office",
    "published": "2024-06-11",
    "url": "https://news.example.org/millbrook-sworn-in",
    "text": "Daniel Reyes was sworn in as mayor of Millbrook on Monday, succeeding Helen Ortega, "
    "who did not seek a third term. About 300 residents attended the ceremony at city hall.",
}
MAYOR = "Who is the mayor of Millbrook?"


def test_a_succession_worded_as_news_retires_the_old_holder_and_unknowns_are_said(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "kb"
    kb(folder, "ingest", "-q", str(write_jsonl(tmp_path / "news.jsonl", MILLBROOK_REYES,
                                                MILLBROOK_ORTEGA)))  # fmt: skip

    now = json.loads(kb(folder, "ask", "--json", MAYOR))
    assert now["known"] and "Reyes" in now["answer"], now
    assert "millbrook-sworn-in" in [c["doc_id"] for c in now["citations"]]
    current = json.loads(kb(folder, "facts", "list", "--json"))
    assert not [f for f in current if "Ortega" in f["text"] and "mayor" in f["text"]
                and "former" not in f["text"].casefold()], current  # fmt: skip

    then = json.loads(kb(folder, "ask", "--json", "--as-of", "2024-04-01", MAYOR))
    assert then["known"] and "Ortega" in then["answer"], then
    assert [c["doc_id"] for c in then["citations"]] == ["millbrook-footbridge"]

    # Nothing stored says who the police chief is: "unknown", citing nothing, naming
    # no stored person.
    chief = json.loads(kb(folder, "ask", "--json", "Who is the police chief of Millbrook?"))
    assert chief["known"] is False and chief["citations"] == [] and chief["facts"] == [], chief
    assert "Reyes" not in chief["answer"] and "Ortega" not in chief["answer"]
    # Before any article: nothing to answer from.
    early = json.loads(kb(folder, "ask", "--json", "--as-of", "2024-01-01", MAYOR))
    assert early["known"] is False and early["citations"] == []
