"""The product-quantisation codebook kbase ships: trained once, loaded, never retrained.

``scripts/build_centroids.py`` trained it on a fixed corpus embedded with MiniLM
(not on any store, and not on the benchmark's text). A vector's code is a
function of the vector and this codebook alone, so the codes an index holds are
a function of its stored vectors: the same whatever order the facts came in, and
removing a vector's code leaves exactly what never adding it would have.

A codebook is a float32 array of shape ``(m, 16, dim // m)``: for each of ``m``
sub-vectors, 16 centroids (4 bits a sub-vector, the layout FAISS scans fastest).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import faiss
import numpy as np
import numpy.typing as npt

#: Sub-vectors of a 384-dimensional MiniLM vector (4 coordinates each, 48 bytes a code).
SUBVECTORS = 96
#: Bits a sub-vector's code takes.
BITS = 4
#: The codebook of the 384-dimensional MiniLM space.
CODEBOOK_FILE = Path(__file__).with_name("data") / f"pq{SUBVECTORS}x{BITS}-minilm-384.npy"

Codebook = npt.NDArray[np.float32]


@cache
def shipped_codebook(dim: int) -> Codebook | None:
    """The shipped codebook for vectors of ``dim`` (None: none ships for it)."""
    if dim != 384 or not CODEBOOK_FILE.exists():
        return None
    codebook = np.load(CODEBOOK_FILE, allow_pickle=False)
    return np.ascontiguousarray(codebook, dtype=np.float32)


def train_codebook(
    vectors: npt.NDArray[np.float32], subvectors: int, *, seed: int = 18
) -> Codebook:
    """A codebook of ``subvectors`` sub-vectors fitted to ``vectors`` (k-means per
    sub-vector, seeded): what the build script ships and tests make for small
    dimensions. Never called on a store's vectors."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    pq = faiss.ProductQuantizer(dim, subvectors, BITS)
    pq.cp.seed = seed
    pq.train(vectors)
    centroids = faiss.vector_to_array(pq.centroids).astype(np.float32)
    return centroids.reshape(subvectors, 1 << BITS, dim // subvectors)
