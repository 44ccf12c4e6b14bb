"""The vector index seam: int64 ids to unit vectors, searched by inner product (cosine).

The index is derived from SQL: it can always be rebuilt from the ``embeddings`` and
``facts`` tables, and it remembers the store state it reflects so that an index
that is missing or behind is caught up on open.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import numpy.typing as npt

Ids = npt.NDArray[np.int64]
Scores = npt.NDArray[np.float32]


class VectorIndex(ABC):
    dim: int

    @abstractmethod
    def add(self, ids: Ids, vectors: npt.NDArray[np.float32]) -> None:
        """Add vectors under ``ids`` (ids must not be present yet)."""

    @abstractmethod
    def remove(self, ids: Ids) -> None:
        """Remove ``ids``; unknown ids are ignored."""

    @abstractmethod
    def search(self, vector: npt.NDArray[np.float32], k: int) -> tuple[Ids, Scores]:
        """The ``k`` nearest ids, best first, with their cosine scores."""

    @abstractmethod
    def within(self, vector: npt.NDArray[np.float32], radius: float) -> tuple[Ids, Scores]:
        """Every id whose cosine to ``vector`` is at least ``radius`` (unordered)."""

    @abstractmethod
    def ids(self) -> Ids:
        """All ids in the index."""

    @abstractmethod
    def save(self, state: str) -> None:
        """Persist the index, stamped with the store state it reflects."""

    @property
    @abstractmethod
    def state(self) -> str | None:
        """The store state the persisted index reflects (None: never saved)."""

    def __len__(self) -> int:
        return int(self.ids().shape[0])
