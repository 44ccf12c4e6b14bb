"""Quantized k-means (Ginart et al., NeurIPS 2019) on fixed-point vectors.

Every quantity is an integer or an exact rational, every random draw is keyed
by (seed, tag, step, id), and the loop stops only when the quantized centroids
stop changing (never on the loss): so a run is a pure function of the set of
examples, and the unlearning check in ``selection.py`` can replay it.

The methods that touch arithmetic or randomness are separate so that tests can
swap in known-bad variants and see the exactness checks fail.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from kbase.fewshot.chunked import Chunked
from kbase.fewshot.keyed_random import BITS, keyed_bits, keyed_uniforms
from kbase.fewshot.params import IntArray, Params

FloatArray = npt.NDArray[np.float64]
Members = tuple[Chunked[tuple[int, str]], ...]


@functools.lru_cache(maxsize=4096)
def _phase(seed: int, t: int, dim: int, eps_fixed: int) -> tuple[int, ...]:
    # Drawn from (seed, "phase", t) only: the lattice never depends on the data.
    bits = keyed_bits(seed, "phase", t, [str(j) for j in range(dim)])
    return tuple((b * eps_fixed) >> BITS for b in bits)


@dataclass(frozen=True, eq=False)
class Iteration:
    """One Lloyd iteration: each cluster's sum and count, and its quantized
    centroid as the index of a point of that iteration's lattice."""

    sums: npt.NDArray[Any]
    counts: IntArray
    index: IntArray


def sq_dists(X: IntArray, C: IntArray) -> IntArray:
    """Exact squared distances, shape (len(X), len(C))."""
    out = np.empty((X.shape[0], C.shape[0]), dtype=np.int64)
    for a in range(C.shape[0]):
        diff = X - C[a]
        out[:, a] = np.einsum("ij,ij->i", diff, diff)
    return out


def nearest(x: IntArray, C: IntArray) -> tuple[int, int]:
    """(cluster, squared distance) of the centroid nearest ``x``; ties: lowest index."""
    diff = C - x
    d2 = np.einsum("ij,ij->i", diff, diff)
    a = int(np.argmin(d2))
    return a, int(d2[a])


class QKMeans:
    """The algorithm for one setting of :class:`Params` and one dimension."""

    def __init__(self, params: Params, dim: int) -> None:
        self.params = params
        self.dim = dim

    def phase(self, t: int) -> IntArray:
        """Iteration t's lattice offset, in [0, eps) fixed-point units per coordinate."""
        p = self.params
        return np.array(_phase(p.seed, t, self.dim, p.eps_fixed), dtype=np.int64)

    def centroids(self, t: int, index: IntArray) -> IntArray:
        """Lattice indices of iteration t to fixed-point coordinates."""
        return self.phase(t) + self.params.eps_fixed * index

    def uniforms(self, tag: str, step: int, ids: Sequence[str]) -> FloatArray:
        """U(seed, tag, step, id) for each id."""
        return keyed_uniforms(self.params.seed, tag, step, ids)

    def race(self, ids: Sequence[str], X: IntArray) -> list[int]:
        """k-means++ seeding as an exponential race; rows of the seeds, in step order.

        At step s each example draws E = -log U(seed, "kpp", s, id) and the seed is
        argmin E / w (w = 1 at the first step, else the squared distance to the
        nearest seed; ties: smallest id, i.e. lowest row). An example that never
        wins leaves every winner unchanged when it is removed.
        """
        n = len(ids)
        taken = np.zeros(n, dtype=bool)
        best = np.zeros(n, dtype=np.int64)
        chosen: list[int] = []
        for s in range(1, min(self.params.k, n) + 1):
            # math.log per element: the same bits whatever the array's length.
            e = np.array([-math.log(u) for u in self.uniforms("kpp", s, ids)])
            if s == 1:
                key = e.copy()
            else:
                w = best.astype(np.float64)
                key = np.full(n, np.inf)
                np.divide(e, w, out=key, where=w > 0)
            key[taken] = np.inf
            if not np.isfinite(key).any():
                # Every example left duplicates a seed: a uniform pick among them.
                key = e.copy()
                key[taken] = np.inf
            j = int(np.argmin(key))
            chosen.append(j)
            taken[j] = True
            d2 = sq_dists(X, X[j : j + 1])[:, 0]
            best = d2 if s == 1 else np.minimum(best, d2)
        return chosen

    def cluster_sums(self, X: IntArray, labels: IntArray) -> tuple[npt.NDArray[Any], IntArray]:
        """Exact integer sum and count of each cluster."""
        k = self.params.k
        sums = np.zeros((k, X.shape[1]), dtype=np.int64)
        np.add.at(sums, labels, X)
        return sums, np.bincount(labels, minlength=k).astype(np.int64)

    def remove_row(
        self, sums: npt.NDArray[Any], counts: IntArray, a: int, x: IntArray
    ) -> tuple[npt.NDArray[Any], IntArray]:
        """The sums and counts without ``x``, a member of cluster ``a``."""
        sums = sums.copy()
        counts = counts.copy()
        sums[a] -= x
        counts[a] -= 1
        return sums, counts

    def centroid_index(
        self, sums: npt.NDArray[Any], counts: IntArray, prev: IntArray, n: int, t: int
    ) -> IntArray:
        """Quantized centroids of iteration t, as lattice indices.

        mean = S / N; an empty cluster keeps ``prev``; a cluster with N < m =
        gamma n / k becomes prev + (N / m)(mean - prev). Each coordinate c is then
        rounded (half up) to the lattice phase_t + eps Z. All in exact integers.
        """
        k = self.params.k
        eps = self.params.eps_fixed
        ratio = self.params.gamma_ratio
        p, q = ratio.numerator, ratio.denominator
        theta = [int(v) for v in self.phase(t)]
        out = np.empty((k, self.dim), dtype=np.int64)
        for a in range(k):
            count = int(counts[a])
            row = [int(v) for v in sums[a]]
            old = [int(v) for v in prev[a]]
            if count == 0:
                nums, den = old, 1
            elif count * k * q < p * n:
                # prev + (S/N - prev) * N / m  with  m = p n / (q k)
                den = p * n
                nums = [o * den + (s - count * o) * k * q for s, o in zip(row, old, strict=True)]
            else:
                nums, den = row, count
            out[a] = [
                (2 * (v - th * den) + eps * den) // (2 * eps * den)
                for v, th in zip(nums, theta, strict=True)
            ]
        return out

    def lloyd(
        self, X: IntArray, prev: IntArray, start: int, history: Sequence[Iteration]
    ) -> tuple[Iteration, ...]:
        """Iterations ``start``..T from the centroids ``prev`` of iteration start - 1."""
        done = list(history)
        n = X.shape[0]
        for t in range(start, self.params.max_iter + 1):
            labels = np.argmin(sq_dists(X, prev), axis=1)
            sums, counts = self.cluster_sums(X, labels)
            index = self.centroid_index(sums, counts, prev, n, t)
            done.append(Iteration(sums, counts, index))
            current = self.centroids(t, index)
            if np.array_equal(current, prev):
                break
            prev = current
        return tuple(done)

    def members(self, ids: Sequence[str], X: IntArray, C: IntArray) -> Members:
        """Each cluster's members by (squared distance to its centroid, id)."""
        n = len(ids)
        d2 = sq_dists(X, C)
        labels = np.argmin(d2, axis=1)
        dist = d2[np.arange(n), labels]
        # Rows are sorted by id, so the row number breaks distance ties by id.
        order = np.lexsort((np.arange(n), dist, labels))
        bounds = np.cumsum(np.bincount(labels, minlength=self.params.k))
        out: list[Chunked[tuple[int, str]]] = []
        lo = 0
        for hi in bounds.tolist():
            rows = order[lo:hi].tolist()
            out.append(Chunked.build([(int(dist[i]), ids[i]) for i in rows]))
            lo = hi
        return tuple(out)
