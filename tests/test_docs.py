"""The docs cannot drift from the CLI, and the README starts with its two commands."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "gen_cli_docs", ROOT / "scripts" / "gen_cli_docs.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_command_reference_is_generated_from_the_current_cli() -> None:
    generator = _generator()
    assert (ROOT / "docs" / "cli.md").read_text() == generator.render(), (
        "docs/cli.md is stale: run `.venv/bin/python scripts/gen_cli_docs.py`"
    )


def test_every_command_is_documented() -> None:
    generator = _generator()
    reference = (ROOT / "docs" / "cli.md").read_text()
    for path in generator.commands(generator.cli, []):
        assert f"## kb {' '.join(path)}".rstrip() in reference


def test_the_readme_starts_with_the_install_and_run_and_the_test_commands() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    block = lines[lines.index("```bash") + 1 : lines.index("```")]
    assert [line.split("#")[0].strip() for line in block] == [
        "bash scripts/demo.sh",
        "bash scripts/test.sh",
    ]
    assert (
        "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
        or "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    )
