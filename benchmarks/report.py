"""What every benchmark prints and writes: the machine, Markdown tables, and its own
section of ``docs/benchmarks.md`` (rewritten in place, other sections untouched)."""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    """The machine and moment of a run; the load average says whether it was quiet."""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "load_average_1m_at_start": load_average(),
    }


def load_average() -> float:
    """The one-minute load average now (0 where the platform has none)."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else 0.0


def describe(info: dict[str, Any]) -> str:
    """One line for the Markdown report."""
    end = info.get("load_average_1m_at_end")
    return (
        f"{info['date']}; {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB; "
        f"Python {info['python']}; load average {info['load_average_1m_at_start']} at start"
        + (f", {end} at end" if end is not None else "")
    )


def command_line() -> str:
    """The command that is running, as a user would type it."""
    module = Path(sys.argv[0]).stem if sys.argv else "?"
    return " ".join(["python -m", f"benchmarks.{module}", *sys.argv[1:]])


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; floats get up to three significant decimals."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def update_section(path: Path, key: str, body: str) -> None:
    """Replace the section marked ``key`` in the Markdown file (append it if absent)."""
    start, end = f"<!-- bench:{key} -->", f"<!-- /bench:{key} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
