"""Canonical bytes of a selection's retained state.

One JSON header (sorted keys, no whitespace) followed by the raw little-endian
arrays it describes. Equal states give equal bytes, so a hash of them compares
whole states; the format is versioned by its magic line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from kbase.errors import ConfigError, StoreError
from kbase.fewshot.kmeans import Iteration
from kbase.fewshot.params import IntArray, Params
from kbase.hashing import canonical_json

MAGIC = b"kbase-fewshot-state/1\n"
_LEN = 8


@dataclass(frozen=True, eq=False)
class Decoded:
    """The parts of a state read back from bytes."""

    params: Params
    dim: int
    ids: list[str]
    vectors: IntArray
    seeds: tuple[str, ...]
    iterations: tuple[Iteration, ...]
    members: list[list[str]]


def encode(
    params: Params,
    dim: int,
    ids: Sequence[str],
    vectors: IntArray,
    seeds: Sequence[str],
    iterations: Sequence[Iteration],
    members: Sequence[Sequence[str]],
) -> bytes:
    """The canonical serialization of a state (ids sorted, members in order)."""
    arrays: list[npt.NDArray[Any]] = [vectors]
    for it in iterations:
        arrays += [it.sums, it.counts, it.index]
    little = [np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")) for a in arrays]
    header = {
        "params": params.to_json(),
        "dim": dim,
        "ids": list(ids),
        "seeds": list(seeds),
        "members": [list(m) for m in members],
        "arrays": [[a.dtype.str, list(a.shape)] for a in little],
    }
    head = canonical_json(header).encode("utf-8")
    return b"".join([MAGIC, len(head).to_bytes(_LEN, "big"), head, *(a.tobytes() for a in little)])


def decode(data: bytes) -> Decoded:
    """Parse and check bytes from :func:`encode`; StoreError when they are not valid."""
    try:
        return _decode(data)
    except StoreError:
        raise
    except (ConfigError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise StoreError(f"fewshot state is corrupt ({exc}): refit the selection") from exc


def _decode(data: bytes) -> Decoded:
    if not data.startswith(MAGIC):
        raise StoreError("not a fewshot state (bad magic line): refit the selection")
    at = len(MAGIC)
    size = int.from_bytes(data[at : at + _LEN], "big")
    at += _LEN
    header = json.loads(data[at : at + size].decode("utf-8"))
    at += size
    arrays: list[IntArray] = []
    for dtype, shape in header["arrays"]:
        if dtype != "<i8":
            raise StoreError(f"fewshot state has a {dtype} array, expected <i8")
        count = int(np.prod(shape, dtype=np.int64))
        chunk = data[at : at + 8 * count]
        if len(chunk) != 8 * count:
            raise StoreError("fewshot state is truncated: refit the selection")
        arrays.append(np.frombuffer(chunk, dtype="<i8").astype(np.int64).reshape(shape))
        at += 8 * count
    if at != len(data) or (len(arrays) - 1) % 3:
        raise StoreError("fewshot state has trailing or missing arrays: refit the selection")
    params = Params.from_json(header["params"])
    dim = int(header["dim"])
    ids = [str(i) for i in header["ids"]]
    vectors = arrays[0]
    if vectors.shape != (len(ids), dim) or ids != sorted(set(ids)):
        raise StoreError("fewshot state ids and vectors disagree: refit the selection")
    iterations = tuple(
        Iteration(arrays[i], arrays[i + 1], arrays[i + 2]) for i in range(1, len(arrays), 3)
    )
    k = params.k
    for it in iterations:
        if it.sums.shape != (k, dim) or it.counts.shape != (k,) or it.index.shape != (k, dim):
            raise StoreError("fewshot state has arrays of the wrong shape: refit the selection")
    members = [[str(i) for i in m] for m in header["members"]]
    seeds = tuple(str(s) for s in header["seeds"])
    known = set(ids)
    listed = [i for m in members for i in m]
    clustered = bool(iterations)
    if clustered != bool(seeds) or (clustered and len(members) != k):
        raise StoreError("fewshot state is incomplete: refit the selection")
    if clustered and (sorted(listed) != ids or not known.issuperset(seeds)):
        raise StoreError("fewshot state members and ids disagree: refit the selection")
    return Decoded(params, dim, ids, vectors, seeds, iterations, members)
