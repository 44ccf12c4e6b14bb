"""Exact unlearning of few-shot examples (kbase.fewshot; design note fewshot.md).

The main claim: ``fit(D).unlearn(x)`` is, bit for bit, ``fit(D without x)``,
compared as a hash of the canonical serialization of the whole state and as the
selected examples. Known-bad variants live here too, to show the checks would
catch them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from kbase.errors import ConfigError, InputError, NotFoundError, StoreError
from kbase.fewshot import Params, Selection, Trace, quantize_vectors
from kbase.fewshot.keyed_random import keyed_uniform, keyed_uniforms
from kbase.fewshot.kmeans import QKMeans

IntArray = npt.NDArray[np.int64]
KINDS = ("normal", "grid", "blobs", "dups")


def dataset(seed: int, n: int, d: int, kind: str) -> IntArray:
    """Random fixed-point data; "grid" and "dups" make ties and identical vectors."""
    rng = np.random.default_rng(seed)
    if kind == "normal":
        v = rng.normal(size=(n, d))
    elif kind == "grid":
        v = rng.integers(-2, 3, size=(n, d)).astype(np.float64)
    elif kind == "blobs":
        centers = rng.normal(scale=4.0, size=(3, d))
        v = centers[rng.integers(0, 3, n)] + rng.normal(scale=0.05, size=(n, d))
    else:
        base = rng.normal(size=(max(1, n // 5), d))
        v = base[rng.integers(0, len(base), n)]
    return quantize_vectors(v)


def names(n: int) -> list[str]:
    return [f"ex-{i}" for i in range(n)]


def without(ids: Sequence[str], X: IntArray, gone: set[str]) -> tuple[list[str], IntArray]:
    keep = [i for i, e in enumerate(ids) if e not in gone]
    return [ids[i] for i in keep], X[keep]


def same(a: Selection, b: Selection) -> bool:
    return a.state_hash() == b.state_hash() and a.chosen() == b.chosen()


def refit_matches(sel_cls: type[Selection], ids: list[str], X: IntArray, p: Params, x: str) -> bool:
    """Whether ``sel_cls.fit(D).unlearn(x)`` equals ``sel_cls.fit(D without x)``."""
    left = sel_cls.fit(ids, X, p).unlearn(x)
    return same(left, sel_cls.fit(*without(ids, X, {x}), p))


@st.composite
def cases(draw: st.DrawFn, max_n: int = 60) -> tuple[list[str], IntArray, Params]:
    n = draw(st.integers(1, max_n) | st.integers(max_n // 3, max_n))
    d = draw(st.integers(2, 8))
    X = dataset(draw(st.integers(0, 2**32 - 1)), n, d, draw(st.sampled_from(KINDS)))
    p = Params(
        k=draw(st.integers(1, 6)),
        eps=draw(st.sampled_from([0.05, 0.25, 1.0])),
        max_iter=draw(st.integers(1, 6)),
        gamma=draw(st.sampled_from([0.0, 0.2])),
        seed=draw(st.integers(0, 2**32 - 1)),
    )
    return names(n), X, p


# --- the exactness properties -------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(case=cases(), pick=st.integers(0, 10**6))
def test_unlearn_equals_refit(case: tuple[list[str], IntArray, Params], pick: int) -> None:
    ids, X, p = case
    x = ids[pick % len(ids)]
    sel = Selection.fit(ids, X, p)
    trace = Trace()
    left = sel.unlearn(x, trace=trace)
    event(trace.path if not trace.path.startswith("restart@") else "restart")
    right = Selection.fit(*without(ids, X, {x}), p)
    assert left.state_hash() == right.state_hash()
    assert left.chosen() == right.chosen()
    # x is gone from the state: its id is nowhere in the bytes.
    assert json.dumps(x).encode() not in left.to_bytes()
    assert x not in left.chosen() and x not in left.ids()
    # the original is untouched (copy-on-write)
    assert sel.state_hash() == Selection.fit(ids, X, p).state_hash()


@settings(max_examples=60, deadline=None)
@given(case=cases(max_n=30), order_seed=st.integers(0, 2**32 - 1))
def test_deletion_sequences_equal_refit_at_every_step(
    case: tuple[list[str], IntArray, Params], order_seed: int
) -> None:
    ids, X, p = case
    order = list(np.random.default_rng(order_seed).permutation(ids))
    sel = Selection.fit(ids, X, p)
    gone: set[str] = set()
    for x in order:
        sel = sel.unlearn(x)
        gone.add(x)
        assert same(sel, Selection.fit(*without(ids, X, gone), p))
    assert sel.chosen() == [] and len(sel) == 0


@settings(max_examples=40, deadline=None)
@given(case=cases(max_n=40), order_seed=st.integers(0, 2**32 - 1))
def test_deletions_compose_in_any_order(
    case: tuple[list[str], IntArray, Params], order_seed: int
) -> None:
    ids, X, p = case
    rng = np.random.default_rng(order_seed)
    doomed = list(rng.choice(ids, size=min(len(ids), 5), replace=False))
    one = two = Selection.fit(ids, X, p)
    for x in doomed:
        one = one.unlearn(x)
    for x in reversed(doomed):
        two = two.unlearn(x)
    assert same(one, two)


@settings(max_examples=60, deadline=None)
@given(case=cases(), order_seed=st.integers(0, 2**32 - 1))
def test_fit_does_not_depend_on_input_order(
    case: tuple[list[str], IntArray, Params], order_seed: int
) -> None:
    ids, X, p = case
    perm = np.random.default_rng(order_seed).permutation(len(ids))
    shuffled = Selection.fit([ids[i] for i in perm], X[perm], p)
    assert same(shuffled, Selection.fit(ids, X, p))


@settings(max_examples=60, deadline=None)
@given(case=cases())
def test_bytes_round_trip(case: tuple[list[str], IntArray, Params]) -> None:
    ids, X, p = case
    sel = Selection.fit(ids, X, p)
    back = Selection.from_bytes(sel.to_bytes())
    assert back.to_bytes() == sel.to_bytes() and back.chosen() == sel.chosen()
    x = ids[-1]
    assert same(back.unlearn(x), sel.unlearn(x))


# --- every path, on purpose ---------------------------------------------------


def unlearned(sel: Selection, x: str) -> tuple[Selection, str]:
    trace = Trace()
    return sel.unlearn(x, trace=trace), trace.path


def check_path(ids: list[str], X: IntArray, p: Params, x: str, path: str) -> Selection:
    """Unlearn x, assert the path taken and that the result equals a refit."""
    sel = Selection.fit(ids, X, p)
    left, taken = unlearned(sel, x)
    assert taken == path
    assert same(left, Selection.fit(*without(ids, X, {x}), p))
    return left


def copies(points: Sequence[Sequence[float]], each: int) -> tuple[list[str], IntArray]:
    """``each`` identical copies of every point: removing one leaves every mean unchanged."""
    X = quantize_vectors(np.repeat(np.array(points, dtype=np.float64), each, axis=0))
    return names(len(X)), X


CORNERS = [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]


def test_fast_path_on_duplicates() -> None:
    ids, X = copies(CORNERS, 10)
    p = Params(k=3, eps=0.5, max_iter=5, gamma=0.0, seed=3)
    sel = Selection.fit(ids, X, p)
    x = next(i for i in ids if i not in sel.seeds and i not in sel.chosen())
    left = check_path(ids, X, p, x, "fast")
    assert left.chosen() == sel.chosen()


def test_chosen_example_is_replaced_on_the_fast_path() -> None:
    ids, X = copies(CORNERS, 10)
    for seed in range(50):
        p = Params(k=3, eps=0.5, max_iter=5, gamma=0.0, seed=seed)
        sel = Selection.fit(ids, X, p)
        free = [c for c in sel.chosen() if c not in sel.seeds]
        if free:
            left = check_path(ids, X, p, free[0], "fast")
            assert free[0] not in left.chosen() and len(left.chosen()) == 3
            return
    pytest.fail("no chosen example that is not a seed")


def test_seed_forces_refit() -> None:
    ids, X = copies(CORNERS, 10)
    p = Params(k=3, eps=0.5, max_iter=5, gamma=0.2, seed=3)
    for s in Selection.fit(ids, X, p).seeds:
        check_path(ids, X, p, s, "seed-refit")


def paths_of(ids: list[str], X: IntArray, p: Params) -> dict[str, str]:
    sel = Selection.fit(ids, X, p)
    return {x: unlearned(sel, x)[1] for x in ids}


def test_restart_at_the_first_iteration() -> None:
    ids = names(20)
    X = dataset(1, 20, 2, "normal")
    p = Params(k=2, eps=0.05, max_iter=4, gamma=0.0, seed=1)
    x = next(x for x, path in paths_of(ids, X, p).items() if path == "restart@1")
    check_path(ids, X, p, x, "restart@1")


def test_restart_at_a_later_iteration() -> None:
    for seed in range(20):
        ids = names(30)
        X = dataset(seed, 30, 2, "normal")
        p = Params(k=4, eps=0.25, max_iter=6, gamma=0.2, seed=seed)
        later = [(x, path) for x, path in paths_of(ids, X, p).items() if path[-2:] != "@1"]
        later = [(x, path) for x, path in later if path.startswith("restart@")]
        if later:
            check_path(ids, X, p, *later[0])
            return
    pytest.fail("no deletion restarted after the first iteration")


def test_singleton_cluster_of_a_seed() -> None:
    ids, X = copies(CORNERS, 10)
    ids, X = [*ids, "lonely"], np.vstack([X, quantize_vectors([[30.0, 30.0]])])
    p = Params(k=4, eps=0.5, max_iter=5, gamma=0.2, seed=0)
    sel = Selection.fit(ids, X, p)
    assert "lonely" in sel.seeds and "lonely" in sel.chosen()
    left = check_path(ids, X, p, "lonely", "seed-refit")
    assert "lonely" not in left.chosen()


def test_removing_the_last_member_of_a_cluster() -> None:
    for seed in range(300):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(8, 25))
        ids, X = names(n), dataset(seed, n, 2, "normal")
        p = Params(k=6, eps=0.05, max_iter=6, gamma=0.0, seed=seed)
        sel = Selection.fit(ids, X, p)
        alone = [m.first() for m in sel.members if len(m) == 1]
        lonely = [key[1] for key in alone if key is not None and key[1] not in sel.seeds]
        if lonely:
            assert refit_matches(Selection, ids, X, p, lonely[0])
            return
    pytest.fail("no non-seed example alone in its cluster")


def test_all_identical_vectors() -> None:
    ids = names(12)
    X = quantize_vectors(np.ones((12, 3)))
    p = Params(k=3, eps=0.25, max_iter=4, gamma=0.2, seed=5)
    sel = Selection.fit(ids, X, p)
    assert len(sel.seeds) == 3 and len(sel.chosen()) == 1
    for x in ids:
        assert refit_matches(Selection, ids, X, p, x)


def test_small_pools_select_everything_and_delete_to_zero() -> None:
    ids = ["user-17", "builtin-extract-1", "user-2"]
    X = dataset(0, 3, 4, "normal")
    p = Params(k=5, eps=0.25)
    sel = Selection.fit(ids, X, p)
    assert sel.chosen() == sorted(ids)
    for x in ids:
        sel, path = unlearned(sel, x)
        assert path == "small"
    assert sel.chosen() == [] and same(sel, Selection.fit([], X[:0], p))


def test_crossing_down_to_k_examples() -> None:
    ids, X = names(6), dataset(2, 6, 3, "normal")
    p = Params(k=5, eps=0.25, gamma=0.2)
    left, path = unlearned(Selection.fit(ids, X, p), "ex-3")
    assert path == "small" and left.chosen() == sorted(set(ids) - {"ex-3"})
    assert same(left, Selection.fit(*without(ids, X, {"ex-3"}), p))


def test_unknown_id() -> None:
    sel = Selection.fit(names(10), dataset(0, 10, 2, "normal"), Params(k=3, eps=0.25))
    with pytest.raises(NotFoundError):
        sel.unlearn("nope")
    with pytest.raises(NotFoundError):
        sel.unlearn("ex-1").unlearn("ex-1")


def test_bad_input() -> None:
    X = dataset(0, 3, 2, "normal")
    with pytest.raises(InputError):
        Selection.fit(["a", "a", "b"], X, Params(k=2, eps=0.5))
    with pytest.raises(InputError):
        Selection.fit(["a", "b"], X, Params(k=2, eps=0.5))
    with pytest.raises(InputError):
        Selection.fit(["a", "b", "c"], X.astype(np.float64), Params(k=2, eps=0.5))
    with pytest.raises(ConfigError):
        Params(k=0, eps=0.5)
    with pytest.raises(ConfigError):
        Params(k=2, eps=1e-9)
    with pytest.raises(StoreError):
        Selection.from_bytes(b"not a state")
    with pytest.raises(StoreError):
        Selection.from_bytes(
            Selection.fit(["a", "b", "c"], X, Params(k=2, eps=0.5)).to_bytes()[:-3]
        )


def test_keyed_uniforms_are_pure_functions_of_the_key() -> None:
    keys = ["a", "b", "c"]
    many = keyed_uniforms(7, "kpp", 2, keys)
    assert list(many) == [keyed_uniform(7, "kpp", 2, key) for key in keys]
    assert keyed_uniforms(7, "kpp", 2, ["c"])[0] == many[2]
    assert keyed_uniform(7, "kpp", 3, "a") != many[0]
    assert all(0 < u < 1 for u in many)


# --- the fast path's work does not grow with the pool -------------------------


def fast_trace(each: int) -> tuple[Trace, int]:
    ids, X = copies([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]], each)
    p = Params(k=4, eps=0.5, max_iter=6, gamma=0.0, seed=11)
    sel = Selection.fit(ids, X, p)
    x = next(i for i in ids if i not in sel.seeds)
    trace = Trace()
    sel.unlearn(x, trace=trace)
    assert trace.path == "fast"
    return trace, len(sel.iterations)


def test_fast_path_work_is_flat_in_n() -> None:
    small, t_small = fast_trace(50)  # n = 200
    large, t_large = fast_trace(500)  # n = 2000
    assert t_small == t_large
    assert small.work == large.work and small.recomputed == large.recomputed == 4 * t_small


# --- known-bad variants must fail the exactness check -------------------------


class OnlyOwnCluster(Selection):
    """Trap: compares only x's cluster, though m = gamma n / k moved them all."""

    def _moved(self, new: IntArray, old: IntArray, cluster: int) -> bool:
        return not np.array_equal(new[cluster], old[cluster])


class FloatSumsKMeans(QKMeans):
    """Trap: float running sums of the real-valued vectors, updated by subtraction."""

    def cluster_sums(self, X: IntArray, labels: IntArray) -> tuple[npt.NDArray[Any], IntArray]:
        sums = np.zeros((self.params.k, X.shape[1]))
        np.add.at(sums, labels, X / self.params.scale)
        return sums, np.bincount(labels, minlength=self.params.k).astype(np.int64)

    def remove_row(
        self, sums: npt.NDArray[Any], counts: IntArray, a: int, x: IntArray
    ) -> tuple[npt.NDArray[Any], IntArray]:
        sums, counts = sums.copy(), counts.copy()
        sums[a] -= x / self.params.scale
        counts[a] -= 1
        return sums, counts

    def centroid_index(
        self, sums: npt.NDArray[Any], counts: IntArray, prev: IntArray, n: int, t: int
    ) -> IntArray:
        fixed = np.rint(sums * self.params.scale).astype(np.int64)
        return super().centroid_index(fixed, counts, prev, n, t)


class FloatSums(Selection):
    algorithm = FloatSumsKMeans


class SequentialKMeans(QKMeans):
    """Trap: a sequential generator hands draws out by position, not by id."""

    def uniforms(self, tag: str, step: int, ids: Sequence[str]) -> npt.NDArray[np.float64]:
        draws = np.random.default_rng([self.params.seed, step]).random(len(ids))
        return np.maximum(draws, 1e-300)


class Sequential(Selection):
    algorithm = SequentialKMeans


Search = Callable[[int], tuple[list[str], IntArray, Params]]


def counterexample(variant: type[Selection], make: Search, tries: int = 200) -> bool:
    """Whether some deletion in some generated case breaks exactness for ``variant``,
    while the real implementation stays exact on the same cases."""
    for seed in range(tries):
        ids, X, p = make(seed)
        for x in ids[:: max(1, len(ids) // 8)]:
            assert refit_matches(Selection, ids, X, p, x)
            if not refit_matches(variant, ids, X, p, x):
                return True
    return False


def balanced_case(seed: int) -> tuple[list[str], IntArray, Params]:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(15, 50))
    return names(n), dataset(seed, n, 3, "normal"), Params(k=5, eps=1.0, gamma=0.2, seed=seed)


def float_case(seed: int) -> tuple[list[str], IntArray, Params]:
    # A decimal scale: coordinates are not dyadic, as float embeddings generally are not.
    rng = np.random.default_rng(seed)
    n = int(rng.integers(15, 50))
    X = quantize_vectors(rng.normal(size=(n, 4)), scale=10**6)
    return names(n), X, Params(k=3, eps=1.0, gamma=0.0, seed=seed, scale=10**6)


def test_checking_only_the_deleted_cluster_is_caught() -> None:
    assert counterexample(OnlyOwnCluster, balanced_case)


def test_float_running_sums_are_caught() -> None:
    assert counterexample(FloatSums, float_case)


def test_sequential_rng_is_caught() -> None:
    assert counterexample(Sequential, balanced_case)
