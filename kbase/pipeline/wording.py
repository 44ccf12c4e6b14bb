"""Word-level comparisons of two statements, where an embedding is not precise enough.

MiniLM puts "Omar Quist is the chief executive of Aurora" and "Omar Quist is the
general counsel of Aurora" above 0.93 cosine, and name swaps and statements about
other slots at the same 0.6-0.7: cosine finds what to compare, and these decide.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

_WORD = re.compile(r"[\w'&.-]+")
#: Words whose presence or absence does not change what a statement says.
_ARTICLES = frozenset({"a", "an", "the"})


def words(text: str) -> list[str]:
    """Case-folded words, without surrounding punctuation."""
    return [w.strip(".'-") for w in _WORD.findall(text.casefold()) if w.strip(".'-")]


def same_statement(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` say the same in the same words, up to case,
    punctuation, articles and word order ("Acme is based in Leeds" and "acme is
    based in Leeds."), so one may stand for the other."""
    content_a = Counter(w for w in words(a) if w not in _ARTICLES)
    content_b = Counter(w for w in words(b) if w not in _ARTICLES)
    return bool(content_a) and content_a == content_b


@dataclass(frozen=True)
class Swap:
    """``new`` as ``old`` with one span changed: the words kept around the span
    (their share of the longer statement) and the span that was replaced."""

    share: float
    replaced: str


def swap(old: str, new: str) -> Swap:
    """How much of two statements is the same frame around one changed span: the
    shared leading and trailing words over the longer one's length ("The CEO of
    Acme is Bob" and "The CEO of Acme is Alice Chen": 5 of 7, Bob replaced)."""
    a, b = words(old), words(new)
    if a == b or not a or not b:
        return Swap(0.0, "")
    prefix = 0
    while prefix < min(len(a), len(b)) and a[prefix] == b[prefix]:
        prefix += 1
    suffix = 0
    while suffix < min(len(a), len(b)) - prefix and a[-1 - suffix] == b[-1 - suffix]:
        suffix += 1
    return Swap((prefix + suffix) / max(len(a), len(b)), " ".join(a[prefix : len(a) - suffix]))


def mentions(text: str, span: str) -> bool:
    """Whether ``text`` contains the words of ``span`` in a row (an empty span: yes)."""
    if not span:
        return True
    return f" {span} " in f" {' '.join(words(text))} "


def names(text: str) -> set[str]:
    """The words of ``text`` that name something: capitalised or numeric ("Acme",
    "Bob", "Leeds", "40"), case-folded, without articles or a possessive 's."""
    found = (w.strip(".'-") for w in _WORD.findall(text) if w[:1].isupper() or w[:1].isdigit())
    return {_bare(w) for w in found if w and w.casefold() not in _ARTICLES}


def names_most_of(text: str, statement: str) -> bool:
    """Whether ``text`` names more than half of what ``statement`` names (a
    statement that names nothing: yes). An article that names less than that of a
    fact ("Pioneer Media" alone, for "The chief executive of Pioneer Media is Marek
    Horvat") is not about it."""
    wanted = names(statement)
    if not wanted:
        return True
    present = {_bare(w) for w in words(text)}
    return 2 * len(wanted & present) > len(wanted)


def _bare(word: str) -> str:
    return word.casefold().removesuffix("'s")
