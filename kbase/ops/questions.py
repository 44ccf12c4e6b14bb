"""Questions: retrieval of the facts valid now or as of a date, and answers from the
LLM with citations to the documents behind them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from kbase import prompts
from kbase.embed.base import Vectors
from kbase.errors import BadModelOutput
from kbase.llm.output import parse_json
from kbase.pipeline import wording
from kbase.records import Use
from kbase.reports import Answer, Citation, FactHit
from kbase.runtime import Runtime
from kbase.store import queries
from kbase.store.queries import FactColumns
from kbase.vectors import Hit


def retrieve(
    rt: Runtime, session: Session, query: str, k: int, as_of: date | None
) -> list[Hit[FactColumns]]:
    """The ``k`` facts nearest ``query`` that are current (or valid ``as_of``)."""
    vector = rt.embedder.embed([query])[0]
    with session.begin():
        hits = _retrieve(rt, session, vector, k, as_of)
    rt.save_caught_up_index(session)
    return hits


def _retrieve(
    rt: Runtime, session: Session, vector: Vectors, k: int, as_of: date | None
) -> list[Hit[FactColumns]]:
    """Retrieval inside the caller's transaction, the index caught up with it first."""
    vectors = rt.read_vectors(session)
    return vectors.retrieve(session, vector, k, as_of=as_of, token=vectors.synced)


def fact_hits(session: Session, hits: list[Hit[FactColumns]]) -> list[FactHit]:
    """Retrieved facts with the provenance a user sees."""
    docs = queries.citations_by_pk(
        session, {h.fact.document_pk for h in hits if h.citation is None}
    )
    out = []
    for hit in hits:
        citation = hit.citation or docs[hit.fact.document_pk]
        out.append(FactHit(hit.fact.id, hit.fact.text, citation.doc_id, hit.score, citation))
    return out


@dataclass(frozen=True)
class _Context:
    """What a question's prompt is built from: the facts, listed as (date, text); the
    documents whose text that puts in the prompt (every version's, for rewritten
    facts); and, for each fact, the text of its documents."""

    facts: list[FactHit]
    listed: list[tuple[str, str]]
    uses: list[Use]
    sources: list[str]


def _context(session: Session, hits: list[Hit[FactColumns]]) -> _Context:
    facts = fact_hits(session, hits)
    lineages = [queries.lineage_documents(session, h.fact) for h in hits]
    texts = queries.document_texts(session, set().union(*lineages))
    return _Context(
        facts,
        [(f.citation.published or "undated", f.text) for f in facts],
        [(pk, "context") for pk in sorted(texts)],
        ["\n".join(texts[pk] for pk in sorted(lineage)) for lineage in lineages],
    )


def _answers(context: _Context, i: int, question: str, answer: str = "") -> bool:
    """Whether fact ``i`` (0-based) can answer ``question`` with ``answer``
    (:func:`kbase.pipeline.wording.answers`)."""
    return wording.answers(question, answer, context.facts[i].text, context.sources[i])


def search(rt: Runtime, query: str, k: int, as_of: date | None) -> list[FactHit]:
    """Retrieval only: the facts nearest ``query`` with their provenance."""
    vector = rt.embedder.embed([query])[0]
    with rt.session() as session:
        # One transaction: the state check, the search, the rows and their citations.
        with session.begin():
            found = fact_hits(session, _retrieve(rt, session, vector, k, as_of))
        rt.save_caught_up_index(session)
    return found


def _relevant(rt: Runtime, hits: list[Hit[FactColumns]]) -> list[Hit[FactColumns]]:
    """The hits close enough to a question to be shown to the model."""
    return [h for h in hits if h.score >= rt.settings.answer_min_score]


def unknown(as_of: date | None) -> Answer:
    """The answer when no stored fact answers the question: nothing cited, no fact."""
    when = f" as of {as_of.isoformat()}" if as_of else ""
    return Answer(f"I don't know: no stored fact{when} answers this question.", [], [], False)


def ask(rt: Runtime, question: str, k: int, as_of: date | None) -> Answer:
    """The LLM's answer from the retrieved facts, citing the documents it used, or
    :func:`unknown` when no fact is close enough, the model says the facts do not
    answer, or it cites none of them."""
    with rt.session() as session:
        hits = _relevant(rt, retrieve(rt, session, question, k, as_of))
        if not hits:
            return unknown(as_of)
        with session.begin():
            context = _context(session, hits)
            request = prompts.answer_request(
                question, context.listed, as_of=as_of.isoformat() if as_of else None
            )
            response = rt.recorder(session).generate(request, context.uses)
            known, text, numbers = _parse_answer(response.text, len(context.facts))
    # An answer stands only on cited facts about what the question names, and cites
    # only those (not a fact about another company the model also listed).
    numbers = [n for n in numbers if _answers(context, n - 1, question)]
    if not known or not numbers:
        return unknown(as_of)
    citations: list[Citation] = []
    for n in numbers:
        c = context.facts[n - 1].citation
        if c not in citations:
            citations.append(c)
    return Answer(text, citations, context.facts)


@dataclass(frozen=True)
class Choice:
    """A multiple-choice answer: the index chosen (None: not known), why, and the
    model's log-probability of each letter (empty when it was not asked)."""

    index: int | None
    reason: str
    scores: dict[str, float]


#: Why :func:`choice` chose what it did.
CHOSEN = "chosen"
NOTHING_CLOSE = "no fact close enough"
MODEL_UNKNOWN = "the model chose unknown"
GIVEN_DESPITE_MODEL = "the model chose unknown, but a retrieved fact gives its next choice"
UNSUPPORTED = "no retrieved fact gives the choice"


def choice(
    rt: Runtime,
    question: str,
    choices: list[str],
    k: int,
    as_of: date | None,
    *,
    allow_unknown: bool = False,
) -> Choice:
    """The choice the LLM scores highest given the retrieved facts, and why. With
    ``allow_unknown``, none when no fact is close enough, no retrieved fact can give
    the choice, or the model chooses the added last choice (that the facts do not
    say) and no retrieved fact gives its likeliest other choice either."""
    with rt.session() as session:
        hits = retrieve(rt, session, question, k, as_of)
        if allow_unknown:
            hits = _relevant(rt, hits)
            if not hits:
                return Choice(None, NOTHING_CLOSE, {})
        with session.begin():
            context = _context(session, hits)
            request = prompts.choice_request(
                question,
                choices,
                context.listed,
                as_of=as_of.isoformat() if as_of else None,
                allow_unknown=allow_unknown,
            )
            scores = rt.recorder(session).score(request, context.uses)
    letters = request.choices or ()
    ranked = dict(scores.scores or {})

    def likeliest(n: int) -> int:
        return max(range(n), key=lambda i: (ranked.get(letters[i], -1e9), -i))

    def given(i: int) -> bool:  # a retrieved fact about what the question names gives it
        return any(_answers(context, h, question, choices[i]) for h in range(len(hits)))

    best = likeliest(len(letters))
    if best >= len(choices):
        # The embedded model takes "the facts do not say" for 14 of 18 answerable
        # questions it declines, with "The bridge is closed for repairs" listed for "Can
        # drivers use the Sallow Bridge?": the facts overrule it when they give its
        # likeliest real choice.
        runner_up = likeliest(len(choices))
        if given(runner_up):
            return Choice(runner_up, GIVEN_DESPITE_MODEL, ranked)
        return Choice(None, MODEL_UNKNOWN, ranked)
    if allow_unknown and not given(best):
        return Choice(None, UNSUPPORTED, ranked)
    return Choice(best, CHOSEN, ranked)


def choose(
    rt: Runtime,
    question: str,
    choices: list[str],
    k: int,
    as_of: date | None,
    *,
    allow_unknown: bool = False,
) -> int | None:
    """Index of the choice the LLM scores highest given the retrieved facts
    (:func:`choice`); None when it is not known."""
    return choice(rt, question, choices, k, as_of, allow_unknown=allow_unknown).index


def _parse_answer(text: str | None, n_facts: int) -> tuple[bool, str, list[int]]:
    """Whether the model says the facts answer, its answer, and the fact numbers it
    cites that exist (a number that is not a whole number in range is dropped)."""
    try:
        data: Any = parse_json(text)
        answer = data["answer"]
        known = data.get("known", True)
        cited = data.get("citations", [])
    except (KeyError, TypeError, AttributeError) as exc:
        raise BadModelOutput(
            "the model's answer did not parse; try again, or use `kb search` to see the facts"
        ) from exc
    if not isinstance(answer, str) or not isinstance(known, bool) or not isinstance(cited, list):
        raise BadModelOutput("the model's answer did not parse; try again")
    numbers = [n for n in cited if type(n) is int and 1 <= n <= n_facts]
    return known, answer.strip(), list(dict.fromkeys(numbers))
