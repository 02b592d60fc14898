"""No orphans (issue 9, point 6): killing ``curate_release`` during the obs scan — SIGKILL, SIGTERM
or Ctrl-C (SIGINT) — leaves no worker process alive, and a run that could clean up is marked
failed with the interruption.

The command runs under a launcher whose top level replaces ``curation.annotate.scan_chunk`` by a
version that announces itself (a marker file per worker) and then hangs. Worker processes are
spawned, so they import the launcher as their main module too and run the same replacement: the
scan hangs in the workers, where a real scan of a large store spends its time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import registry as ln
from demo.census.release import build_release

REPO = Path(__file__).resolve().parents[2]
TAG = "2024-07-01"
LAUNCHER = r"""
import functools
import os
import sys
import time

sys.path.insert(0, os.environ["CELLREGISTRY_REPO"])
import curation.annotate

_scan_chunk = curation.annotate.scan_chunk


@functools.wraps(_scan_chunk)  # pickled by name: the workers look up this replacement
def scan_chunk(task):
    open(f"{os.environ['SCAN_MARKER']}.{os.getpid()}", "w").close()
    time.sleep(600)
    return _scan_chunk(task)


curation.annotate.scan_chunk = scan_chunk

if __name__ == "__main__":
    import manage

    manage.main(sys.argv)
"""


def children_of(pid: int) -> set[int]:
    """The live (not zombie) descendants of a process, read from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("signals")
    build_release(str(dest), TAG, n_datasets=6, cells_per_dataset=100, workers=1)
    return dest / "cell-census" / TAG


@pytest.mark.parametrize(
    ("sig", "marked_failed"),
    [(signal.SIGKILL, False), (signal.SIGTERM, True), (signal.SIGINT, True)],
    ids=["SIGKILL", "SIGTERM", "SIGINT"],
)
def test_killing_the_command_during_the_scan_leaves_no_worker(
    release: Path,
    copies: Callable[[str], ln.DB],
    tmp_path: Path,
    sig: signal.Signals,
    marked_failed: bool,
) -> None:
    db = copies("signals")
    launcher = tmp_path / "launcher.py"
    launcher.write_text(LAUNCHER)
    marker = tmp_path / "scanning"
    env = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELLREGISTRY_INSTANCE"}
    }
    env.update(CELLREGISTRY_REPO=str(REPO), SCAN_MARKER=str(marker))
    argv = [sys.executable, str(launcher), "--instance", "signals", "curate_release"]
    argv += ["--source", f"{release}/", "--workers", "2", "--quiet"]
    with (tmp_path / "err").open("w") as err:
        process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_for(
            lambda: len(list(tmp_path.glob("scanning.*"))) == 2 or process.poll() is not None,
            120,
            "two workers scanning",
        )
        assert process.poll() is None, (tmp_path / "err").read_text()
        workers = {int(path.suffix[1:]) for path in tmp_path.glob("scanning.*")}
        children = children_of(process.pid)
        assert workers <= children
        os.kill(process.pid, sig)
        process.wait(timeout=30)
        started = time.monotonic()
        wait_for(lambda: not any(alive(pid) for pid in children), 5, "the children to end")
        assert time.monotonic() - started <= 5
    finally:
        if process.poll() is None:
            process.kill()
    stderr = (tmp_path / "err").read_text()
    run = db.Run.one()
    if marked_failed:
        assert process.returncode == 128 + sig, stderr
        name = signal.Signals(sig).name
        assert run.status == "failed" and run.report["error"] == f"interrupted ({name})"
        assert f"interrupted ({name})" in stderr and "Traceback" not in stderr
    else:
        assert process.returncode == -signal.SIGKILL
        assert run.status == "started"
