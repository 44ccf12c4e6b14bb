"""kbase: a retrieval knowledge base that edits itself as news arrives and forgets
documents exactly.

The public Python API (see docs/api.md)::

    from kbase import KnowledgeBase, Settings, read_source

    with KnowledgeBase.open("my-kb", settings=Settings(strategy="kbase")) as kb:
        kb.ingest(read_source("news.xml"))
        print(kb.ask("Who is the chief executive of Acme Robotics?").answer)

Names load on first use, so ``import kbase.llm`` (or ``kb --help``) pays for no
database, index or HTTP library it does not use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kbase.config import Settings
    from kbase.errors import (
        BadModelOutput,
        ConfigError,
        DocumentError,
        FetchError,
        InputError,
        KbaseError,
        LockTimeout,
        ModelError,
        ModelUnavailable,
        NotFoundError,
        StoreError,
    )
    from kbase.fewshot.example import Example
    from kbase.kb import KnowledgeBase
    from kbase.reports import (
        Answer,
        Citation,
        CurationReport,
        DocReport,
        DocumentDetail,
        DocumentSummary,
        Edit,
        ExampleRow,
        FactHit,
        FactRow,
        FactVersion,
        FeedPoll,
        FeedRow,
        FeedsChange,
        ForgetReport,
        IngestReport,
        PollProgress,
        PollReport,
        Stats,
        VerifyReport,
    )
    from kbase.sources import read_source
    from kbase.sources.base import SourceDocument

#: Each public name and the module it lives in.
_EXPORTS = {
    "Answer": "kbase.reports",
    "BadModelOutput": "kbase.errors",
    "Citation": "kbase.reports",
    "ConfigError": "kbase.errors",
    "CurationReport": "kbase.reports",
    "DocReport": "kbase.reports",
    "DocumentDetail": "kbase.reports",
    "DocumentError": "kbase.errors",
    "DocumentSummary": "kbase.reports",
    "Edit": "kbase.reports",
    "Example": "kbase.fewshot.example",
    "ExampleRow": "kbase.reports",
    "FactHit": "kbase.reports",
    "FactRow": "kbase.reports",
    "FactVersion": "kbase.reports",
    "FeedPoll": "kbase.reports",
    "FeedRow": "kbase.reports",
    "FeedsChange": "kbase.reports",
    "FetchError": "kbase.errors",
    "ForgetReport": "kbase.reports",
    "IngestReport": "kbase.reports",
    "InputError": "kbase.errors",
    "KbaseError": "kbase.errors",
    "KnowledgeBase": "kbase.kb",
    "LockTimeout": "kbase.errors",
    "ModelError": "kbase.errors",
    "ModelUnavailable": "kbase.errors",
    "NotFoundError": "kbase.errors",
    "PollProgress": "kbase.reports",
    "PollReport": "kbase.reports",
    "Settings": "kbase.config",
    "SourceDocument": "kbase.sources.base",
    "Stats": "kbase.reports",
    "StoreError": "kbase.errors",
    "VerifyReport": "kbase.reports",
    "read_source": "kbase.sources",
}

__all__ = [
    "Answer",
    "BadModelOutput",
    "Citation",
    "ConfigError",
    "CurationReport",
    "DocReport",
    "DocumentDetail",
    "DocumentError",
    "DocumentSummary",
    "Edit",
    "Example",
    "ExampleRow",
    "FactHit",
    "FactRow",
    "FactVersion",
    "FeedPoll",
    "FeedRow",
    "FeedsChange",
    "FetchError",
    "ForgetReport",
    "IngestReport",
    "InputError",
    "KbaseError",
    "KnowledgeBase",
    "LockTimeout",
    "ModelError",
    "ModelUnavailable",
    "NotFoundError",
    "PollProgress",
    "PollReport",
    "Settings",
    "SourceDocument",
    "Stats",
    "StoreError",
    "VerifyReport",
    "read_source",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'kbase' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value
