"""Running ``manage.py`` and ``cellregistry`` in subprocesses, and the one full demo build a test
session shares.

The full demo takes about a minute, so it is built once per test session: ``cellregistry demo``
and ``manage.py demo`` started together on a fresh ``CELLREGISTRY_HOME`` (the concurrent case of
issue 9: one builds, the other says that one is running and waits; both ways of starting the demo
end alike). ``tests/test_demo_command.py`` checks
what both printed; ``tests/test_readme.py`` runs the README's examples on the instance they built.
Neither writes into the ``demo`` instance afterwards (other instances in the same home are fine).

Subprocesses run with SQLite (``DATABASE_URL`` dropped), also in the PostgreSQL pass of the suite:
the demo instance is an embedded one.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: the tests whose subprocesses run on SQLite whatever the suite's database: they run in the
#: SQLite pass only (in the PostgreSQL pass they would repeat it exactly)
sqlite_pass_only = pytest.mark.skipif(
    "postgresql" in os.environ.get("DATABASE_URL", ""),
    reason="subprocesses on embedded SQLite instances: covered by the SQLite pass",
)
TIMEOUT = 900
SUMMARY = re.compile(
    r"Instance '(?P<name>[^']+)': (?P<what>.+?), (?P<artifacts>[\d,]+) artifacts, "
    r"(?P<collections>[\d,]+) collections \((?P<how>built in [\d.]+ s|reused); "
    r"database (?P<database>[^)]+)\)"
)
WAITING = "Another `manage.py demo` is building"


def child_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a subprocess: a private home, SQLite, no preselected instance."""
    env = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELLREGISTRY_INSTANCE"}
    }
    env["CELLREGISTRY_HOME"] = str(home)
    env.update(extra)
    return env


def manage_command(*args: str) -> list[str]:
    """The command line of ``manage.py ARGS`` (or of ``python -c CODE`` when ARGS is -c CODE)."""
    if args and args[0] == "-c":
        return [sys.executable, *args]
    return [sys.executable, str(REPO / "manage.py"), *args]


def cli_command(*args: str) -> list[str]:
    """The command line of ``cellregistry ARGS`` (as ``python -m registry.cli ARGS``)."""
    return [sys.executable, "-m", "registry.cli", *args]


def run(home: Path, *args: str, cwd: Path = REPO, **env: str) -> subprocess.CompletedProcess:
    """Run ``manage.py ARGS`` (or ``python -c CODE``) against ``home`` and wait for it."""
    return subprocess.run(
        manage_command(*args),
        cwd=cwd,
        env=child_env(home, **env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def summary(output: str) -> re.Match:
    """The summary line of a ``manage.py demo`` run (fails the test if there is none)."""
    match = SUMMARY.search(output)
    assert match, f"no summary line in:\n{output}"
    return match


@dataclass(frozen=True)
class ConcurrentDemo:
    """Two demo runs started together on ``home``: ``builder`` built, ``waiter`` waited."""

    home: Path
    builder: subprocess.CompletedProcess
    waiter: subprocess.CompletedProcess
    #: ``instances.toml`` as the two runs left it (tests that run later may add instances)
    config: str


_shared: ConcurrentDemo | None = None


def start_together(home: Path, *commands: list[str]) -> list[subprocess.CompletedProcess]:
    """Start the command lines ``commands`` at once on ``home``; all, once finished."""
    processes = [
        subprocess.Popen(
            command,
            cwd=REPO,
            env=child_env(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in commands
    ]
    finished = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
        finished.append(
            subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        )
    return finished


def shared_demo(base: Path) -> ConcurrentDemo:
    """The session's demo: built on first use under ``base`` by two concurrent runs."""
    global _shared
    if _shared is None:
        home = base / "demo-home"
        first, second = start_together(home, cli_command("demo"), manage_command("demo"))
        builder, waiter = (second, first) if WAITING in first.stderr else (first, second)
        config_file = home / "instances.toml"
        config = config_file.read_text() if config_file.exists() else ""
        _shared = ConcurrentDemo(home=home, builder=builder, waiter=waiter, config=config)
    return _shared
