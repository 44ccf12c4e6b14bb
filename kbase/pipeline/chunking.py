"""Splitting a document into chunks on paragraph boundaries within a token budget.

Token counts are estimated (about 1.3 tokens per word, the ratio of common BPE
tokenizers on English news) so that chunking never needs the model, and is the
same on every backend.
"""

from __future__ import annotations

import re

_PARAGRAPH = re.compile(r"\n\s*\n")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_WORD = re.compile(r"\S+")


def estimate_tokens(text: str) -> int:
    """Estimated number of model tokens in ``text``."""
    return (len(_WORD.findall(text)) * 13 + 9) // 10


def _split_long(paragraph: str, budget: int) -> list[str]:
    """Sentences of a paragraph over budget; words of a sentence over budget."""
    pieces: list[str] = []
    for sentence in _SENTENCE.split(paragraph):
        if estimate_tokens(sentence) <= budget:
            pieces.append(sentence)
            continue
        words = sentence.split()
        per_piece = max(1, budget * 10 // 13)
        pieces.extend(" ".join(words[i : i + per_piece]) for i in range(0, len(words), per_piece))
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
