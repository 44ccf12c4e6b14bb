"""A synthetic temporal news stream with multiple-choice questions, in the manner of
ERASE's CLARK-News: people hold roles at companies, coach teams and play for clubs;
dated articles change who holds what; questions asked at several points in time
have as gold answer the value true at the time of asking.

Every slot (a role at a company, a team's head coach, a player's club) is
introduced in step 0 and may change in later steps; unrelated filler articles are
mixed in. Each slot's value is also stated in one plain sentence, "The head coach
of the Porto Sharks is Dana Okafor.", which the fake-world LLM of the tests reads.

    python -m benchmarks.synth --out benchmarks/data/synth [--people 12] [--steps 6] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from benchmarks.names import CITY, COMPANY, FIRST, INDUSTRY, LAST, MASCOT, ROLES

START = date(2024, 1, 1)
STEP_DAYS = 28
SMALL = {"people": 4, "steps": 3, "questions_per_step": 2, "fillers": 1}


@dataclass
class Slot:
    """One thing that changes over time, and its values in order."""

    kind: str  # "role" | "coach" | "club"
    owner: str  # the company, the team, or the player
    role: str
    values: list[str]
    #: The step of each value after the first.
    changed_at: list[int] = field(default_factory=list)

    @property
    def subject(self) -> str:
        if self.kind == "club":
            return f"The club of {self.owner}"
        if self.kind == "coach":
            return f"The head coach of the {self.owner}"
        return f"The {self.role} of {self.owner}"

    def statement(self, value: str) -> str:
        return f"{self.subject} is {'the ' if self.kind == 'club' else ''}{value}."

    @property
    def question(self) -> str:
        if self.kind == "club":
            return f"Which club does {self.owner} play for?"
        if self.kind == "coach":
            return f"Who is the head coach of the {self.owner}?"
        return f"Who is the {self.role} of {self.owner}?"

    def value_at(self, step: int) -> str:
        return self.values[sum(1 for s in self.changed_at if s <= step)]


class _World:
    """Draws unique names and writes the articles."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        people = [f"{f} {ln}" for f in FIRST for ln in LAST]
        rng.shuffle(people)
        # One company per prefix, one team per city and per mascot: no two look alike.
        companies = [f"{c} {rng.choice(INDUSTRY)}" for c in rng.sample(COMPANY, len(COMPANY))]
        cities, mascots = rng.sample(CITY, len(CITY)), rng.sample(MASCOT, len(MASCOT))
        teams = [f"{c} {m}" for c, m in zip(cities, mascots, strict=True)]
        self.people, self.companies, self.teams = people, companies, teams
        self.all_teams = list(teams)
        self.used_people: list[str] = []

    def person(self) -> str:
        name = self.people.pop()
        self.used_people.append(name)
        return name


def _intro(world: _World, pair: int, slots: list[Slot]) -> dict[str, Any]:
    rng = world.rng
    if pair % 2 == 0:
        company = world.companies.pop()
        city = rng.choice(CITY)
        roles = rng.sample(ROLES, 2)
        new = [Slot("role", company, role, [world.person()]) for role in roles]
        text = (
            f"{company}, a company based in {city}, reported higher sales for the quarter. "
            + " ".join(s.statement(s.values[0]) for s in new)
        )
        title = f"{company} reports higher quarterly sales"
    else:
        team = world.teams.pop()
        player = world.person()
        new = [
            Slot("coach", team, "head coach", [world.person()]),
            Slot("club", player, "club", [team]),
        ]
        text = (
            f"The {team} open their season this weekend. {new[0].statement(new[0].values[0])} "
            f"{player} was the team's top scorer last year. {new[1].statement(team)}"
        )
        title = f"The {team} open their season"
    slots.extend(new)
    return {"title": title, "text": text, "step": 0}


def _change(world: _World, slot: Slot, step: int) -> dict[str, Any]:
    rng = world.rng
    old = slot.values[-1]
    if slot.kind == "club":
        new = rng.choice([t for t in world.all_teams if t not in slot.values])
        years = rng.choice(("two", "three", "four"))
        text = (
            f"{slot.owner} left the {old} and joined the {new} on a {years}-year contract. "
            f"{slot.statement(new)} The fee was not disclosed."
        )
        title = f"{slot.owner} joins the {new}"
    elif slot.kind == "coach":
        new = world.person()
        text = (
            f"The {slot.owner} appointed {new} as head coach, replacing {old} after a "
            f"run of {rng.randint(3, 7)} defeats. {slot.statement(new)}"
        )
        title = f"The {slot.owner} appoint {new} head coach"
    else:
        new = world.person()
        text = (
            f"{slot.owner} named {new} as its {slot.role}, replacing {old}, who is retiring. "
            f"{new} previously worked at {rng.choice(world.companies)}. {slot.statement(new)}"
        )
        title = f"{slot.owner} names {new} {slot.role}"
    slot.values.append(new)
    slot.changed_at.append(step)
    return {"title": title, "text": text, "step": step}


def _filler(world: _World, step: int) -> dict[str, Any]:
    rng = world.rng
    city = rng.choice(CITY)
    visitors = rng.randint(8, 90) * 1000
    text = (
        f"The {city} harbour festival drew {visitors} visitors this weekend. "
        f"The festival is held every year in the old port. "
        f"Organisers said ticket sales rose {rng.randint(2, 19)} percent."
    )
    return {"title": f"{city} harbour festival draws crowds", "text": text, "step": step}


def generate(
    *,
    people: int = 12,
    steps: int = 6,
    seed: int = 0,
    questions_per_step: int = 5,
    fillers: int | None = None,
    choices: int = 4,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Documents (sorted by date) and questions of a stream; the same for a seed."""
    if steps < 3 or people < 2:
        raise ValueError("a stream needs at least 3 steps and 2 people")
    rng = random.Random(seed)
    world = _World(rng)
    slots: list[Slot] = []
    articles = [_intro(world, pair, slots) for pair in range((people + 1) // 2)]
    slots = slots[:people]
    changing = rng.sample(slots, k=-(-2 * len(slots) // 3))
    plan = [(s, rng.randint(1, steps - 2)) for s in changing]
    plan += [(s, rng.randint(first + 1, steps - 1)) for s, first in plan[: len(slots) // 3]]
    for slot, step in sorted(plan, key=lambda p: p[1]):
        articles.append(_change(world, slot, step))
    articles += [_filler(world, rng.randrange(steps)) for _ in range(fillers or people // 3)]
    for a in articles:
        day = STEP_DAYS * a["step"] + rng.randint(1, STEP_DAYS - 2)
        a["published"] = (START + timedelta(days=day)).isoformat()
    articles.sort(key=lambda a: (a["published"], a["step"]))
    documents = [
        {
            "id": f"d{i:03d}",
            "published": a["published"],
            "title": a["title"],
            "text": a["text"],
            "url": f"https://news.example.org/synth/d{i:03d}",
        }
        for i, a in enumerate(articles, 1)
    ]
    return documents, _questions(world, slots, steps, questions_per_step, choices)


def _questions(
    world: _World, slots: list[Slot], steps: int, per_step: int, n_choices: int
) -> list[dict[str, Any]]:
    rng = world.rng
    out: list[dict[str, Any]] = []
    for step in range(steps):
        asked_at = (START + timedelta(days=STEP_DAYS * step + STEP_DAYS - 1)).isoformat()
        changed = [s for s in slots if s.value_at(step) != s.values[0]]
        picked = rng.sample(changed, k=min(len(changed), -(-per_step // 2)))
        rest = [s for s in slots if s not in picked]
        picked += rng.sample(rest, k=min(len(rest), per_step - len(picked)))
        for slot in picked:
            gold = slot.value_at(step)
            pool = world.all_teams if slot.kind == "club" else world.used_people
            others = [v for v in slot.values if v != gold]
            others += [v for v in rng.sample(pool, k=len(pool)) if v not in slot.values]
            options = [gold, *others[: n_choices - 1]]
            rng.shuffle(options)
            out.append(
                {
                    "id": f"q{len(out) + 1:03d}",
                    "asked_at": asked_at,
                    "step": step,
                    "question": slot.question,
                    "answer": gold,
                    "choices": options,
                    "changed": gold != slot.values[0],
                    "subject": slot.subject,
                }
            )
    return out


def write(folder: Path, documents: list[dict[str, Any]], questions: list[dict[str, Any]]) -> None:
    """Write ``documents.jsonl`` and ``questions.jsonl`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("documents.jsonl", documents), ("questions.jsonl", questions)):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


def main(argv: list[str] | None = None) -> None:
    """Generate a stream and write it."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.synth", description=__doc__)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--people", type=int, default=12, help="slots that can change")
    p.add_argument("--steps", type=int, default=6, help="points in time questions are asked")
    p.add_argument("--questions-per-step", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--small", action="store_true", help=f"a tiny stream for tests: {SMALL}")
    args = p.parse_args(argv)
    options: dict[str, Any] = dict(
        people=args.people, steps=args.steps, questions_per_step=args.questions_per_step
    )
    if args.small:
        options = dict(SMALL)
    documents, questions = generate(seed=args.seed, **options)
    write(args.out, documents, questions)
    changed = sum(q["changed"] for q in questions)
    print(
        f"{len(documents)} documents, {len(questions)} questions ({changed} changed) in {args.out}"
    )


if __name__ == "__main__":
    main()
