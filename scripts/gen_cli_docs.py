"""Write docs/cli.md from the CLI's own --help (tests/test_docs.py keeps it in step)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cli import cli  # noqa: E402

TARGET = ROOT / "docs" / "cli.md"


def commands(group: click.Group, prefix: list[str]) -> list[list[str]]:
    out = [prefix]
    for name in sorted(group.commands):
        command = group.commands[name]
        path = [*prefix, name]
        out += commands(command, path) if isinstance(command, click.Group) else [path]
    return out


def render() -> str:
    parts = ["# Command reference\n", "Generated from `kb --help` by `scripts/gen_cli_docs.py`.\n"]
    for path in commands(cli, []):
        result = CliRunner().invoke(cli, [*path, "--help"], prog_name="kb", terminal_width=100)
        parts.append(f"## kb {' '.join(path)}".rstrip() + "\n")
        parts.append("```\n" + result.output.rstrip() + "\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    TARGET.write_text(render())
    print(f"wrote {TARGET}")
