"""FAISS inner-product index with explicit int64 ids, persisted as a file.

Two layouts, chosen by the number of vectors alone (so by the stored facts, never
by their history):

- below :data:`IVF_FROM` vectors (or for a dimension kbase ships no quantiser
  for), an exact flat scan (``IndexFlatIP``);
- from :data:`IVF_FROM` on, an inverted file (``IndexIVFFlat``) over the fixed
  quantiser of :mod:`kbase.index.quantiser`, loaded and never trained on the
  store: a vector's list depends on the vector alone, so the lists, and what a
  search finds in them, are a function of the stored (id, vector) pairs. Lists
  hold the full float32 vectors, so every candidate's score is its exact cosine;
  ``remove`` drops a vector's bytes, which exact forgetting needs (HNSW can do
  neither, and its graph depends on insertion order).

Either way the index sits inside an ``IndexIDMap2`` whose internal positions are
the storage order. The file is rewritten whole and atomically on every save, so
removed vectors leave no bytes behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, BinaryIO

import faiss
import numpy as np
import numpy.typing as npt

from kbase.errors import StoreError
from kbase.index.base import IdFilter, Ids, Matrix, Scores, VectorIndex, write_atomically
from kbase.index.quantiser import shipped_centroids

# kbase searches one query at a time: OpenMP threads only add start-up and
# contention cost there (7 ms against 0.1 ms per query on two busy cores).
faiss.omp_set_num_threads(1)
# The same module, untyped: its stubs lack SWIG's ownership flags, search
# parameters' keyword arguments and the Python-callback writer.
_faiss: Any = faiss

#: From this many vectors on, the inverted-file layout (where a quantiser ships).
IVF_FROM = 20_000
#: Lists probed first; a search that finds fewer than k allowed vectors there
#: probes four times as many, up to every list (then it is exact).
N_PROBE = 384

_EMPTY = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
_SHIPPED: Any = object()


class FaissIndex(VectorIndex):
    """An ``IndexIDMap2`` over ``IndexFlatIP`` or ``IndexIVFFlat`` stored at
    ``folder/vectors.faiss``, its stamp (``{"state": ..., "dim": ...}``) at
    ``folder/vectors.json``.

    ``centroids`` (default: those kbase ships for ``dim``, if any), ``ivf_from``
    and ``n_probe`` set the layout; tests give small ones. A file holding an
    inverted file over other centroids is not ours: it opens empty (rebuilt from
    SQL), or with ``strict`` raises StoreError.

    :meth:`save` renames the new index file into place, then the new stamp: a crash
    between the two leaves new vectors under the previous stamp, which the next open
    treats as behind and catches up. Ties in :meth:`search` follow FAISS's result
    heap: with equal scores neither the order nor which vectors tied at the k-th
    score are kept is promised. :meth:`within` lists ids in storage order (flat)
    or list by list (inverted file).
    """

    def __init__(
        self,
        folder: Path,
        dim: int,
        *,
        strict: bool = False,
        centroids: Matrix | None = _SHIPPED,
        ivf_from: int | None = None,
        n_probe: int | None = None,
    ) -> None:
        self.dim = dim
        self.path = folder / "vectors.faiss"
        self.meta_path = folder / "vectors.json"
        self.centroids = shipped_centroids(dim) if centroids is _SHIPPED else centroids
        self.ivf_from = IVF_FROM if ivf_from is None else ivf_from
        self.n_probe = N_PROBE if n_probe is None else n_probe
        self._state: str | None = None
        self._index: Any = None
        if strict:
            if self.path.exists():
                self._index, self._state = self._read_strictly(), self._read_stamp()
        elif self.path.exists() and self.meta_path.exists():
            try:
                meta = json.loads(self.meta_path.read_text())
                self._index = self._read_strictly()
                self._state = meta.get("state")
            except (OSError, ValueError, StoreError):
                self._index, self._state = None, None
        self._loaded = self._index is not None
        if self._index is None:
            self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._inner: Any = faiss.downcast_index(self._index.index)
        if not strict:
            self._fit_layout()

    # -- reading -------------------------------------------------------------------------
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
        inner = faiss.downcast_index(index.index)
        if not isinstance(inner, faiss.IndexFlat | faiss.IndexIVFFlat):
            raise unreadable(f"its vectors are in a {type(inner).__name__}, not an IndexFlatIP")
        if inner.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise unreadable(f"its vectors are in a {type(inner).__name__}, not an IndexFlatIP")
        if index.d != self.dim:
            raise unreadable(f"it holds {index.d}-dimensional vectors, not {self.dim}")
        if isinstance(inner, faiss.IndexIVFFlat) and not self._our_quantiser(inner):
            raise unreadable("its inverted lists use another quantiser than kbase's")
        return index

    def _our_quantiser(self, ivf: Any) -> bool:
        if self.centroids is None or ivf.nlist != len(self.centroids):
            return False
        stored = faiss.downcast_index(ivf.quantizer).reconstruct_n(0, ivf.nlist)
        return bool(np.asarray(stored, dtype=np.float32).tobytes() == self.centroids.tobytes())

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

    @property
    def inverted(self) -> bool:
        """Whether the vectors are in the inverted-file layout."""
        return isinstance(self._inner, faiss.IndexIVFFlat)

    # -- layout --------------------------------------------------------------------------
    def _fit_layout(self) -> None:
        """Put the vectors in the layout their number calls for."""
        want = self.centroids is not None and self._index.ntotal >= self.ivf_from
        if want == self.inverted:
            return
        ids, vectors = self.vectors()
        self._index = self._new_ivf() if want else faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        self._inner = faiss.downcast_index(self._index.index)
        self._add(ids, vectors)

    def _new_ivf(self) -> Any:
        assert self.centroids is not None
        quantiser = _faiss.IndexFlatIP(self.dim)
        quantiser.add(self.centroids)
        ivf = _faiss.IndexIVFFlat(
            quantiser, self.dim, len(self.centroids), faiss.METRIC_INNER_PRODUCT
        )
        quantiser.this.disown()
        ivf.own_fields = True
        ivf.is_trained = True  # the quantiser is the shipped one: nothing to train
        wrapped = faiss.IndexIDMap2(ivf)
        ivf.this.disown()
        wrapped.own_fields = True
        return wrapped

    # -- changes -------------------------------------------------------------------------
    def _add(self, ids: Ids, vectors: npt.NDArray[np.float32]) -> None:
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        # The IVF inside numbers its vectors by position, in storage order.
        self._index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    def add(self, ids: Ids, vectors: npt.NDArray[np.float32]) -> None:
        self._add(ids, vectors)
        self._fit_layout()

    def remove(self, ids: Ids) -> None:
        if len(ids) == 0 or self._index.ntotal == 0:
            return
        if not self.inverted:
            self._index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))
        else:
            self._remove_inverted(np.asarray(ids, dtype=np.int64))
        self._fit_layout()

    def _remove_inverted(self, ids: Ids) -> None:
        # IndexIDMap2.remove_ids assumes the inner index renumbers what is left, as a
        # flat one does; an IVF does not, so remove by position and renumber here.
        id_map = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        gone = np.flatnonzero(np.isin(id_map, ids)).astype(np.int64)
        if len(gone) == 0:
            return
        positions = IdFilter.of(gone)
        self._inner.remove_ids(
            faiss.IDSelectorBitmap(len(positions.bits), faiss.swig_ptr(positions.bits))
        )
        lists = self._inner.invlists
        for number in range(self._inner.nlist):
            size = lists.list_size(number)
            if size:
                stored = faiss.rev_swig_ptr(lists.get_ids(number), size)
                stored -= np.searchsorted(gone, stored)
        left = np.delete(id_map, gone)
        faiss.copy_array_to_vector(left, self._index.id_map)
        self._index.ntotal = len(left)
        self._index.construct_rev_map()

    # -- searching -----------------------------------------------------------------------
    def search(
        self, vector: npt.NDArray[np.float32], k: int, *, allowed: IdFilter | None = None
    ) -> tuple[Ids, Scores]:
        n = self._index.ntotal
        wanted = min(k, n, allowed.count if allowed is not None else n)
        if wanted <= 0:
            return _EMPTY[0].copy(), _EMPTY[1].copy()
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, self.dim)
        bits = allowed.bits if allowed is not None else None
        selector = (
            faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits)) if bits is not None else None
        )
        if not self.inverted:
            params = _faiss.SearchParameters(sel=selector) if selector is not None else None
            scores, ids = self._index.search(query, wanted, params=params)
        else:
            probe = min(self.n_probe, self._inner.nlist)
            while True:
                params = _faiss.SearchParametersIVF(nprobe=probe)
                if selector is not None:
                    params.sel = selector
                scores, ids = self._index.search(query, wanted, params=params)
                if int((ids[0] >= 0).sum()) >= wanted or probe >= self._inner.nlist:
                    break
                probe = min(4 * probe, self._inner.nlist)
        keep = ids[0] >= 0
        return ids[0][keep].astype(np.int64), scores[0][keep].astype(np.float32)

    def within(self, vector: npt.NDArray[np.float32], radius: float) -> tuple[Ids, Scores]:
        if self._index.ntotal == 0:
            return _EMPTY[0].copy(), _EMPTY[1].copy()
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, self.dim)
        # range_search keeps scores strictly above the radius; nudge it down one ulp.
        below = float(np.nextafter(np.float32(radius), np.float32(-np.inf)))
        # Every list, so that the inverted file is exact here too.
        params = _faiss.SearchParametersIVF(nprobe=self._inner.nlist) if self.inverted else None
        _lims, scores, ids = self._index.range_search(query, below, params=params)
        keep = scores >= np.float32(radius)
        return ids[keep].astype(np.int64), scores[keep].astype(np.float32)

    # -- contents ------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> Ids:
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def vectors(self) -> tuple[Ids, Matrix]:
        n = self._index.ntotal
        if n == 0:
            return self.ids(), np.zeros((0, self.dim), dtype=np.float32)
        if not self.inverted:
            # The flat index inside holds rows in storage order, aligned with id_map.
            stored = self._inner.reconstruct_n(0, n)
            return self.ids(), np.asarray(stored, dtype=np.float32).reshape(n, self.dim)
        out = np.zeros((n, self.dim), dtype=np.float32)
        lists = self._inner.invlists
        for number in range(self._inner.nlist):
            size = lists.list_size(number)
            if size:
                at = faiss.rev_swig_ptr(lists.get_ids(number), size)
                codes = faiss.rev_swig_ptr(lists.get_codes(number), size * 4 * self.dim)
                out[at] = np.frombuffer(codes.tobytes(), dtype=np.float32).reshape(size, self.dim)
        return self.ids(), out

    # -- saving --------------------------------------------------------------------------
    def save(self, state: str) -> None:
        def index_file(out: BinaryIO) -> None:
            # Streamed through Python's file: a full disk raises here, where
            # faiss's own writer could leave a short file and carry on.
            faiss.write_index(self._index, _faiss.PyCallbackIOWriter(out.write))

        def stamp(out: BinaryIO) -> None:
            out.write(json.dumps({"state": state, "dim": self.dim}).encode())

        try:
            write_atomically(self.path, index_file)
            write_atomically(self.meta_path, stamp)
        except (OSError, RuntimeError) as exc:
            raise StoreError(f"cannot write the vector index {self.path}: {exc}") from exc
        self._state = state
