"""The retained state of a few-shot selection, exact unlearning and persistence.

Deleting an example returns the state a fresh :meth:`Selection.fit` without it
would give, bit for bit (design note ``fewshot.md``): a k-means++ seed forces a
refit; otherwise each stored iteration is replayed without the example, and
Lloyd restarts at the first iteration whose quantized centroids move. When none
moves (the fast path) the work is O(T k d), whatever the number of examples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import ClassVar, Self

import numpy as np

from kbase.errors import InputError, NotFoundError, StoreError
from kbase.fewshot import codec
from kbase.fewshot.chunked import Chunked
from kbase.fewshot.kmeans import Iteration, Members, QKMeans, nearest
from kbase.fewshot.params import IntArray, Params
from kbase.hashing import sha256_hex

# Squared distances are summed in int64; keep a margin below 2**63.
_DIST_LIMIT = 2**62


@dataclass
class Trace:
    """What one :meth:`Selection.unlearn` call did, for tests and benchmarks.

    Never part of a selection: which path a deletion took is a function of the
    deleted example, so keeping it would leak the example.

    ``path`` is "fast", "seed-refit", "restart@t" (Lloyd rerun from iteration t)
    or "small" (at most k examples left: all are selected); ``work`` counts the
    coordinate operations of the replay and ``recomputed`` the cluster centroids
    it recomputed.
    """

    path: str = ""
    work: int = 0
    recomputed: int = 0


@dataclass(frozen=True, eq=False)
class Selection:
    """k examples chosen by quantized k-means, one per cluster; immutable.

    Holds the examples (ids sorted, fixed-point vectors), the k-means++ seeds'
    ids, every Lloyd iteration's sums, counts and quantized centroids, and each
    final cluster's members sorted by distance. With at most k examples there are
    no clusters and every example is selected.
    """

    params: Params
    dim: int
    pool: Chunked[str]
    seeds: tuple[str, ...]
    iterations: tuple[Iteration, ...]
    members: Members

    algorithm: ClassVar[type[QKMeans]] = QKMeans

    @classmethod
    def fit(cls, ids: Sequence[str], vectors_fixed: IntArray, params: Params) -> Self:
        """Select examples from ``ids`` with fixed-point ``vectors_fixed`` (row i for ids[i]).

        The result does not depend on the order of the input.
        """
        vectors = np.asarray(vectors_fixed)
        if vectors.ndim != 2 or vectors.shape[0] != len(ids) or vectors.shape[1] < 1:
            raise InputError(f"fewshot needs one vector per id: {len(ids)} ids, {vectors.shape}")
        if vectors.dtype != np.int64:
            raise InputError("fewshot vectors must be int64 fixed point: use quantize_vectors")
        if len(set(ids)) != len(ids) or not all(isinstance(i, str) for i in ids):
            raise InputError("fewshot example ids must be distinct strings")
        order = sorted(range(len(ids)), key=ids.__getitem__)
        rows = vectors[order]
        cls._check_range(rows, params)
        pool = Chunked.build([ids[i] for i in order], rows, dim=vectors.shape[1])
        return cls._from_pool(params, pool)

    @staticmethod
    def _check_range(rows: IntArray, params: Params) -> None:
        top = int(np.max(np.abs(rows))) if rows.size else 0
        # Centroids stay within the data's range plus one lattice step per iteration.
        spread = 2 * top + 2 * (params.max_iter + 1) * params.eps_fixed
        if rows.shape[1] * spread * spread >= _DIST_LIMIT:
            raise InputError("fewshot vectors too large for exact int64 distances: lower scale")

    @classmethod
    def _from_pool(cls, params: Params, pool: Chunked[str]) -> Self:
        if len(pool) <= params.k:
            return cls(params, pool.dim, pool, (), (), ())
        ids = pool.to_list()
        X = pool.matrix()
        algo = cls.algorithm(params, pool.dim)
        rows = algo.race(ids, X)
        iterations = algo.lloyd(X, X[rows], 1, ())
        return cls._finish(params, pool, ids, X, tuple(ids[j] for j in rows), iterations)

    @classmethod
    def _finish(
        cls,
        params: Params,
        pool: Chunked[str],
        ids: list[str],
        X: IntArray,
        seeds: tuple[str, ...],
        iterations: tuple[Iteration, ...],
    ) -> Self:
        algo = cls.algorithm(params, pool.dim)
        final = algo.centroids(len(iterations), iterations[-1].index)
        return cls(params, pool.dim, pool, seeds, iterations, algo.members(ids, X, final))

    def unlearn(self, example_id: str, *, trace: Trace | None = None) -> Self:
        """The selection a fresh fit without ``example_id`` would give, bit for bit.

        Raises NotFoundError for an unknown id. ``trace``, if given, receives the
        path taken and the work done.
        """
        trace = trace if trace is not None else Trace()
        trace.path, trace.work, trace.recomputed = "", 0, 0
        if self.pool.locate(example_id) is None:
            raise NotFoundError(f"no few-shot example {example_id!r}: list them with chosen()")
        x = self.pool.row(example_id)
        pool = self.pool.remove(example_id)
        if len(pool) <= self.params.k or not self.iterations:
            trace.path = "small"
            return self._from_pool(self.params, pool)
        if example_id in self.seeds:
            # Its removal changes the race; redraws would not be a fresh fit's.
            trace.path = "seed-refit"
            return self._from_pool(self.params, pool)
        k, d, n = self.params.k, self.dim, len(pool)
        algo = self.algorithm(self.params, d)
        prev = np.stack([self.pool.row(s) for s in self.seeds])
        kept: list[Iteration] = []
        for t, it in enumerate(self.iterations, start=1):
            a, _ = nearest(x, prev)
            sums, counts = algo.remove_row(it.sums, it.counts, a, x)
            # m = gamma n / k changed with n, so every cluster is recomputed.
            index = algo.centroid_index(sums, counts, prev, n, t)
            trace.work += 3 * k * d + d + 1
            trace.recomputed += k
            if self._moved(index, it.index, a):
                trace.path = f"restart@{t}"
                # Same phases, same centroids before t: a fresh fit's run from here.
                X = pool.matrix()
                iterations = algo.lloyd(X, prev, t, kept)
                return self._finish(self.params, pool, pool.to_list(), X, self.seeds, iterations)
            kept.append(Iteration(sums, counts, it.index))
            prev = algo.centroids(t, it.index)
        a, dist = nearest(x, prev)
        trace.work += k * d + 1
        trace.path = "fast"
        shrunk = self.members[a].remove((dist, example_id))
        members = (*self.members[:a], shrunk, *self.members[a + 1 :])
        return replace(self, pool=pool, iterations=tuple(kept), members=members)

    def _moved(self, new: IntArray, old: IntArray, cluster: int) -> bool:
        """Whether any quantized centroid differs from the stored one."""
        return not np.array_equal(new, old)

    def __len__(self) -> int:
        return len(self.pool)

    def ids(self) -> list[str]:
        """Every example id, sorted."""
        return self.pool.to_list()

    def chosen(self) -> list[str]:
        """The selected example ids, in the prompt's order (sorted by id).

        Each non-empty cluster contributes its member nearest the centroid (ties:
        smallest id); with at most k examples, all of them.
        """
        if not self.iterations:
            return self.pool.to_list()
        return sorted(first[1] for m in self.members if (first := m.first()) is not None)

    def to_bytes(self) -> bytes:
        """Canonical serialization of the whole state (equal states, equal bytes)."""
        return codec.encode(
            self.params,
            self.dim,
            self.pool.to_list(),
            self.pool.matrix(),
            self.seeds,
            self.iterations,
            [[key[1] for key in m.to_list()] for m in self.members],
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Inverse of :meth:`to_bytes`; StoreError when the bytes are not a valid state."""
        parts = codec.decode(data)
        pool = Chunked.build(parts.ids, parts.vectors, dim=parts.dim)
        if not parts.iterations:
            return cls(parts.params, parts.dim, pool, (), (), ())
        algo = cls.algorithm(parts.params, parts.dim)
        last = len(parts.iterations)
        final = algo.centroids(last, parts.iterations[-1].index)
        X = pool.matrix()
        members = algo.members(parts.ids, X, final)
        restored = cls(parts.params, parts.dim, pool, parts.seeds, parts.iterations, members)
        if [[key[1] for key in m.to_list()] for m in members] != parts.members:
            raise StoreError("fewshot state members do not match its centroids: refit")
        return restored

    def state_hash(self) -> str:
        """``sha256:<hex>`` of :meth:`to_bytes`."""
        return "sha256:" + sha256_hex(self.to_bytes())
