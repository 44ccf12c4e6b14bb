"""Editing on insert: each decision path and each guard of the three strategies,
on the deterministic fake-world model ("SUBJECT is OBJECT." sentences)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

from sqlalchemy import select

from kbase.llm.base import LLMRequest
from kbase.llm.fake import ScriptedLLM, world
from kbase.pipeline.wording import names, names_most_of, same_statement, swap
from kbase.store.models import Document, Evidence, Fact
from tests.conftest import OpenKB
from tests.helpers import news

BOB = news("d1", "The CEO of Acme is Bob. The harbour of Leeds is busy.", day=1)
ALICE = news("d2", "The CEO of Acme is Alice.", day=2)


def facts(kb) -> list[Fact]:  # type: ignore[no-untyped-def]
    return kb.runtime.read(lambda s: list(s.scalars(select(Fact).order_by(Fact.id))))


def current(kb) -> set[str]:  # type: ignore[no-untyped-def]
    return {f.text for f in facts(kb) if f.valid_until is None}


def relations(kb, doc_id: str) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    def load(s):  # type: ignore[no-untyped-def]
        pk = s.scalar(select(Document.pk).where(Document.doc_id == doc_id))
        rows = s.execute(
            select(Evidence.relation, Fact.text)
            .join(Fact, Fact.id == Evidence.fact_id)
            .where(Evidence.document_pk == pk)
            .order_by(Evidence.id)
        )
        return [tuple(r) for r in rows]

    return kb.runtime.read(load)


def llm_with(**overrides) -> ScriptedLLM:  # type: ignore[no-untyped-def]
    """The fake world, with some tasks answered differently."""

    def handler(request: LLMRequest):  # type: ignore[no-untyped-def]
        answer = overrides.get(request.task)
        return (
            answer(request)
            if callable(answer)
            else (answer if answer is not None else world(request))
        )

    return ScriptedLLM(handler, supports_logprobs=overrides.pop("logprobs", True))


def tasks(llm: ScriptedLLM) -> list[str]:
    return [r.task for r in llm.requests]


# -- kbase strategy --------------------------------------------------------------------


def test_a_contradicted_fact_is_rewritten_as_a_new_version_linked_to_the_old(
    open_kb: OpenKB,
) -> None:
    kb = open_kb()
    kb.ingest([BOB, ALICE])
    (old,) = [f for f in facts(kb) if f.text == "The CEO of Acme is Bob."]
    (new,) = [f for f in facts(kb) if f.replaces_id == old.id]
    assert (old.valid_from, old.valid_until, old.close_reason) == (1, 2, "rewritten")
    assert new.text == "The CEO of Acme is Alice." and new.lineage_id == old.lineage_id
    assert ("rewritten", "The CEO of Acme is Bob.") in relations(kb, "d2")
    assert current(kb) == {"The CEO of Acme is Alice.", "The harbour of Leeds is busy."}


def test_kbase_scores_verdicts_and_takes_the_rewrite_from_the_new_facts(open_kb: OpenKB) -> None:
    llm = llm_with()
    kb = open_kb(llm=llm)
    kb.ingest([BOB])
    llm.requests.clear()
    kb.ingest([ALICE])
    assert tasks(llm) == ["extract", "verdict"]  # nothing generated but the facts
    assert llm.requests[1].max_tokens == 1 and llm.requests[1].choices == ("TRUE", "FALSE")
    assert [f.text for f in facts(kb)].count("The CEO of Acme is Alice.") == 1


def after_bob_extracts(*found: str) -> Callable[[LLMRequest], str]:
    """Extraction as the fake world does it for the Bob article, and ``found`` for
    any later one."""

    def extract(request: LLMRequest) -> str:
        if "Bob" in request.fields["chunk"]:
            return str(world(request))
        return json.dumps({"facts": list(found)})

    return extract


# Nothing extracted after the first document: no new fact can serve as a rewrite, so
# the model is asked for one.
only_first_document_facts = after_bob_extracts()


def test_without_a_matching_new_fact_a_rewrite_is_generated(open_kb: OpenKB) -> None:
    llm = llm_with(extract=only_first_document_facts)
    kb = open_kb(llm=llm)
    kb.ingest([BOB])
    llm.requests.clear()
    kb.ingest([ALICE])
    assert tasks(llm) == ["extract", "verdict", "rewrite"]
    assert "The CEO of Acme is Alice." in current(kb)


def test_a_new_fact_about_something_else_is_not_taken_as_the_rewrite(open_kb: OpenKB) -> None:
    llm = llm_with(extract=after_bob_extracts("Acme sells striped kites."))
    kb = open_kb(llm=llm)
    kb.ingest([BOB, ALICE])
    assert "rewrite" in tasks(llm)
    assert current(kb) == {
        "The CEO of Acme is Alice.",  # the generated rewrite
        "Acme sells striped kites.",
        "The harbour of Leeds is busy.",
    }


def test_a_rewrite_is_a_new_fact_with_one_span_changed() -> None:
    def swap_share(old: str, new: str) -> float:
        return swap(old, new).share

    assert swap_share("The CEO of Acme is Bob.", "The CEO of Acme is Alice Chen.") == 5 / 7
    assert swap_share("Bob Marsh is the CEO of Acme.", "Alice Chen is the CEO of Acme.") == 5 / 7
    assert swap_share("Polar Freight runs 40 trucks.", "Polar Freight runs 52 trucks.") == 4 / 5
    assert swap_share("The CEO of Acme is Bob.", "The CFO of Initech is Carol.") == 1 / 6
    assert swap_share("The CEO of Acme is Bob.", "the CEO of Acme is Bob") == 0.0  # no change


def test_a_fact_no_new_fact_restates_is_edited_only_on_a_sure_verdict(open_kb: OpenKB) -> None:
    # "Felix is head of sales" says nothing of the general counsel: a 0.7 FALSE alone,
    # which would make the model invent the counsel's successor, changes nothing.
    fairly_sure = {"TRUE": math.log(0.3), "FALSE": math.log(0.7)}
    llm = llm_with(extract=only_first_document_facts, verdict=fairly_sure)
    kb = open_kb(llm=llm)
    kb.ingest([BOB, ALICE])
    assert "The CEO of Acme is Bob." in current(kb)
    assert "rewrite" not in tasks(llm)


def test_a_new_fact_rewrites_the_stored_fact_whose_replaced_words_the_article_names(
    open_kb: OpenKB,
) -> None:
    # Both stored facts are the new one with one span changed; the article names Oslo,
    # the club Ana left, so Ana's fact is rewritten and Ben's, judged FALSE with the
    # same 0.7, keeps its club.
    fairly_sure = {"TRUE": math.log(0.3), "FALSE": math.log(0.7)}
    llm = llm_with(verdict=fairly_sure)
    kb = open_kb(llm=llm)
    kb.ingest([news("d1", "The club of Ana is Oslo. The club of Ben is Leeds.", day=1)])
    kb.ingest([news("d2", "Ana left Oslo. The club of Ana is Leeds.", day=2)])
    assert len([r for r in llm.requests if r.task == "verdict"]) == 2
    assert current(kb) == {
        "The club of Ana is Leeds.",
        "The club of Ben is Leeds.",
        "Ana left Oslo.",
    }
    assert "rewrite" not in tasks(llm)


def test_statements_are_the_same_only_in_the_same_words() -> None:
    assert same_statement("Acme is based in Leeds.", "acme is based in Leeds")
    assert same_statement("Acme is a company in Leeds.", "Acme is company in Leeds.")
    # MiniLM puts these above the duplicate threshold; they say different things.
    assert not same_statement(
        "Omar Quist is the chief executive of Aurora.",
        "Omar Quist is the general counsel of Aurora.",
    )
    assert not same_statement("Bob was the CEO of Acme.", "Bob is the CEO of Acme.")


def test_a_rewrite_of_null_retires_the_fact(open_kb: OpenKB) -> None:
    llm = llm_with(extract=only_first_document_facts, rewrite=json.dumps({"rewrite": None}))
    kb = open_kb(llm=llm)
    kb.ingest([BOB, news("d2", "The CEO of Acme is vacant.", day=2)])
    (bob,) = [f for f in facts(kb) if f.text == "The CEO of Acme is Bob."]
    assert bob.close_reason == "retired" and bob.valid_until == 2
    assert ("retired", "The CEO of Acme is Bob.") in relations(kb, "d2")


def test_a_rewrite_equal_to_the_old_text_changes_nothing(open_kb: OpenKB) -> None:
    echo = json.dumps({"rewrite": "the CEO of Acme is Bob"})
    kb = open_kb(llm=llm_with(extract=only_first_document_facts, rewrite=echo))
    kb.ingest([BOB, ALICE])
    assert "The CEO of Acme is Bob." in current(kb)


def test_an_unparseable_rewrite_changes_nothing(open_kb: OpenKB) -> None:
    garbled = '{"rewrite": "The CEO'
    kb = open_kb(llm=llm_with(extract=only_first_document_facts, rewrite=garbled))
    kb.ingest([BOB, ALICE])
    assert "The CEO of Acme is Bob." in current(kb)


def test_a_low_confidence_verdict_changes_nothing_and_asks_no_rewrite(open_kb: OpenKB) -> None:
    unsure = {"TRUE": math.log(0.5), "FALSE": math.log(0.5)}
    llm = llm_with(verdict=unsure)
    kb = open_kb(llm=llm)
    kb.ingest([BOB, ALICE])
    assert "The CEO of Acme is Bob." in current(kb)
    assert "rewrite" not in tasks(llm)


def test_only_facts_close_to_the_new_text_are_candidates(open_kb: OpenKB) -> None:
    llm = llm_with()
    kb = open_kb(llm=llm)
    kb.ingest([BOB])
    llm.requests.clear()
    kb.ingest([ALICE])
    judged = [r.fields["fact"] for r in llm.requests if r.task == "verdict"]
    assert judged == ["The CEO of Acme is Bob."]  # never the unrelated harbour fact


def test_kbase_asks_no_verdict_about_a_fact_the_article_does_not_name(open_kb: OpenKB) -> None:
    # Carol's fact is close to the new text, but the article names only Acme of it,
    # and no new fact is hers with one span changed: a verdict could only do harm.
    llm = llm_with()
    kb = open_kb(llm=llm)
    kb.ingest([news("d1", "The CEO of Acme is Bob. The chair of Acme is Carol.", day=1)])
    llm.requests.clear()
    kb.ingest([ALICE])
    judged = [r.fields["fact"] for r in llm.requests if r.task == "verdict"]
    assert judged == ["The CEO of Acme is Bob."]
    assert "The chair of Acme is Carol." in current(kb)


STEPS_DOWN = news("d2", "Bob stepped down as the CEO of Acme on Monday.", day=2)


def test_a_fact_a_sentence_says_has_ended_is_retired_on_an_unsure_verdict(
    open_kb: OpenKB,
) -> None:
    # "Bob stepped down" says the fact has ended; the embedded model gave such facts
    # P(FALSE) 0.37. Nothing new says who the CEO is now: retired, nothing generated.
    unsure = {"TRUE": math.log(0.7), "FALSE": math.log(0.3)}
    llm = llm_with(extract=only_first_document_facts, verdict=unsure)
    kb = open_kb(llm=llm)
    kb.ingest([BOB, STEPS_DOWN])
    assert "The CEO of Acme is Bob." not in current(kb)
    assert ("retired", "The CEO of Acme is Bob.") in relations(kb, "d2")
    assert "rewrite" not in tasks(llm)


def test_an_ended_fact_stays_when_the_model_is_sure_it_still_holds(open_kb: OpenKB) -> None:
    sure_true = {"TRUE": math.log(0.95), "FALSE": math.log(0.05)}
    kb = open_kb(llm=llm_with(extract=only_first_document_facts, verdict=sure_true))
    kb.ingest([BOB, STEPS_DOWN])
    assert "The CEO of Acme is Bob." in current(kb)


def test_a_repeat_of_a_fact_its_article_says_has_ended_closes_it(open_kb: OpenKB) -> None:
    # The small model read "Fiona Reed is the chief executive" out of "Fiona Reed handed
    # the reins ... after 15 years as chief executive": kept, that repeat would have
    # reinforced the stored fact instead of letting the article close it.
    def extract(request: LLMRequest) -> str:
        if "stepped down" in request.fields["chunk"]:
            return json.dumps({"facts": ["The CEO of Acme is Bob.", "Bob stepped down."]})
        return str(world(request))

    unsure = {"TRUE": math.log(0.7), "FALSE": math.log(0.3)}
    kb = open_kb(llm=llm_with(extract=extract, verdict=unsure))
    kb.ingest([BOB, STEPS_DOWN])
    assert "The CEO of Acme is Bob." not in current(kb)
    assert "Bob stepped down." in current(kb)  # a fact that reports the change stays


def test_a_departure_said_of_the_future_is_no_evidence(open_kb: OpenKB) -> None:
    unsure = {"TRUE": math.log(0.7), "FALSE": math.log(0.3)}
    kb = open_kb(llm=llm_with(extract=only_first_document_facts, verdict=unsure))
    kb.ingest([BOB, news("d2", "Bob will step down as the CEO of Acme next year.", day=2)])
    assert "The CEO of Acme is Bob." in current(kb)


def test_an_article_is_about_a_fact_when_it_names_most_of_what_the_fact_names() -> None:
    assert names("The CEO of Acme's plant is Bob Marsh, for 1,200 staff.") == {
        "ceo", "acme", "bob", "marsh", "1", "200",
    }  # fmt: skip
    article = "Acme named Alice Chen its chief executive, replacing Bob Marsh."
    assert names_most_of(article, "Bob Marsh is the chief executive of Acme.")
    assert not names_most_of(article, "Carol Tate is the finance chief of Acme.")
    assert not names_most_of(article, "Acme is based in Leeds.")  # half is not most
    assert names_most_of(article, "The festival is held every year.")  # names nothing


def test_a_document_never_retires_its_own_facts(open_kb: OpenKB) -> None:
    llm = llm_with()
    kb = open_kb(llm=llm)
    kb.ingest([news("d1", "The CEO of Acme is Bob. The CEO of Acme is Alice.")])
    assert current(kb) == {"The CEO of Acme is Bob.", "The CEO of Acme is Alice."}
    assert "verdict" not in tasks(llm)


def test_a_repeated_fact_reinforces_the_stored_one_instead_of_duplicating_it(
    open_kb: OpenKB,
) -> None:
    kb = open_kb()
    kb.ingest([BOB, news("d2", "The CEO of Acme is Bob.", day=2)])
    assert [f.text for f in facts(kb)].count("The CEO of Acme is Bob.") == 1
    assert relations(kb, "d2") == [("reinforced", "The CEO of Acme is Bob.")]


def test_kbase_asks_no_verdict_about_a_fact_the_new_text_restates(open_kb: OpenKB) -> None:
    llm = llm_with()
    kb = open_kb(llm=llm)
    kb.ingest([BOB])
    llm.requests.clear()
    kb.ingest([news("d2", "The CEO of Acme is Bob. The harbour of Leeds is busy.", day=2)])
    assert tasks(llm) == ["extract"]
    assert ("reinforced", "The CEO of Acme is Bob.") in relations(kb, "d2")


def test_a_rewrite_that_repeats_a_stored_fact_retires_and_reinforces_instead(
    open_kb: OpenKB,
) -> None:
    harbour = json.dumps({"rewrite": "The harbour of Leeds is busy."})
    kb = open_kb(llm=llm_with(extract=only_first_document_facts, rewrite=harbour))
    kb.ingest([BOB, ALICE])
    (bob,) = [f for f in facts(kb) if f.text == "The CEO of Acme is Bob."]
    assert bob.close_reason == "retired"
    assert ("reinforced", "The harbour of Leeds is busy.") in relations(kb, "d2")


def test_without_logprobs_one_json_answer_judges_the_whole_chunk(open_kb: OpenKB) -> None:
    llm = llm_with(logprobs=False)
    kb = open_kb(llm=llm)
    kb.ingest([BOB])
    llm.requests.clear()
    kb.ingest([ALICE])
    assert tasks(llm) == ["extract", "verdicts"]
    assert "The CEO of Acme is Alice." in current(kb)


def test_a_batched_answer_of_the_wrong_length_changes_nothing(open_kb: OpenKB) -> None:
    llm = llm_with(logprobs=False, verdicts=json.dumps({"verdicts": ["FALSE", "FALSE"]}))
    kb = open_kb(llm=llm)
    kb.ingest([BOB, ALICE])
    assert "The CEO of Acme is Bob." in current(kb)


# -- the other strategies --------------------------------------------------------------


def test_rag_never_edits(open_kb: OpenKB) -> None:
    llm = llm_with()
    kb = open_kb(llm=llm, strategy="rag")
    kb.ingest([BOB, ALICE])
    assert {"The CEO of Acme is Bob.", "The CEO of Acme is Alice."} <= current(kb)
    assert set(tasks(llm)) == {"extract"}


def test_erase_paper_asks_once_per_candidate_then_once_per_rewrite(open_kb: OpenKB) -> None:
    llm = llm_with()
    kb = open_kb(llm=llm, strategy="erase-paper")
    kb.ingest([BOB])
    llm.requests.clear()
    kb.ingest([ALICE])
    assert tasks(llm) == ["extract", "paper_verdict", "rewrite"]
    assert current(kb) == {"The CEO of Acme is Alice.", "The harbour of Leeds is busy."}


def test_erase_paper_reinforces_and_keeps_at_least_the_best_candidate(open_kb: OpenKB) -> None:
    llm = llm_with()
    kb = open_kb(llm=llm, strategy="erase-paper", candidate_threshold=0.99)
    kb.ingest([BOB])
    llm.requests.clear()
    kb.ingest([news("d2", "Unrelated words entirely.", day=2)])
    assert tasks(llm) == ["extract", "paper_verdict"]  # the best match, though far


def test_erase_paper_treats_an_unparseable_verdict_as_no_change(open_kb: OpenKB) -> None:
    kb = open_kb(llm=llm_with(paper_verdict="maybe?"), strategy="erase-paper")
    kb.ingest([BOB, ALICE])
    assert "The CEO of Acme is Bob." in current(kb)


# -- accounting ------------------------------------------------------------------------


def test_every_document_records_its_calls_tokens_and_model_time(open_kb: OpenKB) -> None:
    kb = open_kb()
    kb.ingest([BOB, ALICE])
    docs = kb.runtime.read(lambda s: list(s.scalars(select(Document).order_by(Document.seq))))
    assert [d.llm_calls for d in docs] == [1, 2]  # extract; extract and one verdict
    assert all(d.prompt_tokens > 0 and d.completion_tokens > 0 for d in docs)
    assert docs[1].cached_tokens > 0  # prompts share the instructions already computed


# -- facts found by name ---------------------------------------------------------------

CARETAKER = news("d1", "Kofi Ansah will take charge as caretaker.", day=1)
STANEK = news(
    "d2", "Ivo Stanek was appointed head coach on Monday, taking over from caretaker Kofi Ansah.",
    day=2,
)  # fmt: skip


def caretaker_only(request: LLMRequest) -> str:
    """The fake world's extraction for the caretaker article; nothing for later ones."""
    if "will take charge" in request.fields["chunk"]:
        return str(world(request))
    return json.dumps({"facts": []})


def test_a_fact_far_in_meaning_is_found_by_the_name_a_change_is_said_of(
    open_kb: OpenKB,
) -> None:
    # No fact is close enough in meaning (a radius of 0.99); the sentence says that
    # caretaker Kofi Ansah was taken over from, so his fact is looked up by his name.
    unsure = {"TRUE": math.log(0.7), "FALSE": math.log(0.3)}
    llm = llm_with(extract=caretaker_only, verdict=unsure)
    kb = open_kb(llm=llm, candidate_threshold=0.99)
    kb.ingest([CARETAKER, STANEK])
    assert ("retired", "Kofi Ansah will take charge as caretaker.") in relations(kb, "d2")


def test_a_name_alone_with_no_change_said_of_it_finds_nothing(open_kb: OpenKB) -> None:
    llm = llm_with(extract=caretaker_only)
    kb = open_kb(llm=llm, candidate_threshold=0.99)
    kb.ingest([CARETAKER, news("d2", "Kofi Ansah watched from the stand on Monday.", day=2)])
    assert "verdict" not in tasks(llm)
    assert "Kofi Ansah will take charge as caretaker." in current(kb)


MEMBERS = news("d1", "Lendmoor Mutual has about 90,000 members across the county.", day=1)
RENAMED = news(
    "d2",
    "Lendmoor Mutual, the savings bank based in Dunmere, will now be known as Northreach "
    "Bank. Lendmoor Mutual members keep their accounts and cards.",
    day=2,
)


def test_a_rename_puts_the_new_name_in_every_fact_that_holds_the_old_one(
    open_kb: OpenKB,
) -> None:
    kb = open_kb(candidate_threshold=0.99)
    kb.ingest([MEMBERS, RENAMED])
    now = current(kb)
    assert "Northreach Bank has about 90,000 members across the county." in now
    assert "Northreach Bank members keep their accounts and cards." in now  # a new fact
    assert [t for t in now if "Lendmoor Mutual" in t] == [RENAMED_SENTENCE]  # the rename
    members = next(f for f in kb.facts() if f.text.startswith("Northreach Bank has"))
    versions = kb.history(members.id)
    assert [v.text for v in versions] == [MEMBERS.text, members.text]  # as of before: old
    assert versions[0].close_reason == "rewritten"


RENAMED_SENTENCE = (
    "Lendmoor Mutual, the savings bank based in Dunmere, will now be known as Northreach Bank."
)


def test_a_rename_said_of_the_future_renames_nothing(open_kb: OpenKB) -> None:
    kb = open_kb(candidate_threshold=0.99)
    plan = news("d2", "Lendmoor Mutual will be renamed Northreach Bank next year.", day=2)
    kb.ingest([MEMBERS, plan])
    assert "Lendmoor Mutual has about 90,000 members across the county." in current(kb)
