"""benchmarks/server_bench.py runs end to end on the fake models (tiny sizes), and
what it reports holds together: no errors, every sighting counted, the hosts'
indexes the size of the database's fact versions."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import server_bench


@pytest.mark.slow
@pytest.mark.postgres
def test_the_server_benchmark_runs_on_the_fake_models(tmp_path: Path) -> None:
    out = tmp_path / "server.json"
    sizes = ["--documents", "6", "--requests", "5", "--cold-runs", "1", "--seconds", "1"]
    result = server_bench.main(
        ["--no-real", *sizes, "--commits", "2", "--no-docs", "--json", str(out)]
    )

    assert out.exists()
    assert [r["what"] for r in result["warm_and_cold"]] == [
        "search, fake models",
        "ask, fake models",
    ]
    for row in result["warm_and_cold"]:
        assert row["warm"]["n"] == 5 and row["cold"]["n"] == 1
        assert 0 < row["warm"]["p50_ms"] <= row["warm"]["p95_ms"]
    alone, loaded = result["load"]
    assert alone["errors"] == 0 and loaded["errors"] == 0
    assert alone["documents_written"] == 0 and loaded["documents_written"] >= 1
    hosts = result["hosts"]
    assert hosts["sightings"] == 2 * hosts["commits"] and hosts["unseen_after_10s"] == 0
    assert hosts["index_vectors"] == [hosts["fact_versions_in_database"]] * 3
    assert "| search, fake models | 5 |" in server_bench.render(result)
