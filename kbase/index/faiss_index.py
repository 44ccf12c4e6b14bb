"""FAISS flat inner-product index with explicit int64 ids, persisted as a file.

Exact search (IndexFlatIP) keeps retrieval a pure function of the stored vectors,
which exact forgetting relies on. The file is rewritten whole and atomically on
every save, so removed vectors leave no bytes behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from kbase.errors import StoreError
from kbase.index.base import Ids, Matrix, Scores, VectorIndex

# kbase searches one query at a time: OpenMP threads only add start-up and
# contention cost there (7 ms against 0.1 ms per query on two busy cores).
faiss.omp_set_num_threads(1)


class FaissIndex(VectorIndex):
    """An ``IndexIDMap2(IndexFlatIP)`` stored at ``folder/vectors.faiss``, its stamp
    (``{"state": ..., "dim": ...}``) at ``folder/vectors.json``.

    :meth:`save` renames the new index file into place, then the new stamp: a crash
    between the two leaves new vectors under the previous stamp, which the next open
    treats as behind and catches up. Ties in :meth:`search` follow FAISS's result
    heap: with equal scores neither the order nor which vectors tied at the k-th
    score are kept is promised. :meth:`within` lists ids in storage order.
    """

    def __init__(self, folder: Path, dim: int, *, strict: bool = False) -> None:
        self.dim = dim
        self.path = folder / "vectors.faiss"
        self.meta_path = folder / "vectors.json"
        self._state: str | None = None
        self._index: Any = None
        if strict:
            if self.path.exists():
                self._index, self._state = self._read_strictly(), self._read_stamp()
        elif self.path.exists() and self.meta_path.exists():
            try:
                meta = json.loads(self.meta_path.read_text())
                index = faiss.read_index(str(self.path))
            except (OSError, ValueError, RuntimeError):
                index, meta = None, {}
            if index is not None and index.d == dim:
                self._index, self._state = index, meta.get("state")
        self._loaded = self._index is not None
        if self._index is None:
            self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    def _read_strictly(self) -> Any:
        """The index in the file, or StoreError saying why it is not one of ours."""

        def unreadable(why: object) -> StoreError:
            return StoreError(f"the vector index {self.path} cannot be read: {why}")

        try:
            index = faiss.read_index(str(self.path))
        except (OSError, RuntimeError) as exc:
            raise unreadable(exc) from exc
        if not isinstance(index, faiss.IndexIDMap2):
            raise unreadable(f"it holds a {type(index).__name__}, not an IndexIDMap2")
        flat = faiss.downcast_index(index.index)
        if not isinstance(flat, faiss.IndexFlat) or flat.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise unreadable(f"its vectors are in a {type(flat).__name__}, not an IndexFlatIP")
        if index.d != self.dim:
            raise unreadable(f"it holds {index.d}-dimensional vectors, not {self.dim}")
        return index

    def _read_stamp(self) -> str | None:
        try:
            state = json.loads(self.meta_path.read_text()).get("state")
        except (OSError, ValueError, AttributeError):
            return None  # no stamp: the vectors reflect no known state
        return state if isinstance(state, str) else None

    @property
    def state(self) -> str | None:
        return self._state

    @property
    def loaded(self) -> bool:
        return self._loaded

    def add(self, ids: Ids, vectors: npt.NDArray[np.float32]) -> None:
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        self._index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: Ids) -> None:
        if len(ids) == 0:
            return
        self._index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))

    def search(self, vector: npt.NDArray[np.float32], k: int) -> tuple[Ids, Scores]:
        n = self._index.ntotal
        if n == 0 or k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, self.dim)
        scores, ids = self._index.search(query, min(k, n))
        keep = ids[0] >= 0
        return ids[0][keep].astype(np.int64), scores[0][keep].astype(np.float32)

    def within(self, vector: npt.NDArray[np.float32], radius: float) -> tuple[Ids, Scores]:
        if self._index.ntotal == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, self.dim)
        # range_search keeps scores strictly above the radius; nudge it down one ulp.
        below = float(np.nextafter(np.float32(radius), np.float32(-np.inf)))
        _lims, scores, ids = self._index.range_search(query, below)
        keep = scores >= np.float32(radius)
        return ids[keep].astype(np.int64), scores[keep].astype(np.float32)

    def ids(self) -> Ids:
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def vectors(self) -> tuple[Ids, Matrix]:
        n = self._index.ntotal
        # The flat index inside holds rows in storage order, aligned with id_map.
        flat = self._index.index
        stored = flat.reconstruct_n(0, n) if n else np.zeros((0, self.dim), dtype=np.float32)
        return self.ids(), np.asarray(stored, dtype=np.float32).reshape(n, self.dim)

    def save(self, state: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".faiss.tmp")
        try:
            faiss.write_index(self._index, str(tmp))
            os.replace(tmp, self.path)
            tmp_meta = self.meta_path.with_suffix(".json.tmp")
            tmp_meta.write_text(json.dumps({"state": state, "dim": self.dim}))
            os.replace(tmp_meta, self.meta_path)
        except OSError as exc:
            raise StoreError(f"cannot write the vector index {self.path}: {exc}") from exc
        self._state = state
