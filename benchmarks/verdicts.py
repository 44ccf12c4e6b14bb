"""How well the LLM judges "is this stored fact still true after this article?".

Twelve hand-written cases (six facts an article makes false, six it leaves true),
scored with kbase's verdict prompt: P(FALSE) from the next-token log-probabilities,
accuracy at the 0.5 and at the configured bar, and the margin between the classes.

    python -m benchmarks.verdicts [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from kbase import prompts
from kbase.config import Settings
from kbase.llm import get_backend
from kbase.pipeline.strategies import false_probability

ALICE = (
    "Acme Robotics named Alice Chen its chief executive on Thursday, replacing Bob Marsh, "
    "who left the company. Alice Chen was previously the chief operating officer of Acme "
    "Robotics."
)
BERGEN = (
    "Northwind Ferries moved its head office from Oslo to Bergen in June. The company said "
    "Bergen is closer to its busiest routes."
)
TRADE = (
    "The Riverside Falcons traded Lena Ortiz to the Lakeside Comets. Lena Ortiz now plays for "
    "the Lakeside Comets."
)
RECALL = (
    "Globex Foods stopped selling its Tilde oat drink after weak sales. Tilde is no longer "
    "sold in any shop."
)
PLANT = "Acme Robotics opened a second factory in Sheffield. The company now employs 1,500 people."
ARENA = (
    "Harbour Arena finished an expansion that raises its capacity to 12,000 seats. The city "
    "of Riverside owns the arena."
)

#: (article, stored fact, still true after the article?)
CASES = [
    (ALICE, "Bob Marsh is the chief executive of Acme Robotics.", False),
    (ALICE, "Acme Robotics employs 1,200 people.", True),
    (BERGEN, "The head office of Northwind Ferries is in Oslo.", False),
    (BERGEN, "Northwind Ferries runs 14 ships on the North Sea.", True),
    (TRADE, "Lena Ortiz plays for the Riverside Falcons.", False),
    (TRADE, "The Riverside Falcons play their home games at Harbour Arena.", True),
    (RECALL, "Globex Foods sells Tilde in 3,000 shops in Britain.", False),
    (RECALL, "Priya Natarajan is the chief executive of Globex Foods.", True),
    (PLANT, "Acme Robotics employs 1,200 people.", False),
    (PLANT, "Acme Robotics is based in Leeds.", True),
    (ARENA, "Harbour Arena has 10,000 seats.", False),
    (TRADE, "The city of Riverside owns Harbour Arena.", True),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    backend = get_backend("llama-cpp")
    bar = Settings().min_confidence
    rows = []
    started = time.perf_counter()
    for article, fact, true in CASES:
        scores = backend.score(prompts.verdict_request(article, fact, published=None)).scores
        p_false = false_probability(dict(scores or {}))
        rows.append({"fact": fact, "true": true, "p_false": round(p_false or math.nan, 3)})

    def accuracy(threshold: float) -> float:
        return sum((r["p_false"] >= threshold) != r["true"] for r in rows) / len(rows)

    false_p = [r["p_false"] for r in rows if not r["true"]]
    true_p = [r["p_false"] for r in rows if r["true"]]
    result = {
        "model": backend.model_id,
        "cases": len(rows),
        "bar": bar,
        "accuracy_at_0.5": accuracy(0.5),
        "accuracy_at_bar": accuracy(bar),
        "mean_p_false_when_false": round(sum(false_p) / len(false_p), 3),
        "mean_p_false_when_true": round(sum(true_p) / len(true_p), 3),
        "seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
