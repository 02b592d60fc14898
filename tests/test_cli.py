"""``cellregistry`` (run as ``python -m registry.cli`` in subprocesses with their own
``CELLREGISTRY_HOME``): every subcommand has ``--help``; ``init``, ``connect``, ``info`` and
``serve`` work on embedded and PostgreSQL instances; the subcommands that run a management
command end their errors as ``manage.py`` does; bad input ends in one line with exit status 1
(an error) or 2 (a command line that does not parse).

``cellregistry demo`` itself runs in the session's shared demo build (``tests/demo_runs.py``,
checked by ``tests/test_demo_command.py``). Subprocesses on embedded instances run in the SQLite
pass only; the PostgreSQL instance and the in-process ``info`` run in both.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from ontologies.models import CellType
from registry import instances
from registry.cli.info import record_counts
from registry.cli.main import MANAGEMENT_COMMANDS, main
from registry.models import Artifact
from tests.conftest import N_ARTIFACTS
from tests.demo_runs import (
    REPO,
    ConcurrentDemo,
    child_env,
    cli_command,
    manage_command,
    run,
    shared_demo,
    sqlite_pass_only,
)
from tests.test_command_errors import closed_port

README = REPO / "README.md"
SUBCOMMANDS = ["init", "connect", "info", *MANAGEMENT_COMMANDS, "serve"]


def cli(home: Path, *args: str, cwd: Path = REPO, **env: str) -> subprocess.CompletedProcess:
    """Run ``cellregistry ARGS`` of this checkout (also from another ``cwd``) against ``home``
    and wait for it."""
    return subprocess.run(
        cli_command(*args),
        cwd=cwd,
        env=child_env(home, PYTHONPATH=str(REPO), **env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def started(home: Path, command: list[str]) -> subprocess.Popen:
    """``command`` started against ``home``, with this checkout's packages first."""
    return subprocess.Popen(
        command,
        cwd=REPO,
        env=child_env(home, PYTHONPATH=str(REPO)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def together(home: Path, *commands: list[str]) -> list[subprocess.CompletedProcess]:
    """Run the command lines ``commands`` at once against ``home`` (they only read): each,
    finished (started together, they take the time of the slowest on two cores)."""
    processes = [started(home, command) for command in commands]
    finished = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=300)
        finished.append(
            subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        )
    return finished


def error_line(result: subprocess.CompletedProcess, status: int, *parts: str) -> str:
    """The one line a failed command printed on stderr; checks the exit status, that there is no
    traceback and one non-blank line, and that it holds every one of ``parts``."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == status, f"exit {result.returncode}:\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, f"{len(lines)} lines on stderr:\n{result.stderr}"
    for part in parts:
        assert part in lines[0], f"{part!r} not in {lines[0]!r}"
    return lines[0]


def fields(output: str) -> dict[str, str]:
    """``info``'s lines as label -> value (``Artifact`` -> ``0``, ``instance`` -> ``...``)."""
    return dict(line.strip().split(maxsplit=1) for line in output.splitlines() if " " in line)


def stored_default(home: Path) -> str | None:
    """The default instance recorded in ``home``'s instances.toml."""
    match = re.search(r'^default = "(.*)"$', (home / "instances.toml").read_text(), re.M)
    return match[1] if match else None


# --- help, and the command line itself ---------------------------------------------------------


@sqlite_pass_only
def test_help_lists_every_subcommand_and_each_has_help_with_instance(tmp_path: Path) -> None:
    home = tmp_path / "home"
    top = cli(home, "--help")
    assert top.returncode == 0, top.stderr
    for name in SUBCOMMANDS:
        assert re.search(rf"^\s+{name}\s", top.stdout, re.M), f"{name} not in:\n{top.stdout}"
    helps = together(home, *(cli_command(name, "--help") for name in SUBCOMMANDS))
    for name, shown in zip(SUBCOMMANDS, helps, strict=True):
        assert shown.returncode == 0, f"{name} --help:\n{shown.stderr}"
        assert shown.stdout.startswith(f"usage: cellregistry {name} "), shown.stdout
        assert "--instance" in shown.stdout, f"{name} --help names no --instance:\n{shown.stdout}"
    assert not (home / "default").exists(), "--help created the embedded instance"


def test_the_console_script_is_installed() -> None:
    """``pip install -e .`` puts ``cellregistry`` next to the venv's python."""
    script = Path(sys.executable).parent / "cellregistry"
    assert script.exists(), f"no {script}: run `pip install -e .` to install the console script"
    shown = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("usage: cellregistry ")


def test_every_cellregistry_command_of_the_readme_exists() -> None:
    used = set(re.findall(r"(?:`|bin/)cellregistry ([a-z][a-z-]*)", README.read_text()))
    assert used, "the README uses no cellregistry command"
    assert used <= set(SUBCOMMANDS), (
        f"the README names unknown subcommands: {used - set(SUBCOMMANDS)}"
    )


# --- init, connect, info -----------------------------------------------------------------------


@pytest.mark.django_db
def test_info_counts_the_records_of_every_registry(
    capsys: pytest.CaptureFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process, on the suite's database (SQLite or PostgreSQL): the synthetic registry."""
    monkeypatch.chdir(tmp_path)
    assert main(["info"]) == 0
    made = [path.name for path in tmp_path.iterdir() if path.name != "home"]
    assert made == [], "info made files for an in-memory database"
    shown = fields(capsys.readouterr().out)
    counts = dict(record_counts("default"))
    assert counts["Artifact"] == Artifact.objects.count() >= N_ARTIFACTS
    assert counts["ontologies.CellType"] == CellType.objects.count() > 0
    for name, count in counts.items():
        assert shown[name] == f"{count:,}", name
    assert shown["instance"].startswith(f"{instances.EMBEDDED_NAME} (read-write; chosen by ")


@dataclass(frozen=True)
class Lab:
    """A home in which ``cellregistry init mylab --storage ./mylab-data`` ran (in ``work``)."""

    home: Path
    work: Path
    made: subprocess.CompletedProcess

    @property
    def database(self) -> str:
        return f"sqlite:///{self.home / 'mylab' / 'registry.sqlite3'}"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    """One embedded instance for the module's tests (migrating a database takes seconds)."""
    base = tmp_path_factory.mktemp("lab")
    (base / "work").mkdir()
    made = cli(base / "home", "init", "mylab", "--storage", "./mylab-data", cwd=base / "work")
    assert made.returncode == 0, made.stderr
    return Lab(base / "home", base / "work", made)


@sqlite_pass_only
def test_init_info_connect_on_embedded_instances(lab: Lab) -> None:
    home, work, made, database = lab.home, lab.work, lab.made, lab.database
    assert made.stdout.splitlines() == [
        f"Instance 'mylab' (read-write) is ready: database {database}, "
        f"storage {work / 'mylab-data'}.",
        f"It is the default instance now ({home / 'instances.toml'}).",
    ]
    saved = run(home, "-c", 'import registry as ln; ln.ULabel(name="pilot").save()')
    assert saved.returncode == 0, saved.stderr

    shown = cli(home, "info")
    assert shown.returncode == 0, shown.stderr
    info = fields(shown.stdout)
    chosen = f"chosen by the default of {home / 'instances.toml'}"
    assert info["instance"] == f"mylab (read-write; {chosen})"
    assert (info["database"], info["storage"]) == (database, str(work / "mylab-data"))
    assert (info["ULabel"], info["Artifact"], info["ontologies.CellType"]) == ("1", "0", "0")

    other = cli(home, "init", "--instance", "other", "--db", database, "--no-default")
    assert other.returncode == 0, other.stderr
    assert stored_default(home) == "mylab"
    connected = cli(home, "connect", "other")
    assert connected.returncode == 0, connected.stderr
    assert connected.stdout.startswith("Connected to instance 'other' (read-write): database ")
    assert stored_default(home) == "other"
    assert fields(cli(home, "info").stdout)["instance"] == f"other (read-write; {chosen})"
    by_option = fields(cli(home, "info", "--instance", "mylab").stdout)
    assert by_option["instance"] == "mylab (read-write; chosen by --instance)"
    for first in (["--instance", "mylab"], ["--instance=mylab"]):  # before the subcommand too
        assert fields(cli(home, *first, "info").stdout) == by_option

    shell = cli(home, "connect", "mylab", CELLREGISTRY_INSTANCE="other")
    assert "Note: $CELLREGISTRY_INSTANCE=other is set in this shell" in shell.stdout
    assert stored_default(home) == "mylab"

    # a read-only instance: the commands that write are refused before they run, as in manage.py
    assert cli(home, "init", "mirror", "--db", database, "--read-only").returncode == 0
    refused = cli(home, "curate", "--source", "./nowhere/cell-census/2024-07-01/")
    error_line(refused, 1, "error: Instance 'mirror' is read-only", "curate_release")
    assert fields(cli(home, "info").stdout)["instance"].startswith("mirror (read-only; ")


def test_init_and_info_on_a_postgresql_instance(tmp_path: Path, pg_database: str) -> None:
    home = tmp_path / "home"
    server, name = pg_database.rsplit("/", 1)
    url = f"{server.replace('postgres@', 'postgres:s3cret@')}/{name}"
    masked = url.replace(":s3cret@", ":***@")
    made = cli(home, "init", "pglab", "--db", url, "--storage", str(tmp_path / "data"))
    assert made.returncode == 0, made.stderr
    assert f"database {masked}, storage {tmp_path / 'data'}." in made.stdout
    assert "s3cret" not in made.stdout
    shown = cli(home, "info", "--instance", "pglab")
    assert shown.returncode == 0, shown.stderr
    info = fields(shown.stdout)
    assert info["database"] == masked and info["Artifact"] == "0"
    assert cli(home, "connect", "pglab").returncode == 0
    assert stored_default(home) == "pglab"


# --- serve --------------------------------------------------------------------------------------


def wait_for(url: str, process: subprocess.Popen, seconds: float = 60) -> tuple[int, str]:
    """The status and body of ``url`` once the server answers (fails if it dies or times out)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{process.stderr.read()}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode()
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.3)
    pytest.fail(f"no answer from {url} within {seconds} s")


@sqlite_pass_only
def test_serve_answers_with_the_admin(lab: Lab) -> None:
    port = closed_port()
    server = subprocess.Popen(
        cli_command("serve", "--instance", "mylab", "--port", str(port)),
        cwd=REPO,
        env=child_env(lab.home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        status, page = wait_for(f"http://127.0.0.1:{port}/admin/login/", server)
        assert status == 200 and "Log in" in page, page
        static = f"http://127.0.0.1:{port}/static/admin/css/base.css"
        with urllib.request.urlopen(static, timeout=5) as response:
            assert response.status == 200  # the admin's static files are served too
    finally:
        server.terminate()
        server.communicate(timeout=30)


# --- bad input: one line, exit status 1 (an error) or 2 (usage) ---------------------------------


@sqlite_pass_only
def test_an_unknown_instance_is_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for failed in together(
        home,
        cli_command("info", "--instance", "nope"),
        cli_command("connect", "nope"),
        cli_command("diff", "2024-07-01", "2025-01-30", "--instance", "nope"),
        cli_command("serve", "--instance", "nope"),
    ):
        error_line(failed, 1, "error: Unknown instance 'nope'.", "`cellregistry init nope")


@sqlite_pass_only
def test_a_bad_database_url_or_name_is_one_line_and_records_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    error_line(
        cli(home, "init", "lab", "--db", "mysql://db.example.org/lab"),
        1,
        "error: Unsupported database URL 'mysql://db.example.org/lab'",
        "postgresql://user@host:port/dbname",
    )
    error_line(
        cli(home, "init", "lab", "--db", "postgresql://db.example.org"),
        1,
        "error: Database URL 'postgresql://db.example.org' names no database",
    )
    error_line(cli(home, "init", "bad name"), 1, "error: Invalid instance name 'bad name'")
    assert not (home / "instances.toml").exists()


@sqlite_pass_only
def test_command_lines_that_do_not_parse_are_one_line_with_status_2(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cases = {
        ("frobnicate",): "cellregistry: error: argument COMMAND: invalid choice: 'frobnicate'",
        (): "cellregistry: error: the following arguments are required: COMMAND",
        ("init",): "cellregistry init: error: the instance name is required",
        ("init", "a", "--instance", "b"): "NAME 'a' and --instance 'b' differ",
        ("connect",): "cellregistry connect: error: the instance name is required",
        ("diff", "2024-07-01"): "cellregistry diff: error: the following arguments are required",
        ("curate",): "cellregistry curate: error: the following arguments are required: --source",
        ("serve", "--port", "http"): "cellregistry serve: error: argument --port: 'http' is not",
        ("info", "--verbose"): "cellregistry: error: unrecognized arguments: --verbose",
        ("--instance", "lab"): "cellregistry: error: the following arguments are required: COM",
    }
    failed = together(home, *(cli_command(*args) for args in cases))
    for result, message in zip(failed, cases.values(), strict=True):
        line = error_line(result, 2, message)
        assert line.endswith("--help`)"), line
    assert not (home / "default").exists(), "a usage error created the embedded instance"


@sqlite_pass_only
def test_errors_of_management_commands_are_the_ones_of_manage_py(lab: Lab) -> None:
    missing = lab.work / "gone" / "lab.sqlite3"
    config = instances.InstanceConfig("gone", f"sqlite:///{missing}", str(lab.work / "data"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CELLREGISTRY_HOME", str(lab.home))
        instances.save_instance(config)
    pairs = [
        (
            ("diff", "2024-07-01", "2025-01-30", "--instance", "gone"),
            ("release_diff", "2024-07-01", "2025-01-30", "--instance", "gone"),
            f"error: The SQLite file {missing} of instance 'gone' does not exist",
        ),
        (
            ("diff", "2024-07-01", "2025-01-30", "--instance", "mylab"),
            ("release_diff", "2024-07-01", "2025-01-30", "--instance", "mylab"),
            "CommandError: No curated datasets of release '2024-07-01' and '2025-01-30' in "
            "instance 'mylab'.",
        ),
    ]
    commands = [[cli_command(*ours), manage_command(*theirs)] for ours, theirs, _ in pairs]
    finished = together(lab.home, *(command for both in commands for command in both))
    for (_, _, message), ours, theirs in zip(pairs, finished[::2], finished[1::2], strict=True):
        assert error_line(ours, 1, message) == error_line(theirs, 1, message)
    error_line(cli(lab.home, "info", "--instance", "gone"), 1, f"The SQLite file {missing}")


# --- the README's example of info ---------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> ConcurrentDemo:
    return shared_demo(tmp_path_factory.getbasetemp())


@sqlite_pass_only
def test_info_on_the_demo_prints_the_readme_example(demo: ConcurrentDemo) -> None:
    readme = README.read_text()
    command = ".venv/bin/cellregistry info --instance demo"
    assert command in readme
    example = readme.split(command, 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    shown = cli(demo.home, "info", "--instance", "demo")
    assert shown.returncode == 0, shown.stderr
    lines = {tuple(line.split()) for line in shown.stdout.splitlines()}  # alignment aside
    for line in example.splitlines():
        if "..." not in line:
            line = line.replace("/home/me/.cellregistry", str(demo.home.resolve()))
            assert tuple(line.split()) in lines, f"README line {line!r} not in:\n{shown.stdout}"
