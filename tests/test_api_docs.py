"""docs/api.md is runnable: its Python blocks run in order, in one namespace, in a
fresh folder, and their assertions hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


def test_the_api_doc_has_examples() -> None:
    assert len(python_blocks(DOC.read_text())) >= 5


def test_every_example_of_the_api_doc_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "api_doc"}
    for number, block in enumerate(python_blocks(DOC.read_text()), 1):
        exec(compile(block, f"docs/api.md block {number}", "exec"), namespace)
