"""What every input source turns into: documents ready for the ingest log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from kbase.hashing import content_hash

#: Default cap on one input file or download, in bytes (configurable per call).
DEFAULT_MAX_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class SourceDocument:
    """One document read from a source, before it is stored.

    ``doc_id`` is the stable user-facing id: the given ``--id``, else the feed
    entry's id or link, else the JSONL ``id``, else the content hash.
    ``published`` is naive UTC. ``received`` is when the store first received it
    (None: now); it places an undated document, and a rebuild passes the recorded one.
    """

    doc_id: str
    text: str
    source: str
    title: str | None = None
    url: str | None = None
    published: datetime | None = None
    received: datetime | None = None

    @property
    def content_hash(self) -> str:
        return content_hash(self.text)
