"""Benchmark of the main job (issue 5, point 12: ``python manage.py demo`` in <= 3 minutes).

``--repeats`` times, each in a new temporary ``$CELLREGISTRY_HOME``: ``manage.py demo`` runs as a
separate process (the ontology import, two demo releases built, both curated, all examples and
the release diff printed; its output goes to a log file, not a terminal) and its wall time is
taken; then ``manage.py demo`` runs again in the same home, which finds everything built and only
queries (``rerun_seconds``). Flat keys are medians; ``stats`` holds n, min,
median, max, mean and the raw values, also of the CPU seconds of the process and its children.

One JSON object goes to stdout and to ``--out`` (default ``bench/results/demo-<date>.json``),
progress to stderr. Run from the repository root::

    .venv/bin/python bench/demo_bench.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

BUDGET_SECONDS = 180

log = common.logger("demo-bench")


def run_demo(home: Path, log_file: Path, extra: list[str]) -> tuple[float, float, str]:
    """``manage.py demo`` in ``home``: wall seconds, CPU seconds (with its children) and the
    summary line it printed.

    Raises:
        SystemExit: the command failed (its exit status and the log file are named).
    """
    env = {**os.environ, "CELLREGISTRY_HOME": str(home)}
    for variable in ("CELLREGISTRY_INSTANCE", "DATABASE_URL"):
        env.pop(variable, None)
    command = [sys.executable, str(common.REPO / "manage.py"), "demo", *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with log_file.open("w") as out:
        started = time.perf_counter()
        done = subprocess.run(command, cwd=common.REPO, env=env, stdout=out, stderr=out)
        wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    text = log_file.read_text(errors="replace")
    if done.returncode != 0:
        tail = "\n".join(text.splitlines()[-20:])
        raise SystemExit(
            f"`{' '.join(command)}` failed (exit status {done.returncode}) in "
            f"CELLREGISTRY_HOME={home}; its output is in {log_file}. Last lines:\n{tail}"
        )
    summary = next(
        (line for line in text.splitlines() if line.startswith("Instance ")), "(no summary line)"
    )
    return wall, cpu, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs, each in a fresh home")
    parser.add_argument(
        "--quiet", action="store_true", help="pass --quiet to the demo (no examples printed)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the homes and logs (printed)")
    common.add_out_argument(parser, "demo")
    args = parser.parse_args()
    common.check_repeats(parser, args)
    extra = ["--quiet"] if args.quiet else []
    report = common.Report("demo", args.out)
    scratch = Path(tempfile.mkdtemp(prefix="cellregistry-demo-bench-"))
    walls, cpus, rerun_walls, summaries = [], [], [], []
    try:
        for i in range(args.repeats):
            home = scratch / f"home-{i}"
            home.mkdir()
            log(f"repeat {i + 1} of {args.repeats}: manage.py demo in {home}")
            wall, cpu, summary = run_demo(home, scratch / f"demo-{i}.log", extra)
            walls.append(wall)
            cpus.append(cpu)
            summaries.append(summary)
            log(f"  {wall:.1f} s wall, {cpu:.1f} s CPU: {summary}")
            rerun, _, _ = run_demo(home, scratch / f"demo-{i}-rerun.log", extra)
            rerun_walls.append(rerun)
            log(f"  rerun (reuses the demo instance) {rerun:.1f} s")
    finally:
        if args.keep:
            log(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    stats = {
        "seconds": common.summarize(walls),
        "cpu_seconds": common.summarize(cpus),
        "rerun_seconds": common.summarize(rerun_walls),
    }
    result: dict[str, Any] = {
        "demo_command": "manage.py demo" + (" --quiet" if args.quiet else ""),
        "repeats": args.repeats,
        "seconds": stats["seconds"]["median"],
        "cpu_seconds": stats["cpu_seconds"]["median"],
        "rerun_seconds": stats["rerun_seconds"]["median"],
        "budget_seconds": BUDGET_SECONDS,
        "meets_budget": stats["seconds"]["max"] <= BUDGET_SECONDS,
        "summary_lines": summaries,
        "stats": stats,
    }
    report.finish(result)


if __name__ == "__main__":
    main()
