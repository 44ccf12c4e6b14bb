"""FAISS inner-product index with explicit int64 ids, persisted as a file.

The full float32 vectors always sit in an ``IndexIDMap2`` over ``IndexFlatIP``,
whose internal positions are the storage order. Two layouts, chosen by the number
of vectors alone (so by the stored facts, never by their history):

- below :data:`COMPRESS_FROM` vectors (or for a dimension kbase ships no codebook
  for), search is an exact flat scan;
- from :data:`COMPRESS_FROM` on, each vector also has a product-quantisation code
  (:mod:`kbase.index.codebook`: 4 bits per sub-vector, from a codebook shipped
  with kbase and never trained on the store), at the same position. A search
  scans the codes (FAISS's fast-scan kernel), takes the best :data:`RERANK`
  candidates or more (:data:`RERANK_PER`), every one tied with the last, and
  re-ranks them by their exact float32 inner product with the full vectors. A
  code depends on its vector alone, so the codes, and what a search finds, are a
  function of the stored (id, vector) pairs; removing a vector drops its code
  with it, which exact forgetting needs.

Validity filters (:class:`~kbase.index.base.IdFilter`) apply inside the one
search: over-fetching candidates in proportion to the share of allowed ids and
re-checking each against the filter, or, for a filter that allows few, an exact
scan of the allowed vectors alone. The file is rewritten whole and atomically on
every save (the id map with the full vectors, then the plain codes), so removed
vectors leave no bytes behind.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, BinaryIO

import faiss
import numpy as np
import numpy.typing as npt

from kbase.errors import StoreError
from kbase.index.base import IdFilter, Ids, Matrix, Scores, VectorIndex, write_atomically
from kbase.index.codebook import BITS, Codebook, shipped_codebook

# kbase searches one query at a time: OpenMP threads only add start-up and
# contention cost there (7 ms against 0.1 ms per query on two busy cores).
faiss.omp_set_num_threads(1)
# The same module, untyped: its stubs lack SWIG's ownership flags, search
# parameters' keyword arguments and the Python-callback reader and writer.
_faiss: Any = faiss

#: From this many vectors on, the compressed layout (where a codebook ships).
COMPRESS_FROM = 10_000
#: Candidates a compressed search re-ranks exactly, at least (more when k is larger)...
RERANK = 128
#: ... and at least one per this many vectors: the more vectors, the more near
#: neighbours a code's error can reorder (on MiniLM facts at 1,000,000, re-ranking
#: 256 found 99.3% of the exact top 8, 512 all of them).
RERANK_PER = 2048
#: A filter allowing less than this share of the vectors is searched exactly over
#: the allowed vectors alone: cheaper than over-fetching that many times more codes.
SELECTIVE = 1 / 8

_SHIPPED: Any = object()


def _empty() -> tuple[Ids, Scores]:
    return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)


class FaissIndex(VectorIndex):
    """An ``IndexIDMap2`` over ``IndexFlatIP`` (plus, in the compressed layout, an
    ``IndexPQ`` of the same vectors' codes) stored at ``folder/vectors.faiss``, its
    stamp (``{"state": ..., "dim": ...}``) at ``folder/vectors.json``.

    ``codebook`` (default: the one kbase ships for ``dim``, if any), ``compress_from``
    and ``rerank`` set the layout; tests give small ones. Codes in a file that do not
    match the vectors and codebook (another codebook, another count) are derived
    data: they are encoded again from the vectors. A file of the inverted-file
    layout earlier versions wrote (``IndexIVFFlat``, full vectors) is read and its
    vectors kept.

    :meth:`save` renames the new index file into place, then the new stamp: a crash
    between the two leaves new vectors under the previous stamp, which the next open
    treats as behind and catches up. Ties in :meth:`search`: in the flat layout they
    follow FAISS's result heap (neither the order nor which vectors tied at the k-th
    score are kept is promised); in the compressed one, every vector whose code scores
    as the last candidate's is re-ranked too, so which vectors are candidates does not
    depend on their positions, and equal exact scores come in storage order.
    :meth:`within` is exact and lists ids in storage order.
    """

    def __init__(
        self,
        folder: Path,
        dim: int,
        *,
        strict: bool = False,
        codebook: Codebook | None = _SHIPPED,
        compress_from: int | None = None,
        rerank: int | None = None,
    ) -> None:
        self.dim = dim
        self.path = folder / "vectors.faiss"
        self.meta_path = folder / "vectors.json"
        self.codebook = shipped_codebook(dim) if codebook is _SHIPPED else codebook
        self.compress_from = COMPRESS_FROM if compress_from is None else compress_from
        self.rerank = RERANK if rerank is None else rerank
        self._state: str | None = None
        self._index: Any = None
        #: The codes, plain (the persisted form, compacted exactly on removal) ...
        self._codes: Any = None
        #: ... and packed for the fast-scan kernel, made from them when first needed.
        self._scan: Any = None
        self._id_array: Ids | None = None
        stored_codes: Any = None
        if strict:
            if self.path.exists():
                self._index, stored_codes = self._read_strictly()
                self._state = self._read_stamp()
        elif self.path.exists() and self.meta_path.exists():
            try:
                meta = json.loads(self.meta_path.read_text())
                self._index, stored_codes = self._read_strictly()
                self._state = meta.get("state")
            except (OSError, ValueError, StoreError):
                self._index, self._state = None, None
        self._loaded = self._index is not None
        if self._index is None:
            self._index = self._new_flat()
        self._inner: Any = faiss.downcast_index(self._index.index)
        if self._matches(stored_codes):
            self._codes = stored_codes
        if not strict:  # what is on disk, as it is; codes are encoded only for use
            self._fit_layout()

    # -- reading -------------------------------------------------------------------------
    def _read_strictly(self) -> tuple[Any, Any]:
        """The id map and the codes in the file (None if it holds none), or StoreError
        saying why it is not one of ours."""

        def unreadable(why: object) -> StoreError:
            return StoreError(f"the vector index {self.path} cannot be read: {why}")

        try:
            with self.path.open("rb") as source:
                reader = _faiss.PyCallbackIOReader(source.read)
                index = faiss.read_index(reader)
                # The codes follow the id map in the same file, when there are any.
                codes = None
                if source.read(1):
                    source.seek(-1, os.SEEK_CUR)
                    codes = faiss.read_index(reader)
        except (OSError, RuntimeError) as exc:
            raise unreadable(exc) from exc
        if not isinstance(index, faiss.IndexIDMap2):
            raise unreadable(f"it holds a {type(index).__name__}, not an IndexIDMap2")
        inner = faiss.downcast_index(index.index)
        kind = type(inner).__name__
        if not isinstance(inner, faiss.IndexFlat | faiss.IndexIVFFlat):
            raise unreadable(f"its vectors are in a {kind}, not an IndexFlatIP")
        if inner.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise unreadable(f"its vectors are in a {kind}, not an IndexFlatIP")
        if index.d != self.dim:
            raise unreadable(f"it holds {index.d}-dimensional vectors, not {self.dim}")
        if isinstance(inner, faiss.IndexIVFFlat):
            index = self._from_inverted(index, inner)
        return index, faiss.downcast_index(codes) if codes is not None else None

    def _from_inverted(self, index: Any, ivf: Any) -> Any:
        """The flat id map holding the vectors of an earlier version's inverted file,
        in its storage order (its lists number the vectors by position)."""
        n = index.ntotal
        vectors = np.zeros((n, self.dim), dtype=np.float32)
        lists = ivf.invlists
        for number in range(ivf.nlist):
            size = lists.list_size(number)
            if size:
                at = faiss.rev_swig_ptr(lists.get_ids(number), size)
                codes = faiss.rev_swig_ptr(lists.get_codes(number), size * 4 * self.dim)
                vectors[at] = np.frombuffer(codes.tobytes(), dtype=np.float32).reshape(
                    size, self.dim
                )
        flat = self._new_flat()
        ids = faiss.vector_to_array(index.id_map).astype(np.int64)
        if n:
            flat.add_with_ids(vectors, ids)
        return flat

    def _matches(self, codes: Any) -> bool:
        """Whether codes read from the file are those of the vectors under our codebook."""
        if codes is None or self.codebook is None:
            return False
        if not isinstance(codes, faiss.IndexPQ) or codes.d != self.dim:
            return False
        if codes.ntotal != self._index.ntotal or codes.metric_type != faiss.METRIC_INNER_PRODUCT:
            return False
        if len(self.codebook) != codes.pq.M or codes.pq.nbits != BITS:
            return False
        stored = faiss.vector_to_array(codes.pq.centroids).astype(np.float32)
        return bool(stored.tobytes() == self.codebook.tobytes())

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
    def compressed(self) -> bool:
        """Whether the vectors also have codes, which searches scan."""
        return self._codes is not None

    # -- layout --------------------------------------------------------------------------
    def _new_flat(self) -> Any:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))

    def _new_codes(self) -> Any:
        assert self.codebook is not None
        subvectors = len(self.codebook)
        codes = faiss.IndexPQ(self.dim, subvectors, BITS, faiss.METRIC_INNER_PRODUCT)
        faiss.copy_array_to_vector(self.codebook.ravel(), codes.pq.centroids)
        codes.is_trained = True  # the codebook is the shipped one: nothing to train
        return codes

    def _fit_layout(self) -> None:
        """Give the vectors codes, or drop them, as their number calls for."""
        want = self.codebook is not None and self._index.ntotal >= self.compress_from
        if want == self.compressed:
            return
        self._scan = None
        if not want:
            self._codes = None
            return
        self._codes = self._new_codes()
        n = self._index.ntotal
        for start in range(0, n, 65_536):  # encoded in slices: bounded scratch memory
            self._codes.add(self._full_vectors()[start : start + 65_536])

    def _full_vectors(self) -> Matrix:
        """The stored vectors, in storage order: a view of FAISS's memory, valid until
        the next change."""
        n = self._index.ntotal
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        flat = faiss.rev_swig_ptr(self._inner.get_xb(), n * self.dim)
        return np.asarray(flat).reshape(n, self.dim)

    def _scanner(self) -> Any:
        if self._scan is None:
            self._scan = faiss.IndexPQFastScan(self._codes)
        return self._scan

    # -- changes -------------------------------------------------------------------------
    def add(self, ids: Ids, vectors: npt.NDArray[np.float32]) -> None:
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        self._index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))
        self._id_array = None
        if self._codes is not None:
            self._codes.add(vectors)
            if self._scan is not None:
                self._scan.add(vectors)  # appended codes pack as a fresh packing would
        self._fit_layout()

    def remove(self, ids: Ids) -> None:
        if len(ids) == 0 or self._index.ntotal == 0:
            return
        if self._codes is not None:
            gone = np.flatnonzero(np.isin(self._ids(), np.asarray(ids, dtype=np.int64)))
            if len(gone) == 0:
                return
            # Plain codes compact exactly; the packed ones would keep stale bytes in
            # their last block's padding, so they are packed again when next needed.
            self._codes.remove_ids(faiss.IDSelectorBatch(gone.astype(np.int64)))
            self._scan = None
        self._index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))
        self._id_array = None
        self._fit_layout()

    # -- searching -----------------------------------------------------------------------
    def search(
        self, vector: npt.NDArray[np.float32], k: int, *, allowed: IdFilter | None = None
    ) -> tuple[Ids, Scores]:
        n = self._index.ntotal
        count = allowed.count if allowed is not None else n
        wanted = min(k, n, count)
        if wanted <= 0:
            return _empty()
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, self.dim)
        if self._codes is None or (allowed is not None and count < SELECTIVE * n):
            return self._exact(query, wanted, allowed)
        depth = max(self.rerank, wanted, n // RERANK_PER)
        positions, candidates = self._candidates(query, depth, allowed)
        exact = self._full_vectors()[positions] @ query[0]
        # Best first; equal scores in storage order (positions ascend within them).
        order = np.lexsort((positions, -exact))[:wanted]
        return candidates[order], exact[order].astype(np.float32)

    def _candidates(
        self, query: Matrix, depth: int, allowed: IdFilter | None
    ) -> tuple[npt.NDArray[np.int64], Ids]:
        """Positions and ids of the allowed vectors whose codes score at least the
        ``depth``-th best allowed code score: every vector tied at that score is in,
        so the set depends on the stored vectors, not on which position won a tie."""
        n = self._index.ntotal
        count = allowed.count if allowed is not None else n
        need = min(depth, count)
        # Half again as many codes as needed (a margin past ties at the cut), scaled
        # up by the share of ids the filter allows; four times more when short.
        fetch = math.ceil(1.5 * depth * n / max(count, 1))
        while True:
            fetch = min(fetch, n)
            approx, found = self._scanner().search(query, fetch)
            approx, positions = approx[0], found[0]
            real = positions >= 0
            approx, positions = approx[real], positions[real]
            # Codes left unseen score at most the worst one seen.
            floor = approx.min() if len(approx) else -np.inf
            candidates = self._ids()[positions]
            if allowed is not None:
                keep = allowed.allows(candidates)
                approx, positions, candidates = approx[keep], positions[keep], candidates[keep]
            if fetch >= n:
                return positions, candidates  # every code seen: nothing cut
            if len(positions) >= need:
                cut = np.sort(approx)[::-1][need - 1]
                if floor < cut:  # no unseen code can reach the cut, nor tie with it
                    inside = approx >= cut
                    return positions[inside], candidates[inside]
                fetch *= 2
            else:
                fetch *= 4

    def _exact(self, query: Matrix, wanted: int, allowed: IdFilter | None) -> tuple[Ids, Scores]:
        params = None
        if allowed is not None:
            bits = allowed.bits
            selector = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))
            params = _faiss.SearchParameters(sel=selector)
        scores, ids = self._index.search(query, wanted, params=params)
        keep = ids[0] >= 0
        return ids[0][keep].astype(np.int64), scores[0][keep].astype(np.float32)

    def within(self, vector: npt.NDArray[np.float32], radius: float) -> tuple[Ids, Scores]:
        if self._index.ntotal == 0:
            return _empty()
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, self.dim)
        # range_search keeps scores strictly above the radius; nudge it down one ulp.
        below = float(np.nextafter(np.float32(radius), np.float32(-np.inf)))
        _lims, scores, ids = self._index.range_search(query, below)
        keep = scores >= np.float32(radius)
        return ids[keep].astype(np.int64), scores[keep].astype(np.float32)

    # -- contents ------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> Ids:
        return self._ids().copy()

    def _ids(self) -> Ids:
        # Kept between changes: a compressed search maps positions to ids with it.
        if self._id_array is None:
            self._id_array = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        return self._id_array

    def vectors(self) -> tuple[Ids, Matrix]:
        return self.ids(), self._full_vectors().copy()

    # -- saving --------------------------------------------------------------------------
    def save(self, state: str) -> None:
        def index_file(out: BinaryIO) -> None:
            # Streamed through Python's file: a full disk raises here, where
            # faiss's own writer could leave a short file and carry on.
            writer = _faiss.PyCallbackIOWriter(out.write)
            faiss.write_index(self._index, writer)
            if self._codes is not None:
                faiss.write_index(self._codes, writer)

        def stamp(out: BinaryIO) -> None:
            out.write(json.dumps({"state": state, "dim": self.dim}).encode())

        try:
            write_atomically(self.path, index_file)
            write_atomically(self.meta_path, stamp)
        except (OSError, RuntimeError) as exc:
            raise StoreError(f"cannot write the vector index {self.path}: {exc}") from exc
        self._state = state
