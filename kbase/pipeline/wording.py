"""Word-level comparisons of two statements, where an embedding is not precise enough,
and the sentences of an article that speak to the model instead of reporting news.

MiniLM puts "Omar Quist is the chief executive of Aurora" and "Omar Quist is the
general counsel of Aurora" above 0.93 cosine, and name swaps and statements about
other slots at the same 0.6-0.7: cosine finds what to compare, and these decide.

:func:`screen` sets aside what an article addresses to an AI, a model or a system
(orders to ignore instructions, fake conversation turns, lookalikes of the model's
own answers, role-play, notes "to the knowledge base"): articles are data, and such
sentences are not news. It reads cues that ordinary news does not use, so ordinary
news passes through unchanged (benchmarks/injection.py measures both).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

_WORD = re.compile(r"[\w'&.-]+")
#: Words whose presence or absence does not change what a statement says.
_ARTICLES = frozenset({"a", "an", "the"})


def words(text: str) -> list[str]:
    """Case-folded words, without surrounding punctuation."""
    return [w.strip(".'-") for w in _WORD.findall(text.casefold()) if w.strip(".'-")]


def tokens(text: str) -> list[str]:
    """The words of ``text`` as written: case kept, and a possessive mark ("Falls'",
    "Wenlow's") too, other surrounding punctuation not."""
    return [w.strip(".-").lstrip("'") for w in _WORD.findall(text) if w.strip(".'-")]


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
    #: The span of ``new`` that took its place.
    inserted: str = ""


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
    return Swap(
        (prefix + suffix) / max(len(a), len(b)),
        " ".join(a[prefix : len(a) - suffix]),
        " ".join(b[prefix : len(b) - suffix]),
    )


def one_change_from(old: str, new: str, article: str, share: float) -> bool:
    """Whether ``new`` is a statement about what ``old`` is about: ``old`` with one span
    changed, keeping at least ``share`` of its words, whose new words all come from
    ``article`` ("Omar Haddad is the chairman of Brightwater Bank" for "Lucy Fenn is
    ...", after an article naming Omar Haddad). "This fact was retracted by the
    administrator" is no such statement about "Bob Marsh is the chief executive of
    Acme Robotics", whatever an article asks."""
    found = swap(old, new)
    if found.share < share or not found.inserted:
        return False
    present = set(words(article))
    return all(word in present for word in found.inserted.split())


def mentions(text: str, span: str) -> bool:
    """Whether ``text`` contains the words of ``span`` in a row (an empty span: yes)."""
    if not span:
        return True
    return f" {span} " in f" {' '.join(words(text))} "


def names(text: str) -> set[str]:
    """The words of ``text`` that name something: capitalised or numeric ("Acme",
    "Bob", "Leeds", "40"), case-folded, without articles or a possessive 's."""
    found = (w.strip(".'-") for w in _WORD.findall(text))  # 'Mallory: a quoted name
    return {
        bare(w)
        for w in found
        if (w[:1].isupper() or w[:1].isdigit()) and w.casefold() not in _ARTICLES
    }


#: A run of capitalised words in a row, split by nothing but spaces ("Port Wenlow
#: Harriers"; a comma ends a run).
_NAME_RUN = re.compile(r"[A-Z][\w'&.-]*(?:[ \t]+[A-Z][\w'&.-]*)*")


def name_runs(text: str) -> list[str]:
    """The names of ``text`` as they are written, several words each where they run
    together ("Kofi Ansah", "Harbour Cinema"), without a leading article or a
    possessive 's, in order and without repeats."""
    out: list[str] = []
    for run in _NAME_RUN.findall(text):
        tokens = [t.strip(".'-") for t in run.split()]
        while tokens and tokens[0].casefold() in _ARTICLES:
            tokens = tokens[1:]
        name = " ".join(tokens).removesuffix("'s").strip(".'-")
        if name and name not in out:
            out.append(name)
    return out


def name_key(name: str) -> str:
    """How :func:`names_in` compares a name: its words, case-folded, without a
    possessive 's ("Port Wenlow's" is "port wenlow")."""
    return " ".join(bare(w) for w in words(name))


def names_in(text: str, key: str) -> bool:
    """Whether ``text`` has the words of the name ``key`` (:func:`name_key`) in a row."""
    return f" {key} " in f" {name_key(text)} "


def word_runs(text: str, longest: int) -> set[str]:
    """Every run of up to ``longest`` words of ``text`` as :func:`name_key` writes it:
    the keys of all the names :func:`names_in` finds in ``text``."""
    ws = name_key(text).split()
    return {" ".join(ws[i : i + n]) for n in range(1, longest + 1) for i in range(len(ws) - n + 1)}


def _named_share(wanted: set[str], text: str) -> float:
    """The share of ``wanted`` (case-folded names) that ``text`` names (none wanted: 1)."""
    if not wanted:
        return 1.0
    return len(wanted & {bare(w) for w in words(text)}) / len(wanted)


def names_most_of(text: str, statement: str) -> bool:
    """Whether ``text`` names more than half of what ``statement`` names (a
    statement that names nothing: yes). An article that names less than that of a
    fact ("Pioneer Media" alone, for "The chief executive of Pioneer Media is Marek
    Horvat") is not about it."""
    return _named_share(names(statement), text) > 0.5


#: Words that carry no claim of their own: a statement may use them whatever its
#: article's wording.
# fmt: off
_FUNCTION_WORDS = frozenset({
    "a", "an", "the", "is", "are", "was", "were", "be", "been", "being", "of", "in", "on",
    "at", "to", "for", "from", "by", "with", "and", "or", "as", "its", "it", "their", "his",
    "her", "this", "that", "these", "those", "now", "has", "have", "had", "will", "would",
    "which", "who",
})
# fmt: on


def _stem(word: str) -> str:
    for ending in ("ing", "ed", "s", "e"):
        if len(word) > len(ending) + 2 and word.endswith(ending):
            word = word[: -len(ending)]
    return word[:5]


def grounded(statement: str, text: str) -> bool:
    """Whether ``text`` has every word of ``statement`` but function words, up to
    its ending ("runs 16 ferries" in "now runs 16 ferries"; not "is based in
    Sheffield" in "will open a lab in Sheffield")."""
    present = {_stem(w) for w in words(text)}
    return all(_stem(w) in present for w in words(statement) if w not in _FUNCTION_WORDS)


def names_all_of(text: str, statement: str) -> bool:
    """Whether ``text`` names everything ``statement`` names (capitalised words and
    numbers; a statement that names nothing: no)."""
    wanted = names(statement)
    return bool(wanted) and wanted <= {bare(w) for w in words(text)}


def touches(sentence: str, statement: str) -> bool:
    """Whether ``sentence`` speaks of what ``statement`` is about, though it may name
    it only in part: it names something the statement names and shares one of its
    other words (the role, the figure's noun), up to their endings ("... was sworn in
    as mayor, succeeding Ortega" for "Helen Ortega is the mayor of Millbrook"; "the
    mayor of Millbrook resigned"). Names alone are not enough: "Acme Robotics showed
    a new arm" names all of "Acme Robotics" and says nothing of "Acme Robotics
    appointed Carol Tate as its finance chief"."""
    present = {_stem(w) for w in words(sentence)}
    named = {_stem(w) for w in names(statement)}
    other = {_stem(w) for w in words(statement) if w not in _FUNCTION_WORDS} - named
    return bool(named & present) and bool(other & present)


def bare(word: str) -> str:
    """``word`` case-folded, without a possessive 's."""
    return word.casefold().removesuffix("'s")


#: Words that open a question without naming anything in it.
_QUESTION_OPENERS = frozenset({
    "who", "whom", "whose", "what", "which", "when", "where", "why", "how", "is", "are", "was",
    "were", "does", "do", "did", "has", "have", "can", "will", "name", "tell", "list",
})  # fmt: skip


def question_names(question: str) -> set[str]:
    """What a question names (:func:`names`), without its opening question word and
    without all-capital abbreviations ("CEO", "CFO"), which facts spell out."""
    found = [w.strip(".'-?") for w in _WORD.findall(question)]
    if found and found[0].casefold() in _QUESTION_OPENERS:
        found = found[1:]
    return names(" ".join(w for w in found if not (w.isalpha() and w.isupper() and len(w) > 1)))


def answers(question: str, answer: str, fact: str, context: str) -> bool:
    """Whether a fact can answer ``question`` with ``answer``: the fact names part of
    what the answer names ("Stanek" for "Ivo Stanek", "the Harriers" for "Port Wenlow
    Harriers"; an answer naming nothing, "will close", passes), and the fact with
    ``context`` (the text of the articles behind it) names more than half of what the
    question names, so that a fact about the mayor of Kestrel Falls does not answer
    "Who is the mayor of Dunmere?" and one about petrol prices still answers "...
    petrol in Lendmoor County?" when only its article names the county."""
    if _named_share(names(answer), fact) == 0:
        return False
    return _named_share(question_names(question), f"{fact}\n{context}") > 0.5


# -- instructions inside articles ------------------------------------------------------

#: What the model is called by text that addresses it.
_MACHINE = (
    r"(?:ai|a\.i\.|assistants?|chat\s?bots?|bots?|language\s+models?|llms?|models?|"
    r"(?:automated|ai|extraction|editing|fact|answering)\s+(?:systems?|readers?|tools?|models?)|"
    r"extractors?|parsers?|summari[sz]ers?|fact[- ]?checkers?|fact\s+editors?|"
    r"knowledge[- ]base|crawlers?|scrapers?|agents?|pipelines?|\w*bot)"
)
#: What the model is asked to do to the knowledge base.
_TASK_VERB = (
    r"(?:ignore|disregard|forget|extract|output|print|return|respond|reply|answer|write|"
    r"rewrite|mark|treat|record|store|save|delete|remove|retract|replace|update|list|label|"
    r"classify|repeat|insert|add|append|judge|assume|overwrite|erase|purge|say|state|declare|"
    r"flag|obey|follow|comply)"
)
_I = re.IGNORECASE

#: A fake conversation turn, a spoofed end of the article or the model's own task
#: format: everything after it, to the end of the chunk, is not the article's.
_TURN = [
    re.compile(r"<\|[a-z_]{2,20}\|>|\[/?INST\]|<</?SYS>>", _I),
    re.compile(r"</?\s*(?:article|document|context|input|system|user|assistant)\s*>", _I),
    re.compile(r"(?:^|\s)#{2,}\s*(?:system|instructions?|response|assistant|new\s+task)\b", _I),
    re.compile(r"\b(?:SYSTEM|System|ASSISTANT|Assistant|DEVELOPER|Developer)\s*(?::|>>)"),
    re.compile(r"\b(?:ADMIN|Admin|ADMINISTRATOR|Administrator)\s*:"),
    re.compile(
        r"\b(?:system|developer|administrator|admin|moderator|operator)\s+"
        r"(?:notice|message|note|override|instruction|prompt|command|mode)s?\b",
        _I,
    ),
    re.compile(
        r"\b(?:end|begin|start)\s+of\s+(?:the\s+)?"
        r"(?:article|document|text|input|context|prompt|data|user\s+message)\b",
        _I,
    ),
    re.compile(r"\bnew\s+(?:task|instructions?|orders|rules)\s*:", _I),
    re.compile(r"\btask:\s*(?:facts|verdicts?|rewrite)\b|\b(?:stored|untrue)\s+fact:", _I),
    re.compile(r"\barticle\s+date:|\bis\s+it\s+still\s+true\s+after\s+this\s+article\b", _I),
]
#: An order to set instructions aside, text addressed to the model, role-play, or a
#: line that introduces what follows as meant for the model: the rest of the
#: paragraph is the order's.
_OPENER = [
    re.compile(
        r"\b(?:ignore|disregard|forget|override|bypass|overrule|abandon|stop\s+following|"
        r"do\s+not\s+follow|don't\s+follow|set\s+aside|ignores|ignoring)\b[^.!?]{0,40}?"
        r"\b(?:previous|prior|above|earlier|preceding|original|your|all|any|its|their)\b"
        r"[^.!?]{0,30}?\b(?:instructions?|prompts?|rules|directions|directives|guidelines|"
        r"commands?|orders|context|tasks?|programming|training|constraints)\b",
        _I,
    ),
    re.compile(
        r"\b(?:ignore|disregard|forget)\s+(?:the\s+|all\s+|everything\s+)?(?:text|article|"
        r"content|words|lines?|paragraphs?|everything)?\s*(?:above|before\s+this|so\s+far)\b",
        _I,
    ),
    re.compile(
        r"\b(?:dear|hello|hi|hey|attention|calling|p\.?\s?s\.?|note|message|memo|notice|"
        r"warning|letter|request|instructions?)\b[^.!?:]{0,40}?\b(?:to|for)\s+"
        r"(?:the\s+|any\s+|all\s+|every\s+|an?\s+)?" + _MACHINE + r"\b",
        _I,
    ),
    re.compile(
        r"\b(?:line|text|sentence|message|note|part|paragraph|section)\s+is\s+"
        r"(?:meant\s+|written\s+|only\s+)?(?:for|to)\s+(?:the\s+|any\s+|an?\s+)?" + _MACHINE,
        _I,
    ),
    re.compile(r"\bif\s+you\s+are\s+(?:an?\s+|the\s+)?" + _MACHINE + r"\b", _I),
    re.compile(
        r"\byou\s+are\s+(?:now\s+)?(?:an?\s+|the\s+|my\s+)?" + _MACHINE + r"\b"
        r"|\byou\s+are\s+[A-Z]\w+,\s+(?:an?|the)\s+" + _MACHINE + r"\b"
        r"|\bfrom\s+now\s+on,?\s+you\b",
        _I,
    ),
    re.compile(
        r"\b(?:pretend|imagine|suppose)\s+(?:that\s+)?you\s+are\b[^.!?]{0,40}?"
        r"(?:" + _MACHINE + r"|knowledge|facts?|no\s+rules|without\s+rules)\b"
        r"|\blet'?s\s+play\s+a\s+game\b|\brole-?play\b|\bstay\s+in\s+character\b"
        r"|^\W*act\s+as\b",
        _I,
    ),
]
#: A sentence that orders the model about its facts, or a lookalike of its answers:
#: set aside itself.
_ORDER = [
    re.compile(
        r"\bstored\s+(?:facts?|statements?|records?|claims?)\b|\bknowledge[- ]base\b"
        r"|\bfacts?\s+(?:that\s+)?you\s+(?:hold|stored?|have|keep|know|list|extract)"
        r"|\bfacts?\s+(?:previously\s+|already\s+)?stored\b"
        r"|\b(?:every|all|each|any)\s+(?:of\s+the\s+|the\s+)?(?:other|old|previous|prior|"
        r"earlier|existing|candidate|known)\s+(?:facts?|statements?)\b"
        r"|\b(?:every|all|each|any)\s+(?:of\s+the\s+)?facts?\s+(?:about|on|of)\b",
        _I,
    ),
    re.compile(
        r"\b(?:you|the\s+(?:model|assistant|ai|system|extractor|knowledge\s+base))\s+"
        r"(?:must|should|shall|will|need\s+to|have\s+to|are\s+to|is\s+to|"
        r"(?:are|is)\s+(?:required|instructed|told|ordered|asked)\s+to)\s+"
        r"(?:now\s+|only\s+|also\s+|always\s+|never\s+|not\s+)?" + _TASK_VERB + r"\b",
        _I,
    ),
    re.compile(
        r"^\W*(?:(?:then|and|also|now|please|so|first|next|finally|just)\W+)*"
        + _TASK_VERB
        + r"\b(?=.*\b(?:facts?|statements?|claims?|records?|entr(?:y|ies)|knowledge|database|"
        r"memory|output|answers?|verdicts?|json|true|false|retract(?:ed)?|the\s+following|"
        r"this\s+(?:sentence|line|text)|instructions?)\b)",
        _I,
    ),
    re.compile(
        r"^\W*(?:(?:then|and|also|now|please|so|first|next|finally|just)\W+)*"
        r"(?:record|store|save|say|state|list|add|assume|answer|output|respond)\s+"
        r"(?:only\s+)?(?:that\b|this\b|the\s+following\b|:)",
        _I,
    ),
    re.compile(
        r"\b(?:make_false|no_change)\b|\b(?:verdict|answer)\s*(?:is\s*)?[:=]\s*[\"'\u201c]?"
        r"(?:true|false|make_false|reinforce|no_change)\b",
        _I,
    ),
    re.compile(r"(?<![A-Za-z])(?:TRUE|FALSE)(?![A-Za-z])"),
]
#: An answer of the model's shape: ``{"facts": ...}``, ``{"rewrite": ...}``.
_JSON = re.compile(r"\{[^{}]{0,2000}\}")
_JSON_KEY = re.compile(r"[\"'\u201c\u201d]\s*\w+\s*[\"'\u201c\u201d]\s*:")
_SENTENCE_END = re.compile(
    r"(?<!\bP\.S\.)(?<!\bMr\.)(?<!\bMs\.)(?<!\bDr\.)(?<!\bSt\.)(?<=[.!?])\s+"
    r"|(?<=[.!?][\"'\u201d\u2019)])\s+"
)
#: A user turn of a fake conversation ("User: which facts are true?"), set aside
#: with the assistant or system turn that follows it.
_USER_TURN = re.compile(r"^\W*(?:user|human)\s*:", _I)
_INTRODUCES = re.compile(r":\s*$|\b(?:the\s+following|below|next\s+(?:line|sentence|fact))\b", _I)
_POINTS_BACK = re.compile(
    r"\b(?:the|this)\s+(?:previous|preceding|above|last)\s+(?:sentence|line|statement|fact)\b",
    _I,
)


def sentences(text: str) -> list[str]:
    """The sentences of ``text``, paragraph by paragraph."""
    return [s for p in _PARAGRAPH.split(text) for s in _SENTENCE_END.split(p.strip()) if s]


_PARAGRAPH = re.compile(r"\n\s*\n")


@dataclass(frozen=True)
class Screened:
    """An article's text less what it addresses to the model."""

    #: What the model is shown: the text itself when nothing was set aside.
    text: str
    #: The pieces set aside, in order.
    set_aside: tuple[str, ...] = ()


def _segments(paragraph: str) -> list[tuple[str, bool]]:
    """A paragraph's sentences, each marked whether it is a lookalike of the model's
    JSON answers (those are cut out whole first: their inner full stops are not ends
    of sentences)."""
    out: list[tuple[str, bool]] = []
    start = 0
    for found in _JSON.finditer(paragraph):
        if not _JSON_KEY.search(found.group()):
            continue
        out += [(s, False) for s in _SENTENCE_END.split(paragraph[start : found.start()]) if s]
        out.append((found.group(), True))
        start = found.end()
    out += [(s, False) for s in _SENTENCE_END.split(paragraph[start:]) if s]
    return [(s.strip(), json) for s, json in out if s.strip()]


def _speaks_to_model(sentence: str) -> tuple[bool, str]:
    """Whether ``sentence`` is addressed to the model, and how far what it starts
    reaches: ``"chunk"``, ``"paragraph"`` or ``"sentence"``."""
    if any(p.search(sentence) for p in _TURN):
        return True, "chunk"
    if any(p.search(sentence) for p in _OPENER):
        return True, "paragraph"
    if any(p.search(sentence) for p in _ORDER):
        return True, "paragraph" if _INTRODUCES.search(sentence) else "sentence"
    return False, ""


def screen(text: str) -> Screened:
    """``text`` without the sentences it addresses to an AI, a model or a system, and
    without what such a sentence introduces (the rest of its paragraph, or of the
    text after a fake conversation turn). Text with nothing of the kind comes back
    unchanged."""
    kept_paragraphs: list[str] = []
    aside: list[str] = []
    rest_of_text = False
    for paragraph in _PARAGRAPH.split(text):
        kept: list[str] = []
        rest_of_paragraph = rest_of_text
        for sentence, json_like in _segments(paragraph):
            if rest_of_paragraph:
                aside.append(sentence)
                continue
            addressed, reach = (True, "sentence") if json_like else _speaks_to_model(sentence)
            if not addressed:
                kept.append(sentence)
                continue
            if reach == "chunk":
                turns = [i for i, s in enumerate(kept) if _USER_TURN.search(s)]
                if turns:
                    aside.extend(kept[turns[0] :])
                    del kept[turns[0] :]
            aside.append(sentence)
            if _POINTS_BACK.search(sentence) and kept:
                aside.insert(len(aside) - 1, kept.pop())
            rest_of_paragraph = reach in ("paragraph", "chunk")
            rest_of_text = rest_of_text or reach == "chunk"
        if kept:
            kept_paragraphs.append(" ".join(kept))
    if not aside:
        return Screened(text)
    return Screened("\n\n".join(kept_paragraphs), tuple(aside))


def only_in_set_aside(kept: str, set_aside: Sequence[str], statement: str) -> set[str]:
    """What ``statement`` names that only the ``set_aside`` part of an article names,
    not what is ``kept`` of it: a fact drawn from an instruction, not from the news."""
    if not set_aside:
        return set()
    present = {bare(w) for w in words(kept)}
    aside = set().union(*(names(s) for s in set_aside))
    return (names(statement) & aside) - present
