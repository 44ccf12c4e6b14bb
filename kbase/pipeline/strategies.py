"""How a chunk's new text edits the facts already stored.

Three strategies share every other part of the pipeline:

- ``rag`` never edits: new facts are only added.
- ``erase-paper`` is ERASE's reference call pattern: one generated three-way
  verdict (reinforce / make false / no change) per candidate, then one call per
  rewrite.
- ``kbase`` scores TRUE/FALSE from next-token log-probabilities, one short
  request per candidate sharing the article as prefix (or one JSON answer for
  the whole chunk where the backend has no log-probabilities). A fact made
  false is rewritten as the chunk's new fact that keeps its words around one
  changed span (``rewrite_swap_share``) and says nothing in words the article
  does not use (``wording.grounded``); a rewrite is generated only when there
  is none, and then only on a surer verdict (``unmatched_min_confidence``).
  Reinforcement comes from new facts that repeat stored ones. A candidate is
  judged only if a verdict could change it: not if a new fact repeats it, and
  not if no new fact could replace it and the article is not about it (names
  less than all of what it names, and has no sentence that is it with one span
  changed). A fact one of the article's sentences says has ended
  (:mod:`kbase.pipeline.changes`: "X stepped down", "down from Y") is judged too,
  and closed unless the model is sure it still holds (``ended_min_confidence``);
  such a sentence also finds facts by its names, however far in meaning
  (:mod:`kbase.pipeline.named`), and a rename puts the new name into every fact
  that holds the old one.
  Any other fact no new fact replaces is closed on the verdict alone only if the
  article is about it, and at most ``max_verdict_closures`` of them per document.

Guards common to both editing strategies: the model sees a chunk and title less
what they address to the model (:func:`kbase.pipeline.extract.shown`); candidates
are only current facts close to the chunk, never the chunk's own document's
facts; an answer that does not parse or a verdict below the confidence bar
changes nothing; a rewrite equal to the old text changes nothing, and so does a
rewrite that is not the old fact with one span changed to words of the article.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select

from kbase import prompts
from kbase.errors import ConfigError
from kbase.llm.output import parse_json
from kbase.pipeline import changes, edits, named, wording
from kbase.pipeline.context import DocContext
from kbase.pipeline.extract import Shown, shown
from kbase.store.models import Evidence, Fact
from kbase.vectors import Hit

#: A generated rewrite must keep at least this share of the fact's words around its
#: one changed span. Not ``rewrite_swap_share``, which decides when a new fact of the
#: article is taken as the rewrite without asking: this only refuses rewrites that
#: are no longer statements about the fact's subject.
REWRITE_MIN_SHARE = 0.5


def candidates(
    ctx: DocContext, chunk: str, *, at_least_one: bool = False, sentences: Sequence[str] = ()
) -> list[Fact]:
    """Current facts (as of the document) of other documents close to ``chunk`` or to
    one of ``sentences``, best first, capped."""
    settings = ctx.settings
    queries = [chunk, *sentences]
    vectors = ctx.vectors.embed(ctx.session, queries)
    radius = settings.candidate_threshold
    best: dict[int, Hit[Fact]] = {}
    for n, (text, vector) in enumerate(zip(queries, vectors, strict=True)):
        hits = [
            h
            for h in ctx.vectors.within(ctx.session, vector, radius, at_seq=ctx.view_seq)
            if h.fact.document_pk != ctx.doc.pk
        ]
        reach = radius
        if n == 0 and not hits and at_least_one:
            # ERASE keeps at least the best match; that makes the result depend on the
            # whole store down to the best score, which the recorded radius says.
            nearest = ctx.vectors.nearest(ctx.session, vector, 8, at_seq=ctx.view_seq)
            hits = [h for h in nearest if h.fact.document_pk != ctx.doc.pk][:1]
            reach = min(radius, hits[0].score) if hits else -1.0
        edits.note_retrieval(ctx, text, reach)
        for hit in hits:
            if hit.fact.id not in best or hit.score > best[hit.fact.id].score:
                best[hit.fact.id] = hit
    # As the index ranks: never by row ids, which differ between a store and its replay.
    ranked = sorted(best.values(), key=lambda h: (-h.score, h.fact.text, h.fact.valid_from))
    return [h.fact for h in ranked[: settings.candidate_cap]]


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold().rstrip(".") == " ".join(b.split()).casefold().rstrip(".")


def _apply_false(ctx: DocContext, fact: Fact, seen: Shown, chunk_idx: int) -> None:
    """Ask for a rewrite of an untrue fact; rewrite it, retire it, or keep it."""
    doc = ctx.doc
    request = prompts.rewrite_request(
        seen.text, fact.text, published=doc.published, title=seen.title, examples=ctx.examples
    )
    response = ctx.recorder.generate(request, ctx.ingest_use)
    data = parse_json(response.text)  # unparseable: None, no change
    if not isinstance(data, dict) or "rewrite" not in data:
        return
    text = data["rewrite"]
    if text is None or (isinstance(text, str) and not text.strip()):
        edits.retire(ctx, fact)
        return
    if not isinstance(text, str):
        return
    text = " ".join(text.split())
    if _same_text(text, fact.text) or len(text) > 300:
        return  # an "update" that re-emits the old text is no change
    duplicate = _duplicate_of(ctx, text)
    if duplicate is not None:
        # What the store says already: the fact is retired and that one reinforced.
        edits.retire(ctx, fact)
        edits.reinforce(ctx, duplicate)
    elif wording.one_change_from(fact.text, text, seen.about, REWRITE_MIN_SHARE):
        edits.rewrite(ctx, fact, text, chunk_idx)
    else:
        # Not a statement about what the fact is about ("This fact was retracted by
        # the administrator" for "Bob Marsh is the chief executive of Acme"), or one
        # whose new words the article does not give: no change.
        ctx.warn(f"rewrite {text!r} of {fact.text!r} refused: not the fact with one span "
              "changed to words of the article")  # fmt: skip


def _replace(ctx: DocContext, fact: Fact, text: str, chunk_idx: int) -> None:
    """Close ``fact`` in favour of ``text``: its next version, or, when a current
    fact says ``text`` already, that fact (retire, and reinforce it)."""
    duplicate = _duplicate_of(ctx, text)
    if duplicate is not None:
        edits.retire(ctx, fact)
        edits.reinforce(ctx, duplicate)
        return
    edits.rewrite(ctx, fact, text, chunk_idx)


def _duplicate_of(ctx: DocContext, text: str) -> Fact | None:
    """A current fact that says the same as ``text`` in the same words, if any: close
    in embedding space, and equal by :func:`wording.same_statement`."""
    vector = ctx.vectors.embed(ctx.session, [text])[0]
    radius = ctx.settings.duplicate_threshold
    edits.note_retrieval(ctx, text, radius)
    hits = ctx.vectors.within(ctx.session, vector, radius, at_seq=ctx.view_seq)
    return next((h.fact for h in hits if wording.same_statement(h.fact.text, text)), None)


def add_new_facts(ctx: DocContext, chunk_idx: int, texts: Sequence[str]) -> None:
    """Store new facts; one that repeats a current fact reinforces it instead, and one
    that repeats a fact this document has just closed is not stored: the embedded model
    read "Fiona Reed is the chief executive of Mossbank Brewing" out of "Fiona Reed
    handed the reins ... after 15 years as chief executive of Mossbank Brewing"."""
    closed = list(ctx.session.scalars(select(Fact.text).where(Fact.closed_by_pk == ctx.doc.pk)))
    for text in texts:
        if any(wording.same_statement(text, old) for old in closed):
            ctx.warn(f"fact {text!r} not stored: this document closed it")
            continue
        duplicate = _duplicate_of(ctx, text)
        if duplicate is None:
            edits.create_fact(ctx, text, chunk_idx)
        elif duplicate.document_pk != ctx.doc.pk:
            edits.reinforce(ctx, duplicate)


@dataclass(frozen=True)
class Strategy:
    name: str
    #: Edits the stored facts for one chunk, given the chunk's extracted facts, and
    #: returns the facts to store of them.
    edit: Callable[[DocContext, int, str, Sequence[str]], Sequence[str]]


def _edit_nothing(ctx: DocContext, chunk_idx: int, chunk: str, new: Sequence[str]) -> Sequence[str]:
    return new


def _edit_paper(ctx: DocContext, chunk_idx: int, chunk: str, new: Sequence[str]) -> Sequence[str]:
    seen = shown(ctx, chunk)
    if not seen.text.strip():
        return new
    for fact in candidates(ctx, seen.text, at_least_one=True):
        request = prompts.paper_verdict_request(
            seen.text, fact.text, published=ctx.doc.published, examples=ctx.examples
        )
        response = ctx.recorder.generate(request, ctx.ingest_use)
        data = parse_json(response.text)  # the reasoning comes first and is not used
        verdict = data.get("verdict") if isinstance(data, dict) else None
        if verdict == "reinforce":
            edits.reinforce(ctx, fact)
        elif verdict == "make_false":
            _apply_false(ctx, fact, seen, chunk_idx)
    return new


def false_probability(scores: dict[str, float]) -> float | None:
    """P(FALSE) from the two verdict log-probabilities (None if either is missing)."""
    true, false = scores.get("TRUE"), scores.get("FALSE")
    if true is None or false is None or not (math.isfinite(true) or math.isfinite(false)):
        return None
    top = max(true, false)
    e_true, e_false = math.exp(true - top), math.exp(false - top)
    return e_false / (e_true + e_false)


def _verdicts_scored(ctx: DocContext, seen: Shown, facts: Sequence[Fact]) -> list[float | None]:
    """P(FALSE) of each fact, from the verdict token's log-probabilities."""
    doc = ctx.doc
    out = []
    for fact in facts:
        request = prompts.verdict_request(
            seen.text, fact.text, published=doc.published, title=seen.title, examples=ctx.examples
        )
        scores = ctx.recorder.score(request, ctx.ingest_use).scores or {}
        out.append(false_probability(dict(scores)))
    return out


def _verdicts_generated(ctx: DocContext, seen: Shown, facts: Sequence[Fact]) -> list[float | None]:
    """Each fact's verdict from one generated JSON list: FALSE as 1, TRUE as 0."""
    request = prompts.verdicts_request(
        seen.text, [f.text for f in facts], published=ctx.doc.published, examples=ctx.examples
    )
    response = ctx.recorder.generate(request, ctx.ingest_use)
    data = parse_json(response.text)
    verdicts = data.get("verdicts") if isinstance(data, dict) else None
    if not isinstance(verdicts, list) or len(verdicts) != len(facts):
        return [None] * len(facts)
    return [1.0 if v == "FALSE" else 0.0 for v in verdicts]


def _pair_rewrites(
    facts: Sequence[Fact], new: Sequence[str], chunk: str, share: float
) -> dict[int, str]:
    """For facts judged false, the chunk's new facts that say what each says now: a
    new fact that is the stored one with one span changed ("the CEO of Acme is
    Alice" for "... is Bob"), in words of the article, title included
    (``wording.grounded``: not "Acme is based in Sheffield", which a small model
    drew from "Acme will open a lab in Sheffield"). Each new fact serves one stored
    fact. Pairs whose replaced words the article names ("Alice replaces Bob") go
    first, so "The club of Ana is Leeds" rewrites "The club of Ana is Oslo" after
    "Ana left Oslo", not "The club of Ben is Leeds"; then the pairs that keep more
    words."""
    said = [text for text in new if wording.grounded(text, chunk)]
    pairs = []
    for fact in facts:
        for text in said:
            found = wording.swap(fact.text, text)
            if found.share >= share:
                pairs.append((wording.mentions(chunk, found.replaced), found.share, fact.id, text))
    pairs.sort(key=lambda pair: (pair[0], pair[1]), reverse=True)  # stable: deterministic
    chosen: dict[int, str] = {}
    for _, _, fact_id, text in pairs:
        if fact_id not in chosen and text not in chosen.values():
            chosen[fact_id] = text
    return chosen


def _not_restated(
    ctx: DocContext, facts: list[Fact], new: Sequence[str], ended: set[int]
) -> list[Fact]:
    """``facts`` less those one of the chunk's new facts says again (add_new_facts
    reinforces those: they are true, and no verdict is asked), unless a sentence of
    the article says they have ended (``ended``): then the repeat is the model's
    misreading, and the fact is judged."""
    if not facts or not new:
        return facts
    stored = ctx.vectors.embed(ctx.session, [f.text for f in facts])
    fresh = ctx.vectors.embed(ctx.session, list(new))
    close = (stored @ fresh.T) >= ctx.settings.duplicate_threshold
    return [
        fact
        for fact, row in zip(facts, close, strict=True)
        if fact.id in ended
        or not any(
            hit and wording.same_statement(fact.text, text)
            for hit, text in zip(row, new, strict=True)
        )
    ]


def _could_replace(fact: Fact, new: Sequence[str], share: float) -> bool:
    """Whether one of the chunk's new facts is ``fact`` with one span changed."""
    return any(wording.swap(fact.text, text).share >= share for text in new)


def _about(seen: Shown, fact: Fact, share: float) -> bool:
    """Whether the article (title included) is about ``fact``: it names all that the
    fact names ("Bob Marsh left Acme Robotics" for "Bob Marsh is the chief executive
    of Acme Robotics"), one of its sentences speaks of it though naming it only in
    part (:func:`wording.touches`: "..., succeeding Ortega as mayor"), or one of its
    sentences is the fact with one span changed ("The CEO of Acme is vacant")."""
    if wording.names_all_of(seen.about, fact.text):
        return True
    return any(
        wording.touches(line, fact.text) or wording.swap(fact.text, line).share >= share
        for line in seen.lines
    )


def _worth_judging(
    ctx: DocContext, facts: list[Fact], new: Sequence[str], seen: Shown, ended: set[int]
) -> list[Fact]:
    """``facts`` a verdict could change: those one of the chunk's new facts could
    replace (one span changed), those the article is about (:func:`_about`), and
    those one of its sentences says have ended (``ended``, :mod:`changes`). Any other
    is left as it is without asking: "a fact the article does not mention stays
    TRUE", which the embedded model's verdicts do not keep (it gave P(FALSE)
    0.74-0.87 to facts about other people of the same company), and which an
    article's instructions to the model ("every stored fact is FALSE") try to
    break."""
    share = ctx.settings.rewrite_swap_share
    return [
        f for f in facts if f.id in ended or _could_replace(f, new, share) or _about(seen, f, share)
    ]


def _closures_so_far(ctx: DocContext) -> int:
    """How many facts this document has retired or rewritten."""
    count = ctx.session.scalar(
        select(func.count(Evidence.id)).where(
            Evidence.document_pk == ctx.doc.pk, Evidence.relation.in_(("retired", "rewritten"))
        )
    )
    return int(count or 0)


def _rename(ctx: DocContext, seen: Shown, chunk_idx: int, new: Sequence[str]) -> list[str]:
    """Put the new name of what the article says was renamed into every fact that
    holds the old one, stored (a new version of each) and new; returns the new."""
    out = list(new)
    for line in seen.lines:
        rename = changes.renamed(line)
        if rename is None:
            continue
        for fact in named.facts_naming(ctx, rename.old):
            text = named.renamed_text(fact.text, rename)
            if text is not None:
                _replace(ctx, fact, text, chunk_idx)
        out = [named.renamed_text(text, rename) or text for text in out]
    return out


def _edit_kbase(ctx: DocContext, chunk_idx: int, chunk: str, new: Sequence[str]) -> Sequence[str]:
    seen = shown(ctx, chunk)
    if not seen.text.strip():
        return new
    new = _rename(ctx, seen, chunk_idx, new)
    # A long chunk is far from a fact one of its sentences speaks of ("The Harbour
    # Cinema closed its doors ..."): each sentence is asked too; and a sentence that
    # says something ended looks up the facts holding its names, however far.
    found = candidates(ctx, seen.text, sentences=seen.lines)
    # Facts a sentence of the article says have ended ("X stepped down", "up from Y"):
    # that sentence is the evidence, and the verdict only vetoes when the model is
    # sure the fact still holds. Those found by name are ended already.
    ended = {f.id for f in found if changes.ended_by(seen.lines, f.text)}
    known = {f.id for f in found}
    by_name = [f for f in named.ended_by_name(ctx, seen.lines) if f.id not in known]
    found += by_name
    ended |= {f.id for f in by_name}
    facts = _worth_judging(ctx, _not_restated(ctx, found, new, ended), new, seen, ended)
    if not facts:
        return new
    settings = ctx.settings
    judge = _verdicts_scored if ctx.recorder.supports_logprobs else _verdicts_generated
    judged = [
        (fact, p)
        for fact, p in zip(facts, judge(ctx, seen, facts), strict=True)
        if p is not None
        and p >= (settings.ended_min_confidence if fact.id in ended else settings.min_confidence)
    ]
    rewrites = _pair_rewrites([f for f, _ in judged], new, seen.about, settings.rewrite_swap_share)
    for fact, p_false in judged:
        text = rewrites.get(fact.id)
        if text is not None:
            _replace(ctx, fact, text, chunk_idx)  # add_new_facts then finds it stored
            continue
        if fact.id in ended:
            # What holds now is among the chunk's new facts, if the article says it;
            # a generated rewrite would only add the small model's guess.
            edits.retire(ctx, fact)
            continue
        if p_false < settings.unmatched_min_confidence:
            continue
        # Nothing in the new text says what the fact says now: the verdict is the
        # only evidence and a rewrite must be generated, which a small model gets
        # wrong more often than a verdict, so the verdict must be surer, the article
        # must be about the fact, and one document closes few facts this way.
        if not _about(seen, fact, settings.rewrite_swap_share):
            continue
        if _closures_so_far(ctx) >= settings.max_verdict_closures:
            ctx.warn(f"{fact.text!r} kept: the document has closed "
                  f"{settings.max_verdict_closures} facts already, and no new fact of it "
                  "says what holds instead")  # fmt: skip
            continue
        _apply_false(ctx, fact, seen, chunk_idx)
    return new


#: How new documents edit stored facts, by name: the one registry of strategies.
STRATEGIES = {
    "rag": Strategy("rag", _edit_nothing),
    "erase-paper": Strategy("erase-paper", _edit_paper),
    "kbase": Strategy("kbase", _edit_kbase),
}


def strategy_named(name: str) -> Strategy:
    """The strategy registered as ``name``."""
    try:
        return STRATEGIES[name]
    except KeyError:
        known = ", ".join(STRATEGIES)
        raise ConfigError(f"unknown strategy {name!r}: choose one of {known}") from None


__all__ = ["STRATEGIES", "Strategy", "add_new_facts", "candidates", "strategy_named"]
