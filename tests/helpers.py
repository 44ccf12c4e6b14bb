"""Small builders shared by tests."""

from __future__ import annotations

from datetime import datetime

from kbase.sources.base import SourceDocument


def news(doc_id: str, text: str, day: int = 1, month: int = 1) -> SourceDocument:
    """A dated document with the given id and text."""
    return SourceDocument(
        doc_id=doc_id,
        text=text,
        source="test",
        title=f"Title of {doc_id}",
        url=f"https://news.example.org/{doc_id}",
        published=datetime(2024, month, day),
    )
