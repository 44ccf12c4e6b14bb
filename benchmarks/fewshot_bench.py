"""Benchmark of exact few-shot unlearning (kbase.fewshot).

On random 8-d Gaussian data with k = 8, T = 10, gamma = 0.2, for each pool size
and eps: fit time, mean time of a deletion on the fast path and overall, and the
fraction of deletions that recompute (seed refit or Lloyd restart). Each
deletion starts from the same fitted state, so the rate is the rate at that n.

    python -m benchmarks.fewshot_bench \
        --out benchmarks/results/fewshot.json --png docs/img/fewshot.png
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from kbase.fewshot import Params, Selection, Trace, quantize_vectors

SIZES = (100, 1_000, 4_000, 10_000, 16_000, 100_000)
EPSILONS = (0.5, 1.0)
DIM, K, T, GAMMA = 8, 8, 10, 0.2


def plan(n: int) -> tuple[int, int]:
    """(replicates, deletions per replicate) for a pool size: a few minutes in all."""
    if n >= 100_000:
        return 2, 50
    return 6, min(n, 150)


def run_setting(n: int, eps: float, verify: int) -> dict[str, Any]:
    """Measure one (n, eps) setting over a few data sets and master seeds."""
    reps, per_rep = plan(n)
    fit_s: list[float] = []
    fast_s: list[float] = []
    all_s: list[float] = []
    paths: Counter[str] = Counter()
    restart_at: list[int] = []
    iterations: list[int] = []
    checked = 0
    for rep in range(reps):
        rng = np.random.default_rng([n, rep])
        X = quantize_vectors(rng.normal(size=(n, DIM)))
        ids = [f"ex-{i}" for i in range(n)]
        params = Params(k=K, eps=eps, max_iter=T, gamma=GAMMA, seed=1000 + rep)
        start = time.perf_counter()
        sel = Selection.fit(ids, X, params)
        fit_s.append(time.perf_counter() - start)
        iterations.append(len(sel.iterations))
        for row in rng.choice(n, size=per_rep, replace=False).tolist():
            trace = Trace()
            start = time.perf_counter()
            left = sel.unlearn(ids[row], trace=trace)
            took = time.perf_counter() - start
            all_s.append(took)
            kind = trace.path.split("@")[0]
            paths[kind] += 1
            if kind == "fast":
                fast_s.append(took)
            elif kind == "restart":
                restart_at.append(int(trace.path.split("@")[1]))
            if checked < verify:
                keep = [i for i in range(n) if i != row]
                fresh = Selection.fit([ids[i] for i in keep], X[keep], params)
                if fresh.state_hash() != left.state_hash():
                    raise AssertionError(f"unlearn != refit at n={n} eps={eps} row={row}")
                checked += 1
    total = sum(paths.values())
    return {
        "n": n,
        "eps": eps,
        "replicates": reps,
        "deletions": total,
        "fit_s": float(np.mean(fit_s)),
        "fast_mean_s": float(np.mean(fast_s)) if fast_s else None,
        "delete_mean_s": float(np.mean(all_s)),
        "recompute_rate": 1.0 - paths["fast"] / total,
        "paths": dict(sorted(paths.items())),
        "mean_restart_iteration": float(np.mean(restart_at)) if restart_at else None,
        "lloyd_iterations_run": sorted(set(iterations)),
        "verified_against_refit": checked,
    }


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1e3:.2f}"


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| n | eps | deletions | fit (ms) | fast-path unlearn (ms) | mean deletion (ms) "
        "| recompute rate | paths |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        paths = ", ".join(f"{k} {v}" for k, v in r["paths"].items())
        lines.append(
            f"| {r['n']:,} | {r['eps']} | {r['deletions']} | {ms(r['fit_s'])} "
            f"| {ms(r['fast_mean_s'])} | {ms(r['delete_mean_s'])} "
            f"| {r['recompute_rate']:.1%} | {paths} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for eps, color in zip(EPSILONS, ("tab:blue", "tab:orange"), strict=True):
        mine = [r for r in rows if r["eps"] == eps]
        ns = [r["n"] for r in mine]
        fast = [r["fast_mean_s"] * 1e3 if r["fast_mean_s"] else np.nan for r in mine]
        every = [r["delete_mean_s"] * 1e3 for r in mine]
        left.plot(ns, fast, "o-", color=color, label=f"fast path, eps={eps}")
        left.plot(ns, every, "x--", color=color, label=f"all deletions, eps={eps}")
        right.plot(
            ns, [100 * r["recompute_rate"] for r in mine], "o-", color=color, label=f"eps={eps}"
        )
    left.set(xscale="log", xlabel="pool size n", ylabel="ms per deletion (mean)")
    left.set_ylim(bottom=0)
    left.set_title("Unlearn time (k=8, T=10, d=8)")
    right.set(xscale="log", xlabel="pool size n", ylabel="% of deletions that recompute")
    right.set_ylim(0, 100)
    right.set_title("Recompute rate (gamma=0.2)")
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/fewshot.json"))
    parser.add_argument("--png", type=Path, default=Path("docs/img/fewshot.png"))
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--verify", type=int, default=10, help="refit checks per setting")
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for n in args.sizes:
        for eps in EPSILONS:
            verify = args.verify if n <= 10_000 else 0
            rows.append(run_setting(n, eps, verify))
            print(f"n={n} eps={eps} done after {time.perf_counter() - started:.0f}s", flush=True)
    report = {
        "settings": {"dim": DIM, "k": K, "max_iter": T, "gamma": GAMMA, "data": "N(0, I)"},
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_after": os.getloadavg(),
        },
        "total_s": time.perf_counter() - started,
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    plot(rows, args.png)
    print(table(rows))


if __name__ == "__main__":
    main()
