"""The registry workload against LaminDB 2.12, in one run, as ratios (issue 10, point 7).

Each round runs LaminDB's harness (``../shared/peers/lamindb/bench_lamindb.py``, in the venv of
its own given by ``--peer-python``) and then ``bench/registry_bench.py`` on SQLite, one after the
other on the same machine, so that both see the same load. Both build the same workload shape
(1,000 artifacts, 600 cell types, the guide's queries) and time each query as the median of their
repetitions. Per round, a ratio is LaminDB's median divided by ours; the report gives every
ratio's min/median/max over the rounds, with the medians of both sides.

The pairs compared (ours <- LaminDB's):

- ``seed_query_ms`` <- ``b_filter_to_dataframe_include_nolimit`` (filter, order, to_dataframe
  with a many-valued and a foreign-key include, every row);
- ``five_relation_ms`` <- ``d_guide_filter_list`` (five label relations, records materialized);
- ``lookup_ms`` <- ``c_celltype_lookup``, ``count_simple_ms`` <- ``e_simple_filter_count``,
  ``count_join_ms`` <- ``e2_one_join_filter_count``, ``describe_ms`` <- ``f_artifact_describe``.

Install the peer once (never into the project's venv), then, from the repository root::

    python3 -m venv /tmp/peer-lamindb && /tmp/peer-lamindb/bin/pip install -U pip \\
      && /tmp/peer-lamindb/bin/pip install -r ../shared/peers/lamindb/requirements-lamindb.lock.txt
    .venv/bin/python bench/lamindb_bench.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

REPO = common.REPO
DEFAULT_PEER_PYTHON = "/tmp/peer-lamindb/bin/python"
DEFAULT_PEER_SCRIPT = REPO.parent / "shared" / "peers" / "lamindb" / "bench_lamindb.py"
#: our figure -> LaminDB's query key
PAIRS = {
    "seed_query_ms": "b_filter_to_dataframe_include_nolimit",
    "five_relation_ms": "d_guide_filter_list",
    "lookup_ms": "c_celltype_lookup",
    "count_simple_ms": "e_simple_filter_count",
    "count_join_ms": "e2_one_join_filter_count",
    "describe_ms": "f_artifact_describe",
}
#: the ratios issue 10 asks for (LaminDB's time / ours, at least)
GOALS = {"seed_query_ms": 3.0, "five_relation_ms": 2.0}

log = common.logger("lamindb")


def run_peer(python: str, script: Path, workdir: Path) -> dict[str, Any]:
    """One run of LaminDB's harness; its JSON (``queries`` holds the medians)."""
    out = workdir / "lamindb.json"
    env = {
        **os.environ,
        "BENCH_WORKDIR": str(workdir / "lamindb"),
        "BENCH_OUT": str(out),
        "BENCH_CREATE_REPEATS": "1",
    }
    done = subprocess.run(
        [python, str(script)], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"LaminDB's harness failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())


def run_ours(repeats: int, workdir: Path) -> dict[str, Any]:
    """One run of ``bench/registry_bench.py`` on SQLite; its ``sqlite`` entry."""
    out = workdir / "ours.json"
    command = [
        sys.executable,
        str(REPO / "bench" / "registry_bench.py"),
        "--backends",
        "sqlite",
        "--repeats",
        str(repeats),
        "--create-repeats",
        "1",
        "--out",
        str(out),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"registry_bench.py failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())["sqlite"]


def compare(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per pair: our medians, LaminDB's medians and the ratios of the rounds, summarized."""
    figures: dict[str, Any] = {}
    for ours_key, peer_key in PAIRS.items():
        ours = [r["ours"][ours_key] for r in rounds]
        peer = [r["lamindb"]["queries"][peer_key]["median_ms"] for r in rounds]
        ratios = [p / o for p, o in zip(peer, ours, strict=True)]
        entry = {
            "lamindb_query": peer_key,
            "ours_ms": common.summarize(ours),
            "lamindb_ms": common.summarize(peer),
            "ratio": common.summarize(ratios),
        }
        if ours_key in GOALS:
            goal = GOALS[ours_key]
            entry["goal"] = {"at_least": goal, "met_by_median": entry["ratio"]["median"] >= goal}
        figures[ours_key] = entry
    return figures


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of both (default 3)")
    parser.add_argument("--repeats", type=int, default=50, help="our timed runs per query")
    parser.add_argument("--peer-python", default=DEFAULT_PEER_PYTHON, help="LaminDB's venv python")
    parser.add_argument("--peer-script", type=Path, default=DEFAULT_PEER_SCRIPT)
    common.add_out_argument(parser, "lamindb")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.repeats < 1:
        parser.error("--rounds and --repeats must be at least 1")
    if not Path(args.peer_python).exists():
        parser.error(
            f"no LaminDB venv at {args.peer_python}: install it as the module docstring says"
        )
    if not args.peer_script.exists():
        parser.error(f"LaminDB's harness is not at {args.peer_script}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = common.Report("lamindb", args.out)
    rounds = []
    with tempfile.TemporaryDirectory(prefix="lamindb-bench-") as tmp:
        for i in range(args.rounds):
            workdir = Path(tmp) / f"round{i}"
            workdir.mkdir()
            log(f"round {i + 1}/{args.rounds}: LaminDB")
            peer = run_peer(args.peer_python, args.peer_script, workdir)
            log(f"round {i + 1}/{args.rounds}: cellregistry")
            ours = run_ours(args.repeats, workdir)
            rounds.append(
                {
                    "lamindb": {"versions": peer.get("versions"), "queries": peer["queries"]},
                    "ours": {key: ours[key] for key in PAIRS},
                    "ours_rows": ours["rows"],
                    "ours_results_match_plan": ours["results_match_plan"],
                }
            )
    results = {"pairs": PAIRS, "figures": compare(rounds), "rounds": rounds}
    report.finish(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
