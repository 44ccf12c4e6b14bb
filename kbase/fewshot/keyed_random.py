"""Uniforms keyed by ``(seed, tag, step, key)``: a pure function, never a stream.

A sequential generator hands out draws by position, so removing one example shifts
the draws of every example after it and a refit no longer matches. Hashing the
tuple gives each example the same draw in every data set that contains it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

# 52 bits, so that bits + 0.5 is exact in a float64 and U lies strictly inside (0, 1).
BITS = 52
_PERSON = b"kbase-fewshot"


def _field(text: str) -> bytes:
    # Length-prefixed so that the encoding of the tuple is injective.
    raw = text.encode("utf-8")
    return b"%d:%s," % (len(raw), raw)


def _prefix(seed: int, tag: str, step: int) -> hashlib.blake2b:
    h = hashlib.blake2b(digest_size=8, person=_PERSON)
    h.update(_field(str(seed)) + _field(tag) + _field(str(step)))
    return h


def keyed_bits(seed: int, tag: str, step: int, keys: Sequence[str]) -> list[int]:
    """A ``BITS``-bit integer for each key, a pure function of ``(seed, tag, step, key)``."""
    base = _prefix(seed, tag, step)
    out: list[int] = []
    for key in keys:
        h = base.copy()
        h.update(_field(key))
        out.append(int.from_bytes(h.digest(), "big") >> (64 - BITS))
    return out


def keyed_uniform(seed: int, tag: str, step: int, key: str) -> float:
    """U(seed, tag, step, key), uniform on the open interval (0, 1)."""
    return (keyed_bits(seed, tag, step, [key])[0] + 0.5) / 2.0**BITS


def keyed_uniforms(seed: int, tag: str, step: int, keys: Sequence[str]) -> npt.NDArray[np.float64]:
    """``keyed_uniform`` for many keys at once, in the order given."""
    bits = np.array(keyed_bits(seed, tag, step, keys), dtype=np.float64)
    return (bits + 0.5) / 2.0**BITS
