"""The README's examples are true: its Python blocks run, in order, against the demo instance, and
its newcomer commands ("Curate into an instance of your own") run as written.

Convention: every ```` ```python ```` block of README.md is executed, in the order of the file,
in one fresh Python process with one shared namespace (like the cells of a notebook), against the
demo instance that ``cellregistry demo`` built in a temporary ``CELLREGISTRY_HOME`` (the
session's shared build, see ``tests/demo_runs.py``); the working directory is a temporary folder.
A block whose fence is preceded by the line ``<!-- skip-test -->`` is not run: use it only for
examples that need outside services (a remote PostgreSQL server, an S3 bucket). The one
```` ```bash ```` block preceded by ``<!-- newcomer-test -->`` is run by ``bash -e`` in an empty
folder holding only ``.venv`` and ``manage.py`` (links to this checkout's), with a fresh home; it
needs the ``cellregistry`` console script in the venv (``pip install -e .`` installs it).
Other fences (bash, toml, text) are never run. A failing block fails the test with the block's
README line, its code and the traceback.

The subprocesses always use SQLite (``DATABASE_URL`` is dropped from their environment), also in
the PostgreSQL run of the suite: the README's instances are embedded ones.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.demo_runs import ConcurrentDemo, child_env, run, shared_demo, sqlite_pass_only

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
SKIP_MARKER = "<!-- skip-test -->"
NEWCOMER_MARKER = "<!-- newcomer-test -->"

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
    """A code block of the README: its first code line (1-based, after the fence), its code and
    the last non-empty line before its fence (where a marker such as ``<!-- skip-test -->`` is)."""

    line: int
    code: str
    marker: str = ""

    @property
    def skip(self) -> bool:
        """Whether the block is marked as not to be run."""
        return self.marker == SKIP_MARKER


def fenced_blocks(markdown: str, language: str = "python") -> list[Block]:
    """The ```` ```LANGUAGE ```` blocks of a markdown text, in order."""
    blocks: list[Block] = []
    lines = markdown.splitlines()
    previous = ""
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped.startswith("```") and stripped != "```":
            end = i + 1
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            if end == len(lines):
                raise ValueError(f"README line {i + 1}: {stripped} block is never closed")
            if stripped == f"```{language}":
                code = "\n".join(lines[i + 1 : end]) + "\n"
                blocks.append(Block(line=i + 1, code=code, marker=previous))
            i = end
        if stripped:
            previous = stripped
        i += 1
    return blocks


def python_blocks(markdown: str) -> list[Block]:
    """The ```python blocks of a markdown text (``skip`` after a ``<!-- skip-test -->``)."""
    return fenced_blocks(markdown, "python")


def run_blocks(blocks: list[Block], home: Path, workdir: Path) -> subprocess.CompletedProcess:
    """Run blocks in order in one Python process; returns the finished process."""
    spec = workdir / "blocks.json"
    spec.write_text(json.dumps([{"line": b.line, "code": b.code} for b in blocks]))
    return subprocess.run(
        [sys.executable, "-c", RUNNER, str(README), str(spec)],
        cwd=workdir,
        env=child_env(home),
        capture_output=True,
        text=True,
        timeout=600,
    )


def newcomer_folder(folder: Path) -> Path:
    """An empty folder with ``.venv`` and ``manage.py`` of this checkout, as the README's
    commands expect them in the repository folder."""
    folder.mkdir()
    if sys.prefix != sys.base_prefix:  # a venv: link it whole (python finds its pyvenv.cfg)
        (folder / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    else:
        (folder / ".venv" / "bin").mkdir(parents=True)
        (folder / ".venv" / "bin" / "python").symlink_to(sys.executable)
    (folder / "manage.py").symlink_to(REPO / "manage.py")
    return folder


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> ConcurrentDemo:
    return shared_demo(tmp_path_factory.getbasetemp())


def test_block_extraction_honours_markers() -> None:
    text = (
        "```python\na = 1\n```\n\n<!-- skip-test -->\n```python\nb = 2\n```\n"
        "<!-- newcomer-test -->\n```bash\nls\n```\n```text\n```python\n```\n"
    )
    blocks = python_blocks(text)
    assert [(b.line, b.code, b.skip) for b in blocks] == [
        (1, "a = 1\n", False),
        (6, "b = 2\n", True),
    ]
    assert fenced_blocks(text, "bash") == [Block(10, "ls\n", NEWCOMER_MARKER)]


def test_a_failing_block_fails_with_its_line_and_traceback(tmp_path: Path) -> None:
    blocks = [Block(1, "x = 1\n"), Block(5, "assert x == 2, 'x is not 2'\n")]
    result = run_blocks(blocks, tmp_path / "home", tmp_path)
    assert result.returncode == 1
    assert "README block at line 5 failed" in result.stderr
    assert "AssertionError: x is not 2" in result.stderr


def test_readme_states_the_install_and_test_commands() -> None:
    head = README.read_text()[:3000]
    assert "python3 -m venv .venv" in head
    assert "pip install -e . && .venv/bin/cellregistry demo" in head
    assert "bash scripts/test" in README.read_text()[:6000]


@sqlite_pass_only
def test_readme_python_blocks_run_against_the_demo_instance(
    demo: ConcurrentDemo, tmp_path: Path
) -> None:
    assert demo.builder.returncode == 0, f"manage.py demo failed:\n{demo.builder.stderr}"
    blocks = [b for b in python_blocks(README.read_text()) if not b.skip]
    assert len(blocks) >= 5, "the README should have runnable python examples"
    result = run_blocks(blocks, demo.home, tmp_path)
    if result.returncode != 0:
        pytest.fail(f"README example failed:\n{result.stderr}\n--- stdout ---\n{result.stdout}")


@sqlite_pass_only
def test_readme_newcomer_commands_curate_into_an_instance_of_ones_own(tmp_path: Path) -> None:
    """The commands of "Curate into an instance of your own", exactly as written, with relative
    paths, in a folder of their own; then curate_release refuses an instance without ontologies."""
    (script,) = [
        b for b in fenced_blocks(README.read_text(), "bash") if b.marker == NEWCOMER_MARKER
    ]
    if not (Path(sys.prefix) / "bin" / "cellregistry").exists():
        pytest.fail(f"no cellregistry console script in {sys.prefix}: run `pip install -e .`")
    home, folder = tmp_path / "home", newcomer_folder(tmp_path / "checkout")
    done = subprocess.run(
        ["bash", "-e", "-c", script.code],
        cwd=folder,
        env=child_env(home),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, f"README line {script.line}:\n{done.stdout}\n{done.stderr}"
    assert "Mature kidney dataset: immune" in done.stdout
    assert "instance  mylab (read-write; chosen by the default of" in done.stdout
    roots = run(
        home,
        "-c",
        'import registry as ln; ln.connect("mylab"); '
        "print(*ln.Storage.filter().values_list('root', flat=True))",
    )
    # the default storage init recorded, and the release's bucket curation registered
    expected = {
        str((folder / "census-bucket").resolve()),
        str(home.resolve() / "mylab" / "storage"),
    }
    assert set(roots.stdout.split()) == expected, roots.stderr

    made = run(home, "-c", 'import registry as ln; ln.init("empty", make_default=False)')
    assert made.returncode == 0, made.stderr
    source = "./census-bucket/cell-census/2024-07-01/"
    refused = run(home, "curate_release", "--instance", "empty", "--source", source, cwd=folder)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert "python manage.py load_ontologies --instance empty" in refused.stderr
