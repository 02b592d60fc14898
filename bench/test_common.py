"""Tests of the benchmarks' shared helper (``bench/common.py``): statistics, repeats, the
report's JSON and its errors. Run: ``.venv/bin/python -m pytest -q bench/test_common.py``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402


def test_summarize_gives_every_statistic_and_the_raw_values() -> None:
    stats = common.summarize([3.0, 1.0, 2.0, 10.0])
    assert stats == {
        "n": 4,
        "min": 1.0,
        "median": 2.5,
        "max": 10.0,
        "mean": 4.0,
        "values": [3.0, 1.0, 2.0, 10.0],
    }


def test_summarize_rounds_to_four_significant_digits() -> None:
    assert common.summarize([0.123456])["values"] == [0.1235]
    assert common.summarize([2_057_123.0])["median"] == 2_057_000.0


def test_summarize_refuses_no_values() -> None:
    with pytest.raises(ValueError, match="at least one value"):
        common.summarize([])


def test_measure_times_only_the_repeats_after_the_warmups() -> None:
    calls, setups = [], []
    timing = common.measure(lambda: calls.append(1) or len(calls), 3, 2, lambda: setups.append(1))
    assert len(calls) == 5 and len(setups) == 5
    assert len(timing.seconds) == 3
    assert timing.result == 5
    assert timing.stats(1000)["n"] == 3


def test_same_in_every_repeat() -> None:
    assert common.same_in_every_repeat("bytes", [7, 7, 7]) == 7
    with pytest.raises(SystemExit, match=r"bytes differed between repeats \(\[7, 8\]\)"):
        common.same_in_every_repeat("bytes", [7, 8])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--repeats", "0"], "--repeats must be at least 1 (got 0)."),
        (["--warmups", "-1"], "--warmups must be 0 or more (got -1)."),
    ],
)
def test_check_repeats_names_the_option(
    argv: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--warmups", type=int, default=0)
    with pytest.raises(SystemExit):
        common.check_repeats(parser, parser.parse_args(argv))
    assert message in capsys.readouterr().err


def test_default_out_is_dated_under_bench_results() -> None:
    parser = argparse.ArgumentParser()
    common.add_out_argument(parser, "registry")
    out = parser.parse_args([]).out
    assert out.parent == common.REPO / "bench" / "results"
    assert out.name.startswith("registry-") and out.suffix == ".json"
    assert len(out.stem) == len("registry-YYYY-MM-DD")


def test_report_prints_and_writes_the_same_json(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "results" / "x-2026-01-01.json"
    report = common.Report("x", out)
    written = report.finish({"figure_s": 1.5})
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text()) == json.loads(json.dumps(written))
    assert printed["figure_s"] == 1.5
    assert printed["benchmark"] == "bench/x_bench.py"
    assert set(printed["source"]) == {"commit", "commit_short", "dirty", "uncommitted_files"}
    assert len(printed["source"]["commit"]) == 40
    machine = printed["machine"]
    for key in ("nproc", "cpu_model", "ram_gib", "load_average_before", "load_average_after"):
        assert machine[key] is not None
    assert len(machine["load_average_after"]) == 3
    assert printed["versions"]["python"] and printed["versions"]["django"]
    assert "postgresql" not in printed["versions"]  # no PostgreSQL URL given


def test_report_names_the_file_it_cannot_write(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    report = common.Report("x", blocker / "x.json")
    with pytest.raises(SystemExit) as raised:
        report.finish({"figure_s": 1.5})
    message = str(raised.value)
    assert message.startswith(f"Cannot write the results to {blocker / 'x.json'}: ")
    assert message.endswith("pass --out PATH to write it elsewhere.")
    assert json.loads(capsys.readouterr().out)["figure_s"] == 1.5  # printed before failing


def test_report_refuses_results_that_replace_its_own_keys(tmp_path: Path) -> None:
    report = common.Report("x", tmp_path / "x.json")
    with pytest.raises(ValueError, match=r"Result keys \['command'\] would replace"):
        report.finish({"command": "manage.py demo"})
    assert not (tmp_path / "x.json").exists()


def test_postgres_version_of_an_unreachable_server_says_so() -> None:
    version = common.postgres_version("postgresql://postgres@127.0.0.1:1/nothing")
    assert version.startswith("not reachable: ")


def test_parse_backends(capsys: pytest.CaptureFixture) -> None:
    parser = argparse.ArgumentParser()
    assert common.parse_backends(parser, "sqlite, postgresql") == ["sqlite", "postgresql"]
    with pytest.raises(SystemExit):
        common.parse_backends(parser, "sqlite,mysql")
    assert (
        "--backends takes sqlite and/or postgresql, comma-separated (got 'sqlite,mysql'; "
        "unknown: mysql)." in capsys.readouterr().err
    )


@pytest.mark.parametrize("text", ["0,2", "one", ""])
def test_parse_worker_counts_refuses_non_counts(text: str, capsys: pytest.CaptureFixture) -> None:
    parser = argparse.ArgumentParser()
    with pytest.raises(SystemExit):
        common.parse_worker_counts(parser, "--workers", text)
    assert (
        f"--workers takes worker counts of at least 1 like 1,2 (got {text!r})."
        in capsys.readouterr().err
    )


def test_parse_worker_counts() -> None:
    assert common.parse_worker_counts(argparse.ArgumentParser(), "--workers", "1,2") == [1, 2]


def test_isolate_home_points_the_registry_at_a_temporary_home(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CELLREGISTRY_HOME", "/nowhere")
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1/mine")
    monkeypatch.setenv("CELLREGISTRY_INSTANCE", "mine")
    monkeypatch.setattr(common, "_HOMES", [])
    home = common.isolate_home("test")
    kept = common.isolate_home("test-kept")
    common.keep_home(kept)
    assert os.environ["CELLREGISTRY_HOME"] == str(kept) and kept.is_dir()
    assert "DATABASE_URL" not in os.environ and "CELLREGISTRY_INSTANCE" not in os.environ
    common._remove_homes()  # what runs when the process exits
    assert not home.exists() and kept.is_dir()
    kept.rmdir()
