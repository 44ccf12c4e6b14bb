"""Retrieval latency at scale: ``kb.search`` on synthetic stores of given sizes,
the query embedding timed apart from the index and SQL work (part (b) of
``benchmarks.ingest_retrieval``)."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import synthstore
from benchmarks.models import Models

_LOAD_INDEX = """
import sys, faiss
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
before = rss()
index = faiss.read_index(sys.argv[1])
print(rss() - before, index.ntotal)
"""


def _say(message: str) -> None:
    print(f"retrieval: {message}", file=sys.stderr, flush=True)


def _index_rss_mib(path: Path) -> float:
    """Memory a fresh process grows by when it loads the index file (measured apart
    from this process, whose freed memory would hide it)."""
    done = subprocess.run(
        [sys.executable, "-c", _LOAD_INDEX, str(path)], capture_output=True, text=True, check=True
    )
    return float(done.stdout.split()[0])


def _vectors_for(
    models: Models, texts: list[str], sizes: list[int], mode: str, budget: float
) -> tuple[dict[int, np.ndarray], dict[str, Any]]:
    """Fact vectors per store size: the embedder's where affordable, else random."""
    dim = models.embedder.dim
    info: dict[str, Any] = {"mode": mode}
    affordable = max(sizes)
    if mode == "auto" and not models.fake:
        sample = texts[:256]
        started = time.perf_counter()
        models.embedder.inner.embed(sample)
        rate = len(sample) / (time.perf_counter() - started)
        info["embed_rate_per_s"] = round(rate, 1)
        affordable = max([s for s in sizes if s / rate <= budget], default=0)
    elif mode == "random":
        affordable = 0
    started = time.perf_counter()
    _say(f"embedding {affordable} fact texts ({info.get('embed_rate_per_s', '?')}/s measured)")
    real = models.embedder.inner.embed(texts[:affordable]) if affordable else None
    info["embed_seconds"] = round(time.perf_counter() - started, 1)
    out: dict[int, np.ndarray] = {}
    kinds: dict[str, str] = {}
    for size in sizes:
        if real is not None and size <= affordable:
            out[size], kinds[str(size)] = real[:size], models.embedder_name
        else:
            out[size] = synthstore.random_unit_vectors(size, dim)
            kinds[str(size)] = "random unit vectors"
    info["vectors"] = kinds
    return out, info


def _percentiles(values: list[float]) -> dict[str, float]:
    ms = np.array(values) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
    }


def _time_searches(
    models: Models, kb: Any, queries: list[str], as_of: date | None
) -> dict[str, Any]:
    totals, embeds = [], []
    for q in queries[:5]:
        kb.search(q, as_of=as_of)  # warm-up
    for q in queries:
        before, started = models.embedder.seconds, time.perf_counter()
        kb.search(q, as_of=as_of)
        totals.append(time.perf_counter() - started)
        embeds.append(models.embedder.seconds - before)
    rest = [t - e for t, e in zip(totals, embeds, strict=True)]
    return {
        "total": _percentiles(totals),
        "embed": _percentiles(embeds),
        "index_and_sql": _percentiles(rest),
    }


def retrieval_benchmark(
    models: Models, sizes: list[int], n_queries: int, mode: str, budget: float, workdir: Path
) -> dict[str, Any]:
    """Search latency, index size and memory for stores of each size, in this process."""
    texts = synthstore.fact_texts(max(sizes))
    queries = synthstore.query_texts(n_queries)
    vectors, info = _vectors_for(models, texts, sizes, mode, budget)
    results = []
    for size in sizes:
        folder = workdir / f"store-{size}"
        kb = models.open(folder)
        try:
            started = time.perf_counter()
            synthstore.populate(kb, texts[:size], vectors[size], models.embedder)
            insert_s = time.perf_counter() - started
            started = time.perf_counter()
            indexed = kb.runtime.index_size()
            index_s = time.perf_counter() - started
            as_of = synthstore.middle_date(size).date()
            _say(f"store of {size} facts built; timing {len(queries)} queries")
            now = _time_searches(models, kb, queries, None)
            past = _time_searches(models, kb, queries, as_of)
        finally:
            kb.close()
        rss_index = _index_rss_mib(folder / "index" / "vectors.faiss")
        results.append(
            {
                "facts": size,
                "indexed": indexed,
                "vectors": info["vectors"][str(size)],
                "insert_seconds": round(insert_s, 2),
                "index_build_seconds": round(index_s, 2),
                "index_file_mib": round(
                    (folder / "index" / "vectors.faiss").stat().st_size / 2**20, 1
                ),
                "index_rss_mib": round(rss_index, 1),
                "index_vectors_mib": round(indexed * models.embedder.dim * 4 / 2**20, 1),
                "database_mib": round((folder / "kbase.db").stat().st_size / 2**20, 1),
                "search_now": now,
                "search_as_of": {"as_of": as_of.isoformat(), **past},
            }
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"queries": n_queries, "k": 8, **info, "peak_rss_mib": round(peak, 1), "sizes": results}
