"""A deterministic stand-in for the LLM, for unit tests and fake-model benchmarks.

Its world is sentences of the form "SUBJECT is OBJECT.": extraction returns the
sentences of a chunk; a stored fact "S is O" is FALSE after an article that says
"S is P" with P != O, and its rewrite is "S is P."; answers cite the first fact.
It reads the structured ``fields`` of a request, never the prompt text, so it
is a pure function of the request, as the recorded replay assumes.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping

from kbase.llm.base import LLMRequest
from kbase.llm.fake import ScriptedLLM

_SENTENCE = re.compile(r"[^.!?]+[.!?]")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.findall(text) if len(s.strip()) >= 5]


def subject_and_object(sentence: str) -> tuple[str, str] | None:
    if " is " not in sentence:
        return None
    subject, obj = sentence.rstrip(".!?").split(" is ", 1)
    return subject.strip().casefold(), obj.strip().casefold()


def contradiction(chunk: str, fact: str) -> str | None:
    """The chunk's sentence that gives the fact's subject another object, if any."""
    parsed = subject_and_object(fact)
    if parsed is None:
        return None
    for sentence in sentences(chunk):
        other = subject_and_object(sentence)
        if other and other[0] == parsed[0] and other[1] != parsed[1]:
            return sentence
    return None


def world(request: LLMRequest) -> str | Mapping[str, float]:
    fields = request.fields
    task = request.task
    if task == "extract":
        return json.dumps({"facts": sentences(fields["chunk"])})
    if task == "verdict":
        false = contradiction(fields["chunk"], fields["fact"]) is not None
        return {"TRUE": math.log(0.1 if false else 0.9), "FALSE": math.log(0.9 if false else 0.1)}
    if task == "verdicts":
        return json.dumps(
            {
                "verdicts": [
                    "FALSE" if contradiction(fields["chunk"], f) else "TRUE"
                    for f in fields["facts"]
                ]
            }
        )
    if task == "paper_verdict":
        if contradiction(fields["chunk"], fields["fact"]):
            verdict = "make_false"
        elif fields["fact"].casefold() in fields["chunk"].casefold():
            verdict = "reinforce"
        else:
            verdict = "no_change"
        return json.dumps({"reasoning": "The article is about the fact.", "verdict": verdict})
    if task == "rewrite":
        return json.dumps({"rewrite": contradiction(fields["chunk"], fields["fact"])})
    if task == "answer":
        return json.dumps({"answer": fields["facts"][0], "citations": [1]})
    if task == "choice":
        top = fields["facts"][0].casefold() if fields["facts"] else ""
        letters = "ABCDEFGH"
        return {
            letters[i]: (0.0 if c.casefold() in top else -5.0)
            for i, c in enumerate(fields["choices"])
        }
    raise ValueError(f"the fake world has no answer for task {task!r}")


def world_llm(*, logprobs: bool = True) -> ScriptedLLM:
    return ScriptedLLM(world, model_id="fake-world", supports_logprobs=logprobs)
