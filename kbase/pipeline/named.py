"""Stored facts found by the names they hold rather than by meaning.

An article that ends a fact often says so in words far from the fact's: "taking over
from caretaker Kofi Ansah" is 0.24 cosine from "Kofi Ansah will take charge as
caretaker", below any radius that keeps candidates few. A sentence with a cue of
change (:func:`kbase.pipeline.changes.cue_names`) looks up the current facts that
hold its names, and those it ends join the candidates; a rename ("Lendmoor Mutual
will now be known as Northreach Bank") looks up every fact holding the old name.
Each lookup is recorded (:func:`kbase.pipeline.edits.note_lookup`), as retrievals
are, so forgetting knows which later documents a removed fact could have changed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import func

from kbase.pipeline import changes, edits, wording
from kbase.pipeline.context import DocContext
from kbase.store.models import Fact
from kbase.vectors import valid_at


def facts_naming(ctx: DocContext, name: str) -> list[Fact]:
    """The facts of other documents, valid as of the document, whose words hold
    ``name`` in a row (:func:`wording.names_in`), in text order."""
    key = wording.name_key(name)
    if not key:
        return []
    edits.note_lookup(ctx, name)
    # SQL narrows by the longest word; the word-level test decides.
    longest = max(key.split(), key=len)
    query = valid_at(ctx.view_seq).where(
        func.lower(Fact.text).contains(longest, autoescape=True),
        Fact.document_pk != ctx.doc.pk,
    )
    found = [f for f in ctx.session.scalars(query) if wording.names_in(f.text, key)]
    return sorted(found, key=lambda f: (f.text, f.valid_from))


def ended_by_name(ctx: DocContext, lines: Sequence[str]) -> list[Fact]:
    """Facts that one of ``lines`` (an article's sentences and title) ends
    (:func:`changes.ends`) and that hold one of that line's names, at most
    ``candidate_cap``, in text order."""
    looked_up: dict[str, list[Fact]] = {}
    out: dict[int, Fact] = {}
    for line in lines:
        for name in changes.cue_names(line):
            if name not in looked_up:
                looked_up[name] = facts_naming(ctx, name)
            for fact in looked_up[name]:
                if fact.id not in out and changes.ends(line, fact.text):
                    out[fact.id] = fact
    ranked = sorted(out.values(), key=lambda f: (f.text, f.valid_from))
    return ranked[: ctx.settings.candidate_cap]


def renamed_text(text: str, rename: changes.Rename) -> str | None:
    """``text`` with the old name of ``rename`` put as the new one, or None when it
    does not hold the old name or holds the new one already (the rename itself)."""
    if not wording.names_in(text, wording.name_key(rename.old)):
        return None
    if wording.names_in(text, wording.name_key(rename.new)):
        return None
    pattern = re.compile(r"\b" + r"\s+".join(map(re.escape, rename.old.split())) + r"\b", re.I)
    out = pattern.sub(rename.new, text)
    return out if out != text else None
