"""Build the codebook that kbase ships: the product-quantisation centroids (k-means
per sub-vector) of a fixed corpus embedded with MiniLM, which the index's
compressed layout encodes vectors with, written once to ``kbase/index/data/``.

The corpus is generated here from a fixed seed (news-style statements about
people, organisations, places, money, dates and events, in many phrasings),
with place, country, language and currency names from the locale data of
``babel`` and the time-zone database, and invented person and organisation
names. It is not the benchmark's text (``benchmarks/synthstore.py``): the
codebook must not be fitted to what it is measured on.

The file is data, loaded and never retrained at run time: a vector's code is a
function of the vector alone, so what the index retrieves stays a function of
the stored facts, and forgetting stays exact. (An earlier version shipped IVF
centroids of the same corpus; the compressed layout replaced them.)

    KBASE_CACHE=... .venv/bin/python scripts/build_centroids.py --vectors corpus.npy
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import zoneinfo
from pathlib import Path

import numpy as np
from babel import Locale

from kbase.embed import get_embedder
from kbase.index.codebook import CODEBOOK_FILE, SUBVECTORS, train_codebook

CORPUS_SIZE = 48_000
SEED = 18


def _vocabulary() -> dict[str, list[str]]:
    en = Locale("en")
    countries = sorted(n for c, n in en.territories.items() if c.isalpha() and len(n) < 30)
    languages = sorted(n for n in en.languages.values() if len(n) < 25)
    currencies = sorted({n for n in en.currencies.values() if len(n) < 30})
    cities = sorted(
        {
            z.rsplit("/", 1)[1].replace("_", " ")
            for z in zoneinfo.available_timezones()
            if "/" in z and z.split("/")[0] in {"Europe", "America", "Asia", "Africa", "Australia"}
        }
    )
    return {"country": countries, "language": languages, "currency": currencies, "city": cities}


_ONSETS = [
    "b",
    "br",
    "c",
    "ch",
    "d",
    "dr",
    "f",
    "g",
    "gr",
    "h",
    "j",
    "k",
    "kl",
    "l",
    "m",
    "n",
    "p",
    "pr",
    "r",
    "s",
    "sh",
    "st",
    "t",
    "tr",
    "v",
    "w",
    "z",
]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ei", "ou", "ia"]
_CODAS = ["", "", "n", "r", "s", "l", "nd", "rt", "m", "k"]
_ORG_WORDS = [
    "Northern",
    "United",
    "Global",
    "First",
    "Pacific",
    "Atlantic",
    "Federal",
    "Royal",
    "National",
    "Civic",
    "Summit",
    "Harbor",
    "Granite",
    "Silver",
    "Blue",
    "Green",
    "Red",
    "Golden",
    "Eastern",
    "Western",
    "Central",
    "Union",
    "Modern",
]
_ORG_KINDS = [
    "Bank",
    "Airlines",
    "Motors",
    "Energy",
    "Telecom",
    "Pharmaceuticals",
    "Foods",
    "Insurance",
    "Holdings",
    "Media",
    "Robotics",
    "Logistics",
    "Mining",
    "Chemicals",
    "Studios",
    "Hospital",
    "University",
    "Institute",
    "Council",
    "Foundation",
    "Party",
    "Trust",
    "Railways",
    "Shipping",
    "Software",
    "Semiconductors",
    "Utilities",
    "Press",
]
_ROLES = [
    "chief executive",
    "chair",
    "finance director",
    "head of research",
    "mayor",
    "minister of health",
    "prime minister",
    "president",
    "coach",
    "captain",
    "editor",
    "ambassador",
    "general counsel",
    "founder",
    "chief scientist",
    "director of operations",
    "spokesperson",
    "governor",
    "dean",
    "conductor",
]
_EVENTS = [
    "an election",
    "a merger",
    "a strike",
    "a recall",
    "a flood",
    "an earthquake",
    "a trial",
    "a festival",
    "a product launch",
    "a data breach",
    "a summit",
    "a referendum",
    "a takeover bid",
    "a bankruptcy filing",
    "a vaccine trial",
    "a rail accident",
    "a championship final",
    "a peace agreement",
    "a wildfire",
    "a protest",
]
_TOPICS = [
    "inflation",
    "climate policy",
    "housing",
    "tariffs",
    "public transport",
    "tuition fees",
    "water supply",
    "interest rates",
    "minimum wage",
    "broadband access",
    "pension reform",
    "energy prices",
    "drug pricing",
    "air quality",
    "immigration",
    "fishing quotas",
    "tax rates",
    "school meals",
]
_MONTHS = "January February March April May June July August September October November December"
_TEMPLATES = (
    "{p} was appointed {r} of {o} in {m} {y}.",
    "{p} stepped down as {r} of {o} after {n} years.",
    "{o} named {p} as its new {r}.",
    "{p}, the {r} of {o}, resigned on {d} {m}.",
    "{o} agreed to buy {o2} for {n} million {cur}.",
    "{o} reported a net loss of {n} million {cur} for {y}.",
    "{o} moved its headquarters from {c} to {c2}.",
    "{o} will cut {n} jobs at its plant in {c}.",
    "{o} opened a research centre in {c}, {k}.",
    "{o} is the largest employer in {c}.",
    "The population of {c} grew to {n} thousand in {y}.",
    "{c} is the capital of the region and lies on the coast of {k}.",
    "{k} raised its interest rate to {pct} percent in {m}.",
    "Unemployment in {k} fell to {pct} percent in {m} {y}.",
    "The official language of {k} is {lang}.",
    "{k} replaced its currency with the {cur} in {y}.",
    "{p} won the {y} election in {k} with {pct} percent of the vote.",
    "{p} was born in {c} in {y}.",
    "{p} studied law in {c} before joining {o}.",
    "{p} is married to {p2}.",
    "{p} died in {c} at the age of {age}.",
    "{p} signed a {n}-year contract with {o}.",
    "{p} scored twice as {o} beat {o2} in {c}.",
    "{p} speaks {lang} and {lang2}.",
    "{e} in {c} left {n} people without power.",
    "{e} was reported in {c} on {d} {m} {y}.",
    "Officials in {k} postponed {e} until {m}.",
    "{o} was fined {n} million {cur} by regulators in {k}.",
    "A court in {c} ruled against {o} in a dispute over {t}.",
    "{p} criticised the government's plans on {t}.",
    "The parliament of {k} passed a law on {t} in {y}.",
    "Voters in {c} rejected a proposal on {t}.",
    "{o} and {o2} formed a joint venture in {k}.",
    "Shares of {o} rose {pct} percent after {e}.",
    "{o} recalled {n} thousand vehicles sold in {k}.",
    "The trial of {p} begins in {c} on {d} {m}.",
    "{p} was sentenced to {age} months in prison in {c}.",
    "{p} leads the {lang}-language service of {o}.",
    "{o} launched a satellite from {c} in {y}.",
    "The {o} orchestra will tour {k} in {m}.",
    "Flights between {c} and {c2} resumed in {m} {y}.",
    "A new bridge connects {c} and {c2}.",
    "{p} replaced {p2} as {r} of {o}.",
    "{o} denied reports that it would leave {k}.",
    "{p} is {age} years old.",
    "{k} and {k2} signed a trade agreement in {c}.",
    "The mayor of {c} is {p}.",
    "{p} founded {o} in {c} in {y}.",
    "Prices of {t2} in {k} rose by {pct} percent.",
    "{o} hired {n} engineers in {c} this year.",
)


def _name(rng: random.Random) -> str:
    def word(parts: int) -> str:
        w = "".join(
            rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(parts)
        )
        return w.capitalize()

    return f"{word(rng.randint(1, 2))} {word(rng.randint(1, 3))}"


def _org(rng: random.Random, vocab: dict[str, list[str]]) -> str:
    style = rng.random()
    if style < 0.4:
        return f"{rng.choice(_ORG_WORDS)} {rng.choice(_ORG_KINDS)}"
    if style < 0.7:
        return f"{rng.choice(vocab['city'])} {rng.choice(_ORG_KINDS)}"
    return f"{_name(rng).split()[1]} {rng.choice(_ORG_KINDS)}"


def corpus(n: int = CORPUS_SIZE, seed: int = SEED) -> list[str]:
    """The fixed corpus: ``n`` distinct sentences, the same for a seed."""
    rng = random.Random(seed)
    vocab = _vocabulary()
    out: dict[str, None] = {}
    while len(out) < n:
        text = rng.choice(_TEMPLATES).format(
            p=_name(rng),
            p2=_name(rng),
            o=_org(rng, vocab),
            o2=_org(rng, vocab),
            r=rng.choice(_ROLES),
            c=rng.choice(vocab["city"]),
            c2=rng.choice(vocab["city"]),
            k=rng.choice(vocab["country"]),
            k2=rng.choice(vocab["country"]),
            lang=rng.choice(vocab["language"]),
            lang2=rng.choice(vocab["language"]),
            cur=rng.choice(vocab["currency"]),
            e=rng.choice(_EVENTS).capitalize(),
            t=rng.choice(_TOPICS),
            t2=rng.choice(_TOPICS),
            m=rng.choice(_MONTHS.split()),
            d=rng.randint(1, 28),
            y=rng.randint(1950, 2026),
            n=rng.randint(2, 990),
            pct=round(rng.uniform(0.5, 60), 1),
            age=rng.randint(18, 99),
        )
        out.setdefault(text, None)
    return list(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--embedder", default="minilm-onnx")
    parser.add_argument("--vectors", type=Path, help="cache the corpus vectors here (.npy)")
    args = parser.parse_args()
    texts = corpus()
    if args.vectors and args.vectors.exists():
        vectors = np.load(args.vectors)
    else:
        embedder = get_embedder(args.embedder)
        started = time.perf_counter()
        vectors = np.concatenate(
            [embedder.embed(texts[i : i + 1024]) for i in range(0, len(texts), 1024)]
        ).astype(np.float32)
        print(
            f"embedded {len(texts)} texts in {time.perf_counter() - started:.0f} s", file=sys.stderr
        )
        if args.vectors:
            np.save(args.vectors, vectors)
    CODEBOOK_FILE.parent.mkdir(parents=True, exist_ok=True)
    codebook = train_codebook(vectors, SUBVECTORS, seed=SEED)
    np.save(CODEBOOK_FILE, codebook)
    print(f"wrote {codebook.shape} to {CODEBOOK_FILE}", file=sys.stderr)


if __name__ == "__main__":
    main()
