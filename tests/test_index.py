"""The vector index seam, one conformance suite run on every registered index kind.

What every ``VectorIndex`` promises: exact inner-product search, best first; removal
that ignores unknown ids; ``within`` inclusive at its radius; storage order for
``ids`` and ``vectors``; a save stamped with the store state that a reopen reads
back, and the strict/lenient opening rules of :mod:`kbase.index.base`. Queries here
are mostly basis vectors, so every expected score is a stored coordinate, exactly.

Besides the registered kinds, the suite runs on FAISS's compressed layout (the one
a store of many facts gets: codes scanned, candidates re-ranked exactly) with a
small test codebook, re-ranking every vector so that it must be exact; how it
re-ranks fewer is tested after the suite.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import faiss
import numpy as np
import numpy.typing as npt
import pytest

from kbase.errors import ConfigError, StoreError
from kbase.index import INDEXES, VectorIndex, get_index
from kbase.index.base import IdFilter
from kbase.index.codebook import BITS, SUBVECTORS, shipped_codebook, train_codebook
from kbase.index.faiss_index import COMPRESS_FROM, RERANK, FaissIndex
from kbase.index.numpy_index import NumpyIndex

DIM = 4
Floats = npt.NDArray[np.float32]
#: FAISS in its compressed layout from the first vector on.
COMPRESSED = "faiss-compressed"
KINDS = [*sorted(INDEXES), COMPRESSED]


def fixed_codebook(dim: int) -> Floats:
    """A fixed codebook for tests (two coordinates a sub-vector where the dimension is
    even), the same for a dimension, trained on random vectors that are none of the
    tests' stored ones."""
    subvectors = next(m for m in range(dim // 2, 0, -1) if dim % m == 0)
    return train_codebook(random_units(np.random.default_rng(dim), 1024, dim), subvectors)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def open_index(kind: str, folder: Path, dim: int = DIM, *, strict: bool = False) -> VectorIndex:
    if kind == COMPRESSED:
        codebook = fixed_codebook(dim)
        return FaissIndex(
            folder, dim, strict=strict, codebook=codebook, compress_from=0, rerank=10_000
        )
    return get_index(kind, folder, dim, strict=strict)


def ids(*values: int) -> npt.NDArray[np.int64]:
    return np.array(values, dtype=np.int64)


def rows(*vectors: tuple[float, ...]) -> Floats:
    return np.array(vectors, dtype=np.float32)


def basis(axis: int, dim: int = DIM) -> Floats:
    vector = np.zeros(dim, dtype=np.float32)
    vector[axis] = 1.0
    return vector


def f32(value: float) -> float:
    return float(np.float32(value))


def random_units(rng: np.random.Generator, n: int, dim: int) -> Floats:
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


#: Four unit vectors whose cosines to the first basis vector are 1, 0.6, 0 and 0.8.
SAMPLE_IDS = ids(10, 20, 30, 40)
SAMPLE = rows((1, 0, 0, 0), (0.6, 0.8, 0, 0), (0, 1, 0, 0), (0.8, 0, 0.6, 0))


@pytest.fixture
def sample(kind: str, tmp_path: Path) -> VectorIndex:
    index = open_index(kind, tmp_path)
    index.add(SAMPLE_IDS, SAMPLE)
    return index


# -- search --------------------------------------------------------------------------------


def test_search_returns_the_k_nearest_ids_best_first_with_their_cosines(
    sample: VectorIndex,
) -> None:
    found, scores = sample.search(basis(0), 3)
    assert found.tolist() == [10, 40, 20]
    assert scores.tolist() == [1.0, f32(0.8), f32(0.6)]
    assert (found.dtype, scores.dtype) == (np.int64, np.float32)


def test_search_with_k_larger_than_the_index_returns_every_id(sample: VectorIndex) -> None:
    found, scores = sample.search(basis(1), 100)
    assert found[:2].tolist() == [30, 20] and sorted(found[2:].tolist()) == [10, 40]
    assert scores.tolist() == [1.0, f32(0.8), 0.0, 0.0]


def test_search_with_k_zero_or_negative_returns_nothing(sample: VectorIndex) -> None:
    for k in (0, -1):
        found, scores = sample.search(basis(0), k)
        assert (found.tolist(), scores.tolist()) == ([], [])


def test_search_accepts_a_query_as_a_row_or_a_flat_vector(sample: VectorIndex) -> None:
    flat, _ = sample.search(basis(0), 2)
    row, _ = sample.search(basis(0).reshape(1, DIM), 2)
    assert flat.tolist() == row.tolist() == [10, 40]


def test_equal_scores_are_all_returned_when_k_covers_them(kind: str, tmp_path: Path) -> None:
    index = open_index(kind, tmp_path)
    index.add(ids(3, 1, 2), rows((1, 0, 0, 0), (1, 0, 0, 0), (1, 0, 0, 0)))
    index.add(ids(9), rows((0, 1, 0, 0)))
    found, scores = index.search(basis(0), 3)
    assert sorted(found.tolist()) == [1, 2, 3]  # their order among themselves: see each kind
    assert scores.tolist() == [1.0, 1.0, 1.0]


def test_numpy_breaks_ties_by_storage_order(tmp_path: Path) -> None:
    index = NumpyIndex(tmp_path, DIM)
    index.add(ids(3, 1, 2, 7), rows((1, 0, 0, 0), (0, 1, 0, 0), (1, 0, 0, 0), (1, 0, 0, 0)))
    assert index.search(basis(0), 4)[0].tolist() == [3, 2, 7, 1]
    assert index.search(basis(0), 2)[0].tolist() == [3, 2]  # the earlier-added tied ones


# -- within --------------------------------------------------------------------------------


def test_within_returns_every_id_at_or_above_the_radius(sample: VectorIndex) -> None:
    found, scores = sample.within(basis(0), 0.5)
    assert sorted(zip(found.tolist(), scores.tolist(), strict=True)) == [
        (10, 1.0),
        (20, f32(0.6)),
        (40, f32(0.8)),
    ]


def test_within_includes_a_score_exactly_at_the_radius(sample: VectorIndex) -> None:
    at = f32(0.6)
    assert sorted(sample.within(basis(0), at)[0].tolist()) == [10, 20, 40]
    one_ulp_above = float(np.nextafter(np.float32(at), np.float32(np.inf)))
    assert sorted(sample.within(basis(0), one_ulp_above)[0].tolist()) == [10, 40]


def test_within_compares_the_radius_in_float32(kind: str, tmp_path: Path) -> None:
    # The score float32(0.7) lies below the double 0.7, yet counts for the radius 0.7.
    index = open_index(kind, tmp_path)
    index.add(ids(1), rows((0.7, float(np.sqrt(0.51)), 0, 0)))
    assert f32(0.7) < 0.7
    assert index.within(basis(0), 0.7)[0].tolist() == [1]


def test_within_a_radius_above_every_score_returns_nothing(sample: VectorIndex) -> None:
    found, scores = sample.within(basis(3), 0.5)
    assert (found.tolist(), scores.tolist()) == ([], [])


# -- add, remove, ids, len, vectors --------------------------------------------------------


def test_ids_and_len_follow_storage_order_across_adds_and_removes(
    kind: str, tmp_path: Path
) -> None:
    index = open_index(kind, tmp_path)
    index.add(ids(50, 7), rows((1, 0, 0, 0), (0, 1, 0, 0)))
    index.add(ids(3), rows((0, 0, 1, 0)))
    index.remove(ids(7))
    index.add(ids(8), rows((0, 0, 0, 1)))
    assert index.ids().tolist() == [50, 3, 8]
    assert len(index) == 3


def test_removing_drops_the_ids_and_ignores_unknown_ones(sample: VectorIndex) -> None:
    sample.remove(ids(40, 999, 10, -1))
    assert sample.ids().tolist() == [20, 30]
    assert sample.search(basis(0), 4)[0].tolist() == [20, 30]
    assert sample.within(basis(0), 0.7)[0].tolist() == []


def test_adding_or_removing_no_ids_changes_nothing(sample: VectorIndex) -> None:
    sample.add(ids(), np.zeros((0, DIM), dtype=np.float32))
    sample.remove(ids())
    assert sample.ids().tolist() == SAMPLE_IDS.tolist()


def test_vectors_returns_every_id_with_its_stored_vector_bit_for_bit(
    kind: str, tmp_path: Path
) -> None:
    stored = random_units(np.random.default_rng(7), 6, DIM)
    index = open_index(kind, tmp_path)
    index.add(ids(1, 2, 3, 4, 5, 6), stored)
    index.remove(ids(2, 5))
    found, vectors = index.vectors()
    assert found.tolist() == index.ids().tolist() == [1, 3, 4, 6]
    assert vectors.dtype == np.float32 and vectors.shape == (4, DIM)
    assert vectors.tobytes() == stored[[0, 2, 3, 5]].tobytes()


def test_vectors_are_a_copy_the_caller_may_change(sample: VectorIndex) -> None:
    _, vectors = sample.vectors()
    vectors[:] = 0.0
    assert sample.search(basis(0), 1)[1].tolist() == [1.0]


def test_an_empty_index_holds_nothing_and_finds_nothing(kind: str, tmp_path: Path) -> None:
    index = open_index(kind, tmp_path)
    index.remove(ids(1, 2))
    assert len(index) == 0 and index.ids().tolist() == []
    found, vectors = index.vectors()
    assert found.tolist() == [] and vectors.shape == (0, DIM)
    for found, scores in (index.search(basis(0), 5), index.within(basis(0), -1.0)):
        assert (found.tolist(), scores.tolist()) == ([], [])
    assert (index.state, index.loaded) == (None, False)


def test_an_index_emptied_by_removal_finds_nothing(sample: VectorIndex) -> None:
    sample.remove(SAMPLE_IDS)
    assert len(sample) == 0
    assert sample.search(basis(0), 5)[0].tolist() == []
    assert sample.within(basis(0), -1.0)[0].tolist() == []


# -- save and reopen -----------------------------------------------------------------------


def test_a_saved_index_reopens_with_its_vectors_and_its_stamp(
    sample: VectorIndex, kind: str, tmp_path: Path
) -> None:
    assert (sample.state, sample.loaded) == (None, False)
    sample.save("state-1")
    assert sample.state == "state-1"
    for strict in (False, True):
        reopened = open_index(kind, tmp_path, strict=strict)
        assert (reopened.state, reopened.loaded) == ("state-1", True)
        assert reopened.vectors()[0].tolist() == SAMPLE_IDS.tolist()
        assert reopened.vectors()[1].tobytes() == SAMPLE.tobytes()
        assert reopened.search(basis(0), 2)[0].tolist() == [10, 40]


def test_an_empty_index_saves_and_reopens_empty(kind: str, tmp_path: Path) -> None:
    open_index(kind, tmp_path / "index").save("")
    reopened = open_index(kind, tmp_path / "index", strict=True)
    assert (reopened.state, reopened.loaded, len(reopened)) == ("", True, 0)
    assert reopened.vectors()[1].shape == (0, DIM)


def test_removed_ids_are_gone_after_a_save_and_reopen_and_their_bytes_too(
    kind: str, tmp_path: Path
) -> None:
    stored = random_units(np.random.default_rng(3), 5, DIM)
    index = open_index(kind, tmp_path)
    index.add(ids(1, 2, 3, 4, 5), stored)
    index.save("before")
    index.remove(ids(2, 4))
    index.save("after")
    reopened = open_index(kind, tmp_path)
    assert reopened.state == "after"
    assert reopened.ids().tolist() == [1, 3, 5]
    assert reopened.search(stored[1], 5)[0].tolist().count(2) == 0
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert stored[1].tobytes() not in on_disk and stored[3].tobytes() not in on_disk


def test_a_save_replaces_the_files_whole_and_leaves_no_temporary_file(
    sample: VectorIndex, tmp_path: Path
) -> None:
    sample.save("one")
    files = sorted(p.name for p in tmp_path.iterdir())
    sample.save("two")
    assert sorted(p.name for p in tmp_path.iterdir()) == files
    assert not any(name.endswith(".tmp") for name in files)
    assert sample.path.parent == tmp_path and sample.path.name in files


def test_a_save_creates_the_folder(kind: str, tmp_path: Path) -> None:
    index = open_index(kind, tmp_path / "a" / "b")
    index.save("s")
    assert index.path.exists()


def test_a_save_that_cannot_write_is_a_store_error(kind: str, tmp_path: Path) -> None:
    index = open_index(kind, tmp_path)
    (index.path / "in-the-way").mkdir(parents=True)  # a folder where the file goes
    with pytest.raises(StoreError, match=r"^cannot write the vector index "):
        open_index(kind, tmp_path).save("s")


# -- opening a missing or unreadable file ---------------------------------------------------


def test_a_missing_file_opens_empty_and_not_loaded_even_when_strict(
    kind: str, tmp_path: Path
) -> None:
    for strict in (False, True):
        index = open_index(kind, tmp_path / "nowhere", strict=strict)
        assert (len(index), index.state, index.loaded) == (0, None, False)
        assert not index.path.exists()


@pytest.mark.parametrize("content", [b"", b"garbage", b"PK\x03\x04 truncated"])
def test_an_unreadable_file_opens_empty_unless_strict(
    kind: str, tmp_path: Path, content: bytes
) -> None:
    open_index(kind, tmp_path).save("s")
    path = open_index(kind, tmp_path).path
    path.write_bytes(content)
    lenient = open_index(kind, tmp_path)
    assert (len(lenient), lenient.state, lenient.loaded) == (0, None, False)
    message = re.escape(f"the vector index {path} cannot be read: ")
    with pytest.raises(StoreError, match=f"^{message}"):
        open_index(kind, tmp_path, strict=True)


def test_a_truncated_file_opens_empty_unless_strict(sample: VectorIndex, kind: str) -> None:
    sample.save("s")
    whole = sample.path.read_bytes()
    for size in (len(whole) // 3, len(whole) - 1):
        sample.path.write_bytes(whole[:size])
        assert not open_index(kind, sample.path.parent).loaded
        with pytest.raises(StoreError, match="cannot be read"):
            open_index(kind, sample.path.parent, strict=True)


def test_a_file_of_another_dimension_opens_empty_unless_strict(
    sample: VectorIndex, kind: str, tmp_path: Path
) -> None:
    sample.save("s")
    assert not open_index(kind, tmp_path, DIM + 1).loaded
    with pytest.raises(StoreError, match="cannot be read"):
        open_index(kind, tmp_path, DIM + 1, strict=True)


def test_faiss_opens_vectors_without_their_stamp_only_when_strict(
    tmp_path: Path,
) -> None:
    index = FaissIndex(tmp_path, DIM)
    index.add(SAMPLE_IDS, SAMPLE)
    index.save("s")
    index.meta_path.unlink()
    assert not FaissIndex(tmp_path, DIM).loaded  # lenient: rebuilt from SQL
    strict = FaissIndex(tmp_path, DIM, strict=True)  # strict: what is on disk
    assert (strict.loaded, strict.state, strict.ids().tolist()) == (True, None, [10, 20, 30, 40])


def test_faiss_strictly_refuses_a_file_holding_another_kind_of_index(tmp_path: Path) -> None:
    path = FaissIndex(tmp_path, DIM).path
    faiss.write_index(faiss.IndexFlatIP(DIM), str(path))
    with pytest.raises(StoreError, match="IndexFlatIP, not an IndexIDMap2"):
        FaissIndex(tmp_path, DIM, strict=True)
    faiss.write_index(faiss.IndexIDMap2(faiss.IndexFlatL2(DIM)), str(path))
    with pytest.raises(StoreError, match="IndexFlatL2, not an IndexFlatIP"):
        FaissIndex(tmp_path, DIM, strict=True)


def test_faiss_vectors_list_the_duplicates_a_tampered_file_holds(tmp_path: Path) -> None:
    index = FaissIndex(tmp_path, DIM)
    index.add(ids(1, 2), rows((1, 0, 0, 0), (0, 1, 0, 0)))
    index.save("s")
    raw = faiss.read_index(str(index.path))
    raw.add_with_ids(rows((0, 0, 1, 0)), ids(1))
    faiss.write_index(raw, str(index.path))
    found, vectors = FaissIndex(tmp_path, DIM, strict=True).vectors()
    assert found.tolist() == [1, 2, 1]
    assert vectors.tolist() == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]


# -- the implementations agree ---------------------------------------------------------------


def test_every_kind_gives_the_same_results_on_random_unit_vectors(tmp_path: Path) -> None:
    rng = np.random.default_rng(20240501)
    dim, n = 32, 400
    stored = random_units(rng, n, dim)
    all_ids = rng.permutation(10 * n)[:n].astype(np.int64)
    gone = all_ids[rng.choice(n, 40, replace=False)]
    queries = random_units(rng, 25, dim)
    kept = ~np.isin(all_ids, gone)
    indexes = [open_index(name, tmp_path / name, dim) for name in KINDS]
    for index in indexes:
        index.add(all_ids[:250], stored[:250])
        index.add(all_ids[250:], stored[250:])
        index.remove(gone)
    exact = queries.astype(np.float64) @ stored[kept].astype(np.float64).T
    first, *others = indexes
    for other in others:
        assert other.vectors()[0].tolist() == first.vectors()[0].tolist()
        assert other.vectors()[1].tobytes() == first.vectors()[1].tobytes()
    for query, truth in zip(queries, exact, strict=True):
        # A radius halfway between two scores: last-bit differences cannot move an id.
        ranked = np.sort(truth)[::-1]
        radius = float(ranked[29] + ranked[30]) / 2
        results = [(index.search(query, 12), index.within(query, radius)) for index in indexes]
        (ids0, scores0), (near0, _) = results[0]
        assert ids0.tolist() == all_ids[kept][np.argsort(-truth)[:12]].tolist()
        np.testing.assert_allclose(scores0, ranked[:12], atol=1e-6)
        assert len(near0) == 30
        for (found, scores), (near, _) in results[1:]:
            assert found.tolist() == ids0.tolist()
            np.testing.assert_allclose(scores, scores0, atol=1e-6)
            assert sorted(near.tolist()) == sorted(near0.tolist())


# -- searching with a filter ----------------------------------------------------------------


def test_a_filtered_search_returns_the_best_allowed_ids_only(kind: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    stored = random_units(rng, 60, DIM)
    all_ids = np.arange(100, 160, dtype=np.int64)
    index = open_index(kind, tmp_path)
    index.add(all_ids, stored)
    allowed_ids = all_ids[rng.random(60) < 0.3]
    allowed = IdFilter.of(allowed_ids)
    query = random_units(rng, 1, DIM)[0]
    found, scores = index.search(query, 5, allowed=allowed)
    truth = stored @ query
    kept = np.isin(all_ids, allowed_ids)
    best = all_ids[kept][np.argsort(-truth[kept])[:5]]
    assert found.tolist() == best.tolist()
    np.testing.assert_allclose(scores, np.sort(truth[kept])[::-1][:5], atol=1e-6)
    assert index.search(query, 5, allowed=IdFilter.of(ids()))[0].tolist() == []
    assert index.search(query, 5, allowed=IdFilter.of(ids(999)))[0].tolist() == []


def test_an_id_filter_allows_exactly_its_ids() -> None:
    allowed = IdFilter.of(ids(0, 3, 17))
    assert allowed.count == 3
    probe = ids(-1, 0, 1, 3, 16, 17, 18, 10**9)
    assert allowed.allows(probe).tolist() == [False, True, False, True, False, True, False, False]
    assert IdFilter.of(ids()).allows(ids(0, 5)).tolist() == [False, False]


# -- saving safely ---------------------------------------------------------------------------


def test_a_save_that_fails_midway_leaves_the_previous_file_whole(
    sample: VectorIndex, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19: a full disk during a save once replaced a good index with an empty file."""
    sample.save("good")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    sample.remove(ids(10))

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(StoreError, match="No space left on device"):
        sample.save("newer")
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    reopened = open_index(kind, tmp_path, strict=True)
    assert (reopened.state, reopened.ids().tolist()) == ("good", SAMPLE_IDS.tolist())


def test_a_save_onto_a_full_disk_is_an_error_and_keeps_the_previous_file(
    sample: VectorIndex, kind: str, tmp_path: Path
) -> None:
    """The temporary file is /dev/full: every write to it fails with ENOSPC, as on a
    full disk (FAISS's own file writer used to leave a short file there unnoticed)."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    sample.save("good")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    sample.remove(ids(10))
    (tmp_path / (sample.path.name + ".tmp")).symlink_to("/dev/full")
    with pytest.raises(StoreError, match="No space left on device"):
        sample.save("newer")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert open_index(kind, tmp_path).ids().tolist() == SAMPLE_IDS.tolist()


# -- FAISS's compressed layout ----------------------------------------------------------------


def compressed(
    folder: Path, *, dim: int = 8, compress_from: int = 0, rerank: int = 16
) -> FaissIndex:
    return FaissIndex(
        folder, dim, codebook=fixed_codebook(dim), compress_from=compress_from, rerank=rerank
    )


def clustered(rng: np.random.Generator, n: int, dim: int) -> Floats:
    """Unit vectors in tight clusters of eight, as near-duplicate facts are."""
    centres = random_units(rng, n // 8, dim)
    noisy = np.repeat(centres, 8, axis=0) + 0.15 * rng.standard_normal((n, dim))
    return (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)


def results(index: VectorIndex, queries: Floats, k: int = 6) -> list[list[tuple[int, float]]]:
    out = []
    for query in queries:
        found, scores = index.search(query, k)
        out.append(list(zip(found.tolist(), scores.tolist(), strict=True)))
    return out


def test_the_layout_is_compressed_from_its_threshold_on_and_flat_below_it(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(5)
    stored = random_units(rng, 12, 8)
    index = compressed(tmp_path, compress_from=10, rerank=100)
    index.add(np.arange(1, 10, dtype=np.int64), stored[:9])
    flat = results(index, stored[:4])
    assert not index.compressed
    index.add(ids(10), stored[9:10])
    assert index.compressed and len(index) == 10
    index.remove(ids(10))
    assert not index.compressed
    assert results(index, stored[:4]) == flat
    index.add(ids(10, 11), stored[9:11])
    index.save("s")
    reopened = compressed(tmp_path, compress_from=10, rerank=100)
    assert reopened.compressed and reopened.loaded
    assert reopened.vectors()[1].tobytes() == stored[:11].tobytes()
    assert results(reopened, stored[:4]) == results(index, stored[:4])


def test_a_compressed_search_scores_exactly_and_finds_the_nearest_given_depth(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(21)
    stored = clustered(rng, 2000, 8)
    all_ids = np.arange(5000, 7000, dtype=np.int64)
    index = compressed(tmp_path, rerank=128)
    index.add(all_ids, stored)
    found_all, overlap = 0, 0
    for query in random_units(rng, 50, 8):
        found, scores = index.search(query, 8)
        truth = stored @ query
        # Every score is the exact cosine, best first; the ids are the best of those
        # the codes put forward: re-ranking 128 of 2,000 makes them the true best
        # almost always (32 would find three in four).
        np.testing.assert_allclose(scores, truth[found - 5000], atol=1e-6)
        assert (np.diff(scores) <= 0).all() and len(found) == 8
        overlap += len(set(found.tolist()) & set(all_ids[np.argsort(-truth)[:8]].tolist()))
        found_all += 8
    assert overlap / found_all >= 0.99


def test_a_compressed_search_re_ranks_only_the_candidates_of_its_depth(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    stored = clustered(rng, 800, 8)
    shallow, deep = compressed(tmp_path / "a", rerank=8), compressed(tmp_path / "b", rerank=800)
    for index in (shallow, deep):
        index.add(np.arange(800, dtype=np.int64), stored)
    queries = random_units(rng, 40, 8)
    exact = [np.argsort(-(stored @ q))[:8].tolist() for q in queries]
    assert [deep.search(q, 8)[0].tolist() for q in queries] == exact
    assert [shallow.search(q, 8)[0].tolist() for q in queries] != exact


def test_a_compressed_index_is_a_function_of_its_vectors_not_of_their_history(
    tmp_path: Path,
) -> None:
    """What exact forgetting needs: the same (id, vector) pairs, added in any order or
    with others added and removed in between, give the same results."""
    rng = np.random.default_rng(9)
    stored = clustered(rng, 304, 8)
    all_ids = np.arange(1, 305, dtype=np.int64)
    queries = random_units(rng, 40, 8)
    straight = compressed(tmp_path / "a")
    straight.add(all_ids, stored)
    shuffled = compressed(tmp_path / "b")
    extra = random_units(rng, 50, 8)
    order = rng.permutation(304)
    shuffled.add(all_ids[order[:150]], stored[order[:150]])
    shuffled.add(np.arange(1000, 1050, dtype=np.int64), extra)
    shuffled.add(all_ids[order[150:]], stored[order[150:]])
    shuffled.remove(np.arange(1000, 1050, dtype=np.int64))
    assert sorted(shuffled.ids().tolist()) == all_ids.tolist()

    def as_sets(found: list[list[tuple[int, float]]]) -> list[list[tuple[int, float]]]:
        return [sorted(r) for r in found]

    assert as_sets(results(shuffled, queries)) == as_sets(results(straight, queries))
    shuffled.save("s")
    reopened = compressed(tmp_path / "b")
    assert as_sets(results(reopened, queries)) == as_sets(results(straight, queries))
    for query in queries[:5]:
        assert sorted(shuffled.within(query, 0.5)[0].tolist()) == sorted(
            straight.within(query, 0.5)[0].tolist()
        )


def test_removing_vectors_leaves_the_bytes_never_adding_them_would_have(tmp_path: Path) -> None:
    rng = np.random.default_rng(13)
    stored = random_units(rng, 70, 8)
    kept = np.arange(70) % 3 != 1
    never = compressed(tmp_path / "never")
    never.add(np.arange(70, dtype=np.int64)[kept], stored[kept])
    removed = compressed(tmp_path / "removed")
    removed.add(np.arange(70, dtype=np.int64), stored)
    removed.search(stored[0], 4)  # the codes packed for scanning before the removal
    removed.remove(np.flatnonzero(~kept).astype(np.int64))
    assert results(removed, stored[:6]) == results(never, stored[:6])
    never.save("s")
    removed.save("s")
    assert removed.path.read_bytes() == never.path.read_bytes()


def test_a_filtered_compressed_search_returns_the_best_allowed_ids(tmp_path: Path) -> None:
    rng = np.random.default_rng(17)
    stored = clustered(rng, 1600, 8)
    all_ids = np.arange(1600, dtype=np.int64)
    index = compressed(tmp_path, rerank=1600)  # deep enough to be exact
    index.add(all_ids, stored)
    # Most ids allowed (over-fetching codes), and a few (an exact scan of those).
    for share in (0.9, 0.5, 0.05):
        allowed_ids = all_ids[rng.random(1600) < share]
        for query in random_units(rng, 5, 8):
            found, scores = index.search(query, 8, allowed=IdFilter.of(allowed_ids))
            truth = stored[allowed_ids] @ query
            assert found.tolist() == allowed_ids[np.argsort(-truth)[:8]].tolist()
            np.testing.assert_allclose(scores, np.sort(truth)[::-1][:8], atol=1e-6)


def test_a_filtered_compressed_search_fetches_more_codes_until_it_finds_k_allowed(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(4)
    stored = clustered(rng, 400, 8)
    index = compressed(tmp_path, rerank=4)
    index.add(np.arange(400, dtype=np.int64), stored)
    query = stored[0]
    # Allow the half of the vectors least like the query: none is among the first codes.
    far = np.argsort(stored @ query)[:200].astype(np.int64)
    found, _ = index.search(query, 5, allowed=IdFilter.of(far))
    assert len(found) == 5 and set(found.tolist()) <= set(far.tolist())


def test_codes_made_with_another_codebook_are_encoded_again(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    stored = random_units(rng, 40, 8)
    other = train_codebook(random_units(np.random.default_rng(99), 1024, 8), 4)
    mine = FaissIndex(tmp_path, 8, codebook=other, compress_from=0, rerank=40)
    mine.add(np.arange(40, dtype=np.int64), stored)
    mine.save("s")
    reopened = compressed(tmp_path, rerank=40)
    assert reopened.loaded and reopened.compressed and reopened.state == "s"
    assert results(reopened, stored[:5]) == results(mine, stored[:5])
    reopened.save("s")
    fresh = compressed(tmp_path / "fresh", rerank=40)
    fresh.add(np.arange(40, dtype=np.int64), stored)
    fresh.save("s")
    assert reopened.path.read_bytes() == fresh.path.read_bytes()


def test_an_inverted_file_an_earlier_version_wrote_is_read_with_its_vectors(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(2)
    stored = random_units(rng, 30, 8)
    quantiser = faiss.IndexFlatIP(8)
    quantiser.add(random_units(rng, 4, 8))
    ivf = faiss.IndexIVFFlat(quantiser, 8, 4, faiss.METRIC_INNER_PRODUCT)
    ivf.is_trained = True
    old = faiss.IndexIDMap2(ivf)
    old.add_with_ids(stored, np.arange(100, 130, dtype=np.int64))
    index = FaissIndex(tmp_path, 8, codebook=None)
    faiss.write_index(old, str(index.path.parent / "vectors.faiss"))
    index.meta_path.write_text('{"state": "s", "dim": 8}')
    for strict in (False, True):
        reopened = compressed(tmp_path) if not strict else FaissIndex(tmp_path, 8, strict=True)
        assert reopened.loaded and reopened.state == "s"
        assert reopened.ids().tolist() == list(range(100, 130))
        assert reopened.vectors()[1].tobytes() == stored.tobytes()


def test_kbase_ships_a_codebook_for_minilm_and_uses_it_from_the_threshold() -> None:
    codebook = shipped_codebook(384)
    assert codebook is not None and codebook.shape == (SUBVECTORS, 1 << BITS, 384 // SUBVECTORS)
    assert codebook.dtype == np.float32 and np.isfinite(codebook).all()
    assert shipped_codebook(64) is None
    assert COMPRESS_FROM > 0 and RERANK > 0
    assert FaissIndex(Path("/nonexistent"), 384).codebook is codebook


# -- the registry ----------------------------------------------------------------------------


def test_the_registry_builds_each_kind_of_index(tmp_path: Path) -> None:
    assert isinstance(get_index("faiss", tmp_path, DIM), FaissIndex)
    assert isinstance(get_index("numpy", tmp_path, DIM), NumpyIndex)
    assert sorted(INDEXES) == ["faiss", "numpy"]


def test_an_unknown_index_name_is_a_config_error_naming_the_known_ones(tmp_path: Path) -> None:
    known = "unknown vector index 'annoy': choose one of faiss, numpy"
    with pytest.raises(ConfigError, match=known):
        get_index("annoy", tmp_path, DIM)
