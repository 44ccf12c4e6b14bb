"""Exact inner-product search in numpy, persisted as one ``.npz`` file.

A second implementation of the seam with no native dependency: a float32 matrix
and an int64 id array, scanned whole on every query. It is as exact as
:class:`kbase.index.faiss_index.FaissIndex` and fast enough for tens of thousands
of vectors; its scores may differ from FAISS's in the last bit (another summation
order), never its results on vectors whose scores are apart.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
from numpy.lib.npyio import NpzFile

from kbase.errors import StoreError
from kbase.index.base import IdFilter, Ids, Matrix, Scores, VectorIndex, write_atomically

_EMPTY_IDS: Ids = np.zeros(0, dtype=np.int64)
_EMPTY_SCORES: Scores = np.zeros(0, dtype=np.float32)


class NumpyIndex(VectorIndex):
    """Vectors, ids and stamp in ``folder/vectors.npz``.

    The stamp is stored in the same file as the vectors, so one ``os.replace`` makes
    a save visible whole: no crash leaves vectors under another state's stamp.
    :meth:`search` breaks ties by storage order (an earlier-added vector first, and
    kept when several are tied at the k-th score); :meth:`within` lists ids in
    storage order.
    """

    def __init__(self, folder: Path, dim: int, *, strict: bool = False) -> None:
        self.dim = dim
        self.path = folder / "vectors.npz"
        self._state: str | None = None
        self._ids: Ids = _EMPTY_IDS
        self._matrix: Matrix = np.zeros((0, dim), dtype=np.float32)
        self._loaded = False
        if not self.path.exists():
            return
        try:
            self._ids, self._matrix, self._state = self._read()
            self._loaded = True
        except StoreError:
            if strict:
                raise

    def _read(self) -> tuple[Ids, Matrix, str]:
        def unreadable(why: object) -> StoreError:
            return StoreError(f"the vector index {self.path} cannot be read: {why}")

        try:
            # Our own file object: np.load leaks its own when the archive is corrupt.
            with self.path.open("rb") as file:
                data = np.load(file, allow_pickle=False)
                if not isinstance(data, NpzFile):  # a lone .npy array under our name
                    raise unreadable("it is not an .npz archive")
                with data:
                    ids, matrix, state = data["ids"], data["vectors"], data["state"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise unreadable(exc) from exc
        why = None
        if ids.dtype != np.int64 or ids.ndim != 1:
            why = f"its ids are {ids.dtype} of shape {ids.shape}, not one row of int64"
        elif matrix.dtype != np.float32 or matrix.shape != (len(ids), self.dim):
            why = (
                f"its vectors are {matrix.dtype} of shape {matrix.shape}, "
                f"not float32 of shape {(len(ids), self.dim)}"
            )
        elif state.dtype.kind != "U" or state.ndim != 0:
            why = "its stamp is not a string"
        if why is not None:
            raise unreadable(why)
        return ids, np.ascontiguousarray(matrix), str(state)

    @property
    def state(self) -> str | None:
        return self._state

    @property
    def loaded(self) -> bool:
        return self._loaded

    def add(self, ids: Ids, vectors: npt.NDArray[np.float32]) -> None:
        if len(ids) == 0:
            return
        rows = np.asarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        self._ids = np.concatenate([self._ids, np.asarray(ids, dtype=np.int64)])
        self._matrix = np.concatenate([self._matrix, rows])

    def remove(self, ids: Ids) -> None:
        if len(ids) == 0 or len(self._ids) == 0:
            return
        keep = ~np.isin(self._ids, np.asarray(ids, dtype=np.int64))
        # Boolean indexing keeps the survivors in storage order, as FAISS does.
        self._ids, self._matrix = self._ids[keep], self._matrix[keep]

    def _scores(self, vector: npt.NDArray[np.float32]) -> Scores:
        query = np.asarray(vector, dtype=np.float32).reshape(self.dim)
        return np.asarray(self._matrix @ query, dtype=np.float32)

    def search(
        self, vector: npt.NDArray[np.float32], k: int, *, allowed: IdFilter | None = None
    ) -> tuple[Ids, Scores]:
        if len(self._ids) == 0 or k <= 0:
            return _EMPTY_IDS.copy(), _EMPTY_SCORES.copy()
        scores = self._scores(vector)
        ids = self._ids
        if allowed is not None:
            keep = allowed.allows(ids)
            ids, scores = ids[keep], scores[keep]
        # A stable sort of the negated scores: best first, ties in storage order.
        order = np.argsort(-scores, kind="stable")[:k]
        return ids[order], scores[order]

    def within(self, vector: npt.NDArray[np.float32], radius: float) -> tuple[Ids, Scores]:
        if len(self._ids) == 0:
            return _EMPTY_IDS.copy(), _EMPTY_SCORES.copy()
        scores = self._scores(vector)
        keep = scores >= np.float32(radius)
        return self._ids[keep], scores[keep]

    def ids(self) -> Ids:
        return self._ids.copy()

    def vectors(self) -> tuple[Ids, Matrix]:
        return self._ids.copy(), self._matrix.copy()

    def save(self, state: str) -> None:
        def write(out: BinaryIO) -> None:
            # A file object, not a name: np.savez would append ".npz" to a name.
            np.savez(out, ids=self._ids, vectors=self._matrix, state=np.str_(state))

        try:
            write_atomically(self.path, write)
        except OSError as exc:
            raise StoreError(f"cannot write the vector index {self.path}: {exc}") from exc
        self._state = state
