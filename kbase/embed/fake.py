"""A deterministic, dependency-free embedder for tests: hashed bag of words."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from kbase.embed.base import Embedder, Vectors
from kbase.hashing import sha256_hex

_WORD = re.compile(r"[a-z0-9]+")


class HashingEmbedder(Embedder):
    """Texts that share words get close vectors; identical texts get identical ones."""

    model_id = "fake-hashing-v1"

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim

    def embed_batch(self, texts: Sequence[str]) -> Vectors:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                digest = int(sha256_hex(word)[:8], 16)
                out[row, digest % self.dim] += 1.0 if (digest >> 16) & 1 else -1.0
            if not out[row].any():
                out[row, 0] = 1.0
        return out
