"""The README's Python examples are true: they run, in order, against the demo data.

Convention: every ```` ```python ```` block of README.md is executed, in the order of the file,
in one fresh Python process with one shared namespace (like the cells of a notebook), after
``python manage.py demo --quiet --synthetic-only`` has built the demo instance (the synthetic
registry the examples query; the full demo's curated releases are tested in
``tests/test_demo_command.py``) in a temporary
``CELLREGISTRY_HOME``; the working directory is a temporary folder. A block whose fence is
preceded by the line ``<!-- skip-test -->`` is not run: use it only for examples that need
outside services (a remote PostgreSQL server, an S3 bucket). Other fences (bash, toml, text) are
never run. A failing block fails the test with the block's README line, its code and the traceback.

The subprocesses always use SQLite (``DATABASE_URL`` is dropped from their environment), also in
the PostgreSQL run of the suite: the README's instances are embedded ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
SKIP_MARKER = "<!-- skip-test -->"

# Runs the blocks given as JSON. Each block is compiled with README.md as its file name and its
# README line numbers, so tracebacks point into the README.
RUNNER = """\
import json, sys, traceback
readme, blocks = sys.argv[1], json.load(open(sys.argv[2]))
namespace = {"__name__": "__readme__"}
for block in blocks:
    source = "\\n" * block["line"] + block["code"]
    try:
        exec(compile(source, readme, "exec"), namespace)
    except BaseException:
        print(f"README block at line {block['line']} failed:", file=sys.stderr)
        print(block["code"], file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
"""


@dataclass(frozen=True)
class Block:
    """A code block of the README: its first code line (1-based, after the fence) and code."""

    line: int
    code: str
    skip: bool


def python_blocks(markdown: str) -> list[Block]:
    """The ```python blocks of a markdown text, marked ``skip`` after a ``<!-- skip-test -->``."""
    blocks: list[Block] = []
    lines = markdown.splitlines()
    previous = ""
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped == "```python":
            end = i + 1
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            if end == len(lines):
                raise ValueError(f"README line {i + 1}: ```python block is never closed")
            code = "\n".join(lines[i + 1 : end]) + "\n"
            blocks.append(Block(line=i + 1, code=code, skip=previous == SKIP_MARKER))
            i = end
        if stripped:
            previous = stripped
        i += 1
    return blocks


def child_env(home: Path) -> dict[str, str]:
    """The environment of a subprocess: a private home, SQLite, no preselected instance."""
    env = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELLREGISTRY_INSTANCE"}
    }
    env["CELLREGISTRY_HOME"] = str(home)
    return env


def run_blocks(blocks: list[Block], home: Path, workdir: Path) -> subprocess.CompletedProcess:
    """Run blocks in order in one Python process; returns the finished process."""
    spec = workdir / "blocks.json"
    spec.write_text(json.dumps([asdict(b) for b in blocks]))
    return subprocess.run(
        [sys.executable, "-c", RUNNER, str(README), str(spec)],
        cwd=workdir,
        env=child_env(home),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_block_extraction_honours_skip_marker() -> None:
    text = "```python\na = 1\n```\n\n<!-- skip-test -->\n```python\nb = 2\n```\n```bash\nls\n```\n"
    blocks = python_blocks(text)
    assert [(b.line, b.code, b.skip) for b in blocks] == [
        (1, "a = 1\n", False),
        (6, "b = 2\n", True),
    ]


def test_a_failing_block_fails_with_its_line_and_traceback(tmp_path: Path) -> None:
    blocks = [Block(1, "x = 1\n", False), Block(5, "assert x == 2, 'x is not 2'\n", False)]
    result = run_blocks(blocks, tmp_path / "home", tmp_path)
    assert result.returncode == 1
    assert "README block at line 5 failed" in result.stderr
    assert "AssertionError: x is not 2" in result.stderr


def test_readme_states_the_install_and_test_commands() -> None:
    head = README.read_text()[:3000]
    assert "python3 -m venv .venv" in head
    assert "pip install -e . && .venv/bin/python manage.py demo" in head
    assert "bash scripts/test" in head


def test_readme_python_blocks_run_against_the_demo_data(tmp_path: Path) -> None:
    blocks = [b for b in python_blocks(README.read_text()) if not b.skip]
    assert len(blocks) >= 5, "the README should have runnable python examples"
    home, workdir = tmp_path / "home", tmp_path / "work"
    workdir.mkdir()
    demo = subprocess.run(
        [sys.executable, "manage.py", "demo", "--quiet", "--synthetic-only"],
        cwd=REPO,
        env=child_env(home),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert demo.returncode == 0, f"manage.py demo failed:\n{demo.stdout}\n{demo.stderr}"
    result = run_blocks(blocks, home, workdir)
    if result.returncode != 0:
        pytest.fail(f"README example failed:\n{result.stderr}\n--- stdout ---\n{result.stdout}")
