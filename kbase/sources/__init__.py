"""Turning what the user gives (files, folders, URLs, standard input) into documents.

The entry points are :func:`read_source` (one source) and :func:`read_sources` (the
sources of one command, checked as one batch). Every problem with the input is an
:class:`~kbase.errors.InputError` (or :class:`~kbase.errors.FetchError` for URLs) with a
one-line message; nothing is returned unless the whole source is valid.

The readers (:mod:`kbase.sources.read`) load on first use: every store operation
imports :mod:`kbase.sources.base`, and a ``kb search`` must not wait for the HTTP
client and the parsers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kbase.sources.base import DEFAULT_MAX_BYTES, SourceDocument
from kbase.sources.fields import MAX_ID_CHARS, check_batch

if TYPE_CHECKING:
    from kbase.sources.read import read_source, read_sources

__all__ = [
    "DEFAULT_MAX_BYTES",
    "MAX_ID_CHARS",
    "SourceDocument",
    "check_batch",
    "read_source",
    "read_sources",
]


def __getattr__(name: str) -> Any:
    if name in ("read_source", "read_sources"):
        from kbase.sources import read

        return getattr(read, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
