"""Plot a ``benchmarks.qa`` result: accuracy per date of asking for each strategy,
accuracy on each kind of question, and the tokens each strategy spends per document.

    python -m benchmarks.plot_qa --json benchmarks/results/qa.json --png docs/img/qa.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

BARS = (
    ("prompt_tokens", "prompt"),
    ("cached_tokens", "cached"),
    ("computed_tokens", "computed"),
    ("completion_tokens", "completion"),
)
KINDS = (
    ("accuracy_changed", "changed"),
    ("accuracy_unchanged", "unchanged"),
    ("accuracy_unanswerable", "unanswerable"),
)


def _label(name: str, accuracy: float | None) -> str:
    return name if accuracy is None else f"{name} ({accuracy:.2f})"


def plot(data: dict[str, Any], png: Path) -> None:
    """Draw the two panels of ``data`` into ``png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results: dict[str, Any] = data["strategies"]
    fig, (acc, kinds, cost) = plt.subplots(1, 3, figsize=(15, 4.2))
    steps = sorted({s for r in results.values() for s in r["accuracy_by_step"]})
    styles = (("o", "-"), ("s", "--"), ("^", ":"), ("D", "-."))
    for i, (name, r) in enumerate(results.items()):
        values = [r["accuracy_by_step"].get(s) for s in steps]
        marker, line = styles[i % len(styles)]
        xs = [j + 0.04 * (i - (len(results) - 1) / 2) for j in range(len(steps))]
        acc.plot(xs, values, marker=marker, linestyle=line, label=_label(name, r["accuracy"]))
    acc.set_xticks(range(len(steps)), steps, rotation=30, ha="right", fontsize=8)
    acc.set_ylim(-0.05, 1.05)
    acc.set_ylabel("accuracy")
    acc.set_title("Accuracy by date of asking")
    acc.legend(fontsize=8)
    width = 0.8 / max(len(results), 1)
    for i, (name, r) in enumerate(results.items()):
        xs = [j + (i - (len(results) - 1) / 2) * width for j in range(len(KINDS))]
        kinds.bar(xs, [r.get(k) or 0.0 for k, _ in KINDS], width, label=name)
    kinds.set_xticks(range(len(KINDS)), [label for _, label in KINDS])
    kinds.set_ylim(0, 1.05)
    kinds.set_ylabel("accuracy")
    kinds.set_title('By kind of question (unanswerable: "unknown")')
    kinds.legend(fontsize=8)
    for i, (name, r) in enumerate(results.items()):
        means = r["per_document_mean_after_first"]
        xs = [j + (i - (len(results) - 1) / 2) * width for j in range(len(BARS))]
        cost.bar(xs, [means[k] for k, _ in BARS], width, label=name)
    cost.set_xticks(range(len(BARS)), [label for _, label in BARS])
    cost.set_ylabel("tokens per document")
    cost.set_title("LLM tokens per document (after the first)")
    cost.legend(fontsize=8)
    label = "fake models: plumbing only" if data["models"].get("fake") else data["models"]["llm"]
    fig.suptitle(
        f"{data['data']['documents']} documents, {data['data']['questions']} questions; {label}"
    )
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    """Read the JSON and write the PNG."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.plot_qa", description=__doc__)
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--png", type=Path, required=True)
    args = p.parse_args(argv)
    plot(json.loads(args.json.read_text()), args.png)
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
