"""Vector indexes by name: each loads its module (and FAISS) only when asked for."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kbase.errors import ConfigError
from kbase.index.base import Ids, Matrix, Scores, VectorIndex

#: Builds an index of ``dim`` over ``folder``; the flag is ``strict`` (see base).
IndexFactory = Callable[[Path, int, bool], VectorIndex]


def _faiss(folder: Path, dim: int, strict: bool) -> VectorIndex:
    from kbase.index.faiss_index import FaissIndex

    return FaissIndex(folder, dim, strict=strict)


def _numpy(folder: Path, dim: int, strict: bool) -> VectorIndex:
    from kbase.index.numpy_index import NumpyIndex

    return NumpyIndex(folder, dim, strict=strict)


INDEXES: dict[str, IndexFactory] = {"faiss": _faiss, "numpy": _numpy}


def get_index(name: str, folder: Path, dim: int, *, strict: bool = False) -> VectorIndex:
    """The index registered as ``name`` over ``folder``, read from its file there if
    any (``strict``: an unreadable file raises StoreError instead of starting empty)."""
    try:
        factory = INDEXES[name]
    except KeyError:
        known = ", ".join(sorted(INDEXES))
        raise ConfigError(f"unknown vector index {name!r}: choose one of {known}") from None
    return factory(folder, dim, strict)


__all__ = ["INDEXES", "Ids", "IndexFactory", "Matrix", "Scores", "VectorIndex", "get_index"]
