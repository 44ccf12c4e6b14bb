"""The embedder seam: a backend implements :meth:`Embedder.embed_batch` only."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


class Embedder(ABC):
    """Turns texts into L2-normalised float32 vectors, so inner product is cosine."""

    #: Identity of the model: part of every cached embedding's key.
    model_id: str = "unknown"
    dim: int = 0

    @abstractmethod
    def embed_batch(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts``; returns an array of shape (len(texts), dim), rows of norm 1."""

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed any number of texts (an empty list gives an empty (0, dim) array)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = np.asarray(self.embed_batch(list(texts)), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return np.ascontiguousarray(vectors / norms, dtype=np.float32)
