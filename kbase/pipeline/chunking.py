"""Splitting a document into chunks on paragraph boundaries within a token budget.

Token counts are estimated (about 1.3 tokens per word, the ratio of common BPE
tokenizers on English news) so that chunking never needs the model, and is the
same on every backend. A word longer than :data:`LONG_WORD_BYTES` bytes of UTF-8
(base64, a hash, a URL, text without spaces) counts one token per byte, the most a
byte-level tokenizer makes of it, and a word over the budget is cut: so no chunk is
over the budget, whatever the text. Text of ordinary words chunks as it always did.
"""

from __future__ import annotations

import re

#: Words up to this many UTF-8 bytes count 1.3 tokens; longer ones one per byte.
LONG_WORD_BYTES = 24

_PARAGRAPH = re.compile(r"\n\s*\n")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_WORD = re.compile(r"\S+")
_ORDINARY_TENTHS = 13  # tenths of a token, so that sums stay exact integers


def _word_tenths(word: str) -> int:
    """Estimated tokens of one word, in tenths."""
    if len(word) * 4 <= LONG_WORD_BYTES:  # at most 4 bytes a character: no need to encode
        return _ORDINARY_TENTHS
    size = len(word.encode("utf-8"))
    return _ORDINARY_TENTHS if size <= LONG_WORD_BYTES else 10 * size


def estimate_tokens(text: str) -> int:
    """Estimated number of model tokens in ``text`` (1.3 a word; long words by bytes)."""
    return (sum(_word_tenths(word) for word in _WORD.findall(text)) + 9) // 10


def _cut_word(word: str, budget: int) -> list[str]:
    """A long ``word`` over ``budget`` in pieces of at most ``budget`` UTF-8 bytes (one
    character at least); any other word whole."""
    if len(word.encode("utf-8")) <= max(budget, LONG_WORD_BYTES):
        return [word]
    if word.isascii():  # one byte a character: plain slices
        return [word[i : i + max(1, budget)] for i in range(0, len(word), max(1, budget))]
    pieces: list[str] = []
    start, size = 0, 0
    for index, char in enumerate(word):
        width = len(char.encode("utf-8"))
        if index > start and size + width > budget:
            pieces.append(word[start:index])
            start, size = index, 0
        size += width
    pieces.append(word[start:])
    return pieces


def _split_long(paragraph: str, budget: int) -> list[str]:
    """Sentences of a paragraph over budget; words of a sentence over budget, as many as
    fit in each piece, and pieces of a word over budget."""
    pieces: list[str] = []
    for sentence in _SENTENCE.split(paragraph):
        if estimate_tokens(sentence) <= budget:
            pieces.append(sentence)
            continue
        current: list[str] = []
        size = 0
        for word in sentence.split():
            for part in _cut_word(word, budget):
                cost = _word_tenths(part)
                if current and size + cost > budget * 10:
                    pieces.append(" ".join(current))
                    current, size = [], 0
                current.append(part)
                size += cost
        if current:
            pieces.append(" ".join(current))
    return pieces


def chunk_text(text: str, budget: int) -> list[str]:
    """Chunks of ``text`` of at most ``budget`` estimated tokens, paragraphs kept whole
    where they fit; whitespace inside a paragraph is normalised."""
    paragraphs = [" ".join(p.split()) for p in _PARAGRAPH.split(text)]
    units: list[str] = []
    for paragraph in paragraphs:
        if not paragraph:
            continue
        if estimate_tokens(paragraph) <= budget:
            units.append(paragraph)
        else:
            units.extend(_split_long(paragraph, budget))
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for unit in units:
        cost = estimate_tokens(unit)
        if current and size + cost > budget:
            chunks.append("\n\n".join(current))
            current, size = [], 0
        current.append(unit)
        size += cost
    if current:
        chunks.append("\n\n".join(current))
    return chunks
