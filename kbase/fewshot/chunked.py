"""A persistent sorted sequence stored in blocks.

Removing one key copies one block and the tuple of block references, so a
deletion on the fast path costs about ``BLOCK + n / BLOCK`` pointer copies, not
``n``, while the old version stays valid (copy-on-write).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from kbase.fewshot.params import IntArray

BLOCK = 256

Key = TypeVar("Key", str, tuple[int, str])


@dataclass(frozen=True, eq=False)
class Chunked(Generic[Key]):
    """Sorted unique keys, optionally with one int64 row per key."""

    blocks: tuple[tuple[Key, ...], ...]
    heads: tuple[Key, ...]
    rows: tuple[IntArray, ...] | None
    size: int
    dim: int

    @classmethod
    def build(
        cls, keys: Sequence[Key], rows: IntArray | None = None, *, dim: int = 0
    ) -> Chunked[Key]:
        """From keys already sorted (and rows in the same order, if any)."""
        starts = range(0, len(keys), BLOCK)
        blocks = tuple(tuple(keys[i : i + BLOCK]) for i in starts)
        parts = None if rows is None else tuple(rows[i : i + BLOCK].copy() for i in starts)
        return cls(blocks, tuple(b[0] for b in blocks), parts, len(keys), dim)

    def __len__(self) -> int:
        return self.size

    def locate(self, key: Key) -> tuple[int, int] | None:
        """(block, position) of ``key``, or None."""
        b = bisect_right(self.heads, key) - 1
        if b < 0:
            return None
        block = self.blocks[b]
        i = bisect_left(block, key)
        return (b, i) if i < len(block) and block[i] == key else None

    def row(self, key: Key) -> IntArray:
        """The row stored with ``key`` (KeyError if absent)."""
        where = self.locate(key)
        if where is None or self.rows is None:
            raise KeyError(key)
        found: IntArray = self.rows[where[0]][where[1]]
        return found

    def remove(self, key: Key) -> Chunked[Key]:
        """A new sequence without ``key`` (KeyError if absent); this one is unchanged."""
        where = self.locate(key)
        if where is None:
            raise KeyError(key)
        b, i = where
        block: tuple[Key, ...] = self.blocks[b][:i] + self.blocks[b][i + 1 :]
        keep = (block,) if block else ()
        blocks: tuple[tuple[Key, ...], ...] = self.blocks[:b] + keep + self.blocks[b + 1 :]
        heads: tuple[Key, ...] = self.heads[:b] + tuple(x[0] for x in keep) + self.heads[b + 1 :]
        rows = self.rows
        if rows is not None:
            left = (np.delete(rows[b], i, axis=0),) if block else ()
            rows = rows[:b] + left + rows[b + 1 :]
        return Chunked(blocks, heads, rows, self.size - 1, self.dim)

    def first(self) -> Key | None:
        """The smallest key, or None when empty."""
        return self.heads[0] if self.heads else None

    def to_list(self) -> list[Key]:
        """All keys in order."""
        return [key for block in self.blocks for key in block]

    def matrix(self) -> IntArray:
        """All rows stacked, shape (size, dim)."""
        if not self.rows:
            return np.zeros((0, self.dim), dtype=np.int64)
        return np.concatenate(self.rows, axis=0)
