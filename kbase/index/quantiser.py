"""The fixed IVF quantiser kbase ships: centroids trained once, loaded, never retrained.

``scripts/build_centroids.py`` computed them from a fixed corpus embedded with
MiniLM. Because they never change with the stored facts, the inverted list a
vector belongs to is a function of that vector alone: an IVF index over a set of
facts holds the same lists whatever order the facts came in, and removing a
fact's vector leaves exactly what never adding it would have.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

#: The number of inverted lists (centroids).
N_LISTS = 1024
#: The centroids of the 384-dimensional MiniLM space.
CENTROIDS_FILE = Path(__file__).with_name("data") / f"centroids-minilm-{384}.npy"


@cache
def shipped_centroids(dim: int) -> npt.NDArray[np.float32] | None:
    """The shipped centroids for vectors of ``dim`` (None: none ship for it)."""
    if dim != 384 or not CENTROIDS_FILE.exists():
        return None
    centroids = np.load(CENTROIDS_FILE, allow_pickle=False)
    return np.ascontiguousarray(centroids, dtype=np.float32)
