"""Answers and multiple-choice questions: what is retrieved, when the knowledge base
says it does not know, and how bad answers of the model are read."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from kbase.config import Settings
from kbase.errors import BadModelOutput, InputError
from kbase.kb import KnowledgeBase
from kbase.llm import BACKENDS, BackendEntry
from kbase.llm.base import LLMRequest
from kbase.llm.fake import ScriptedLLM, world
from kbase.ops.questions import _parse_answer
from kbase.pipeline import wording
from kbase.pipeline.extract import clean_facts
from kbase.prompts import MAX_FACTS_PER_CHUNK
from tests.helpers import news

ACME = "The CEO of Acme is Bob. The CFO of Acme is Carol."


def open_kb(folder: Path, **settings: object) -> KnowledgeBase:
    return KnowledgeBase.open(folder, settings=Settings(embedder="fake", llm="fake", **settings))  # type: ignore[arg-type]


def test_a_question_before_any_fact_is_unknown_and_cites_nothing(tmp_path: Path) -> None:
    with open_kb(tmp_path / "kb") as kb:
        kb.ingest([news("d1", ACME, day=10, month=3)])
        early = kb.ask("Who is the CEO of Acme?", as_of=date(2024, 1, 1))
    assert early.known is False and early.citations == [] and early.facts == []
    assert "Bob" not in early.answer and early.to_dict()["known"] is False


def test_facts_under_the_relevance_floor_are_not_shown_and_the_answer_is_unknown(
    tmp_path: Path,
) -> None:
    with open_kb(tmp_path / "kb", answer_min_score=1.01) as kb:
        kb.ingest([news("d1", ACME)])
        answer = kb.ask("Who is the CEO of Acme?")
        assert answer.known is False and answer.facts == []
        assert kb.choose("Who is the CEO of Acme?", ["Bob", "Carol"], allow_unknown=True) is None
        # Without abstention a choice is always made.
        assert kb.choose("Who is the CEO of Acme?", ["Bob", "Carol"]) in (0, 1)


def test_an_answer_the_model_says_it_does_not_know_is_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def declines(request: LLMRequest) -> object:
        if request.task == "answer":
            return json.dumps({"known": False, "answer": "Bob, probably.", "citations": [1]})
        return world(request)

    monkeypatch.setitem(BACKENDS, "declines", BackendEntry(lambda **_: ScriptedLLM(declines)))
    with KnowledgeBase.open(
        tmp_path / "kb", settings=Settings(embedder="fake", llm="declines")
    ) as kb:
        kb.ingest([news("d1", ACME)])
        answer = kb.ask("Who is the CEO of Acme?")
    assert answer.known is False and answer.citations == [] and "Bob" not in answer.answer


def test_choose_abstains_when_no_choice_is_stated_and_picks_one_that_is(tmp_path: Path) -> None:
    with open_kb(tmp_path / "kb") as kb:
        kb.ingest([news("d1", ACME)])
        question = "Who is the CEO of Acme?"
        assert kb.choose(question, ["Dana", "Bob"], allow_unknown=True) == 1
        assert kb.choose(question, ["Dana", "Erin"], allow_unknown=True) is None


MAYOR = "Helen Ortega is the mayor of Millbrook. Millbrook has 40,000 people."


def answers_first(request: LLMRequest) -> object:
    """A model sure of the first choice and of fact 1, whatever it is asked."""
    if request.task == "choice":
        return {c: (0.0 if i == 0 else -9.0) for i, c in enumerate(request.choices or ())}
    if request.task == "answer":
        return json.dumps({"known": True, "answer": "Helen Ortega.", "citations": [1]})
    return world(request)


def test_a_fact_about_another_place_answers_nothing_whatever_the_model_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(BACKENDS, "first", BackendEntry(lambda **_: ScriptedLLM(answers_first)))
    settings = Settings(embedder="fake", llm="first", answer_min_score=0.0)
    with KnowledgeBase.open(tmp_path / "kb", settings=settings) as kb:
        kb.ingest([news("d1", MAYOR)])
        elsewhere = "Who is the mayor of Dunmere?"
        assert kb.ask(elsewhere).known is False
        assert kb.choose(elsewhere, ["Helen Ortega", "Dana Whitlock"], allow_unknown=True) is None
        # Without abstention a choice is still made; about Millbrook, the answer stands.
        assert kb.choose(elsewhere, ["Helen Ortega", "Dana Whitlock"]) == 0
        here = "Who is the mayor of Millbrook?"
        assert kb.ask(here).known is True
        assert kb.choose(here, ["Helen Ortega", "Dana Whitlock"], allow_unknown=True) == 0
        # A choice no retrieved fact names is not known either.
        assert kb.choose(here, ["Dana Whitlock", "Helen Ortega"], allow_unknown=True) is None


def test_an_answer_cites_only_the_facts_about_what_was_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def cites_everything(request: LLMRequest) -> object:
        if request.task == "answer":
            return json.dumps({"known": True, "answer": "Helen Ortega.", "citations": [1, 2, 3]})
        return world(request)

    monkeypatch.setitem(BACKENDS, "all", BackendEntry(lambda **_: ScriptedLLM(cites_everything)))
    settings = Settings(embedder="fake", llm="all", answer_min_score=0.0)
    with KnowledgeBase.open(tmp_path / "kb", settings=settings) as kb:
        kb.ingest([news("d1", MAYOR), news("d2", "Globex Foods opened a bakery in York.", day=2)])
        answer = kb.ask("Who is the mayor of Millbrook?")
    assert answer.known is True
    assert [c.doc_id for c in answer.citations] == ["d1"]


@pytest.mark.parametrize(
    ("question", "answer", "fact", "context", "expected"),
    [
        ("Who is the mayor of Millbrook?", "Helen Ortega", MAYOR, "", True),
        ("Who is the mayor of Dunmere?", "Helen Ortega", MAYOR, "", False),
        # The article behind a fact may name what the fact leaves out.
        ("Who is the mayor of Millbrook?", "Helen Ortega", "Mayor Helen Ortega spoke.", MAYOR,
         True),
        ("Who coaches the Port Wenlow Harriers?", "Ivo Stanek", "Stanek coaches the Harriers.",
         "Ivo Stanek took over at Port Wenlow.", True),
        ("Who coaches the Port Wenlow Harriers?", "Ivo Stanek", "Stanek coaches the Harriers.",
         "", False),
        ("Which club does Jonah Ekwueme play for?", "Port Wenlow Harriers",
         "Jonah Ekwueme scored for the Harriers.", "", True),
        ("How many people live in Millbrook?", "38,400", MAYOR, "", False),
        # An answer that names nothing, or a question whose abbreviations facts spell out.
        ("What is planned for the Ferris Lane pool?", "will close",
         "The Ferris Lane pool will close.", "", True),
        ("Who is the CEO of Acme?", "Bob", "The chief executive of Acme is Bob.", "", True),
    ],
)  # fmt: skip
def test_a_fact_answers_what_it_and_its_article_name(
    question: str, answer: str, fact: str, context: str, expected: bool
) -> None:
    assert wording.answers(question, answer, fact, context) is expected


def test_any_number_of_choices_up_to_26_and_a_clear_error_past_it(tmp_path: Path) -> None:
    names = [f"Person {i}" for i in range(25)] + ["Bob"]
    with open_kb(tmp_path / "kb") as kb:
        kb.ingest([news("d1", ACME)])
        assert kb.choose("Who is the CEO of Acme?", names) == 25
        with pytest.raises(InputError, match="at most 26 choices"):
            kb.choose("Who is the CEO of Acme?", [*names, "Carol"])
        with pytest.raises(InputError, match="at most 25 choices"):
            kb.choose("Who is the CEO of Acme?", names, allow_unknown=True)


@pytest.mark.parametrize(
    ("cited", "kept"),
    [([1e999], []), ([2, 1, 2], [2, 1]), ([0, 9, -1], []), ([True, 1.0, "1"], []), ([1], [1])],
)
def test_citations_that_are_not_fact_numbers_are_dropped(
    cited: list[object], kept: list[int]
) -> None:
    text = json.dumps({"known": True, "answer": "Bob.", "citations": cited})
    assert _parse_answer(text, 2) == (True, "Bob.", kept)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        '{"answer": 3}',
        '{"answer": "x", "known": "yes"}',
        '{"answer": "x", "citations": 5}',
    ],
)
def test_an_answer_that_does_not_parse_is_a_one_line_model_error(text: str) -> None:
    with pytest.raises(BadModelOutput, match="did not parse"):
        _parse_answer(text, 2)


def test_an_extraction_answer_with_thousands_of_facts_keeps_the_first_few() -> None:
    facts = clean_facts({"facts": [f"Fact number {i} holds." for i in range(50_000)]})
    assert facts is not None and len(facts) == MAX_FACTS_PER_CHUNK
    assert facts[0] == "Fact number 0 holds."


def prefers_unknown(request: LLMRequest) -> object:
    """A model that always says the facts do not tell, with the first choice next."""
    if request.task == "choice":
        letters = request.choices or ()
        return {c: (0.0 if i == len(letters) - 1 else -1.0 - i) for i, c in enumerate(letters)}
    return world(request)


def test_the_facts_overrule_a_model_that_says_they_do_not_tell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(BACKENDS, "unsure", BackendEntry(lambda **_: ScriptedLLM(prefers_unknown)))
    settings = Settings(embedder="fake", llm="unsure", answer_min_score=0.0)
    with KnowledgeBase.open(tmp_path / "kb", settings=settings) as kb:
        kb.ingest([news("d1", MAYOR)])
        here = "Who is the mayor of Millbrook?"
        # Its next choice, Helen Ortega, is what a retrieved fact about Millbrook says.
        assert kb.choose(here, ["Helen Ortega", "Dana Whitlock"], allow_unknown=True) == 0
        # Its next choice is named by no fact: the model's "unknown" stands.
        assert kb.choose(here, ["Dana Whitlock", "Helen Ortega"], allow_unknown=True) is None
        # Nothing retrieved is about Dunmere: unknown, whatever the facts name.
        elsewhere = "Who is the mayor of Dunmere?"
        assert kb.choose(elsewhere, ["Helen Ortega", "Dana Whitlock"], allow_unknown=True) is None
