"""The vector index seam: int64 ids to unit vectors, searched by inner product (cosine).

The index is derived from SQL: it can always be rebuilt from the ``embeddings`` and
``facts`` tables, and it remembers the store state it reflects so that an index
that is missing or behind is caught up on open.

Every implementation is constructed as ``Index(folder, dim, *, strict=False)`` and
keeps its file(s) in ``folder``:

- ``strict=False`` (opening for use): a file that is missing, unreadable, of another
  dimension or without its stamp gives an empty index with ``state`` None, which
  the caller rebuilds from SQL.
- ``strict=True`` (inspecting what is on disk, as ``kb verify`` does): a missing
  file gives an empty index with ``loaded`` False; a file that exists but cannot be
  read as an index of ``dim`` raises :class:`kbase.errors.StoreError`
  ("the vector index PATH cannot be read: WHY"); an unreadable stamp only leaves
  ``state`` None.

Vectors are kept in storage order: the order they were added in, less the removed
ones. :meth:`VectorIndex.ids` and :meth:`VectorIndex.vectors` list them in that
order, duplicates (which only a tampered file holds) included.

Search is exact, or (a compressed layout past a size threshold, see
:mod:`kbase.index.faiss_index`) the exact best among the candidates that codes
from a fixed codebook put forward, re-ranked by their exact scores: either way
the result is a function of the stored (id, vector) pairs and the query, never
of the order they were added in beyond the ties noted per implementation.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

Ids = npt.NDArray[np.int64]
Scores = npt.NDArray[np.float32]
#: A float32 matrix of shape (n, dim), one vector a row.
Matrix = npt.NDArray[np.float32]


@dataclass(frozen=True, eq=False)
class IdFilter:
    """The ids a search may return, as a bitmap: bit ``i % 8`` of byte ``i // 8`` is
    set when id ``i`` is allowed (ids past the end, and negative ones, are not)."""

    bits: npt.NDArray[np.uint8]
    #: How many ids are allowed.
    count: int

    @classmethod
    def of(cls, ids: Ids) -> IdFilter:
        """The filter that allows exactly ``ids`` (non-negative)."""
        ids = np.asarray(ids, dtype=np.int64)
        size = int(ids.max()) + 1 if len(ids) else 0
        mask = np.zeros(size, dtype=bool)
        mask[ids] = True
        return cls(np.packbits(mask, bitorder="little"), int(mask.sum()))

    def allows(self, ids: Ids) -> npt.NDArray[np.bool_]:
        """Which of ``ids`` the filter allows."""
        ids = np.asarray(ids, dtype=np.int64)
        inside = (ids >= 0) & (ids < 8 * len(self.bits))
        out = np.zeros(len(ids), dtype=bool)
        at = ids[inside]
        out[inside] = ((self.bits[at >> 3] >> (at & 7).astype(np.uint8)) & 1).astype(bool)
        return out


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write a file whole or not at all: into a temporary file in the same folder,
    flushed and fsynced, then renamed over ``path`` (and the folder fsynced). A
    failure (a full disk, say) leaves the previous file as it was and no temporary
    file; the OSError is raised."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself survives a power cut
    finally:
        os.close(folder)


class VectorIndex(ABC):
    """Inner-product search over int64 ids, persisted under a folder."""

    #: The dimension of every vector.
    dim: int
    #: The file the index is persisted to (its stamp may live beside it or in it).
    path: Path

    @abstractmethod
    def add(self, ids: Ids, vectors: npt.NDArray[np.float32]) -> None:
        """Add vectors under ``ids`` (ids must not be present yet)."""

    @abstractmethod
    def remove(self, ids: Ids) -> None:
        """Remove ``ids``; unknown ids are ignored."""

    @abstractmethod
    def search(
        self, vector: npt.NDArray[np.float32], k: int, *, allowed: IdFilter | None = None
    ) -> tuple[Ids, Scores]:
        """The ``k`` nearest ids (all of them when fewer), best first, with their cosine
        scores; nothing when ``k <= 0``. With ``allowed``, only ids it allows are
        considered (in the same one search). Among equal scores the order, and which
        of several vectors tied at the k-th score are returned, is up to the
        implementation (see each one's docstring)."""

    @abstractmethod
    def within(self, vector: npt.NDArray[np.float32], radius: float) -> tuple[Ids, Scores]:
        """Every id whose cosine to ``vector`` is at least ``radius`` (inclusive, compared
        in float32), with its score, in no promised order. Always exact."""

    @abstractmethod
    def ids(self) -> Ids:
        """All ids in the index, in storage order."""

    @abstractmethod
    def vectors(self) -> tuple[Ids, Matrix]:
        """Every id and its stored vector, bit for bit, in storage order: ``ids`` equal
        :meth:`ids` and row ``i`` of the (n, dim) float32 matrix is the vector of
        ``ids[i]``."""

    @abstractmethod
    def save(self, state: str) -> None:
        """Persist the index, stamped with the store state it reflects, replacing the
        previous file only once the new one is whole on disk.

        Raises :class:`kbase.errors.StoreError` when the file cannot be written."""

    @property
    @abstractmethod
    def state(self) -> str | None:
        """The store state the persisted index reflects (None: never saved)."""

    @property
    @abstractmethod
    def loaded(self) -> bool:
        """Whether the index was read from :attr:`path` when opened (False: it started
        empty). With ``strict=True``, False means the file is missing."""

    def __len__(self) -> int:
        return int(self.ids().shape[0])
