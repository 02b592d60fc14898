"""The ``cellregistry`` console script: parse the subcommand, run it, errors in one line.

Exit status: 0 on success, 1 for an error (one line on stderr: ``error: ...``, or
``CommandError: ...`` from a management command, as ``manage.py`` prints them), 2 for a command
line that does not parse (one line: ``cellregistry SUBCOMMAND: error: ...``).
"""

from __future__ import annotations

import os
import sys

from registry import __version__
from registry.cli import info, instance_commands, serve
from registry.cli.parsing import PROG, Parser
from registry.commandline import errors_in_one_line, pop_instance_option, run_command

#: subcommand -> (the management command it runs with its own options, its summary)
MANAGEMENT_COMMANDS = {
    "load-ontologies": (
        "load_ontologies",
        "import the ontologies of the CELLxGENE schema (offline), or an OBO/OWL file, or genes",
    ),
    "build-demo-release": (
        "build_demo_release",
        "write a demo Census release (h5ads + TileDB-SOMA store) to a folder or S3",
    ),
    "curate": ("curate_release", "curate a Census release into the instance, by reference"),
    "diff": ("release_diff", "datasets added, removed and revised between two curated releases"),
    "demo": ("demo", "build the demo instance once and run the guide's example queries on it"),
}


def build_parser() -> Parser:
    """The command line: the subcommands in the order of a first session."""
    parser = Parser(
        prog=PROG,
        description="cellregistry: a metadata registry and catalog for CELLxGENE data. "
        "Every subcommand takes --instance NAME (before or after the subcommand) and --help.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    instance_commands.add_parsers(subcommands)
    info.add_parser(subcommands)
    for name, (_, summary) in MANAGEMENT_COMMANDS.items():
        subcommands.add_parser(name, help=summary, add_help=False)
    serve.add_parser(subcommands)
    return parser


def instance_after_command(argv: list[str]) -> list[str]:
    """``--instance NAME COMMAND ...`` (or ``--instance=NAME``) as ``COMMAND --instance NAME
    ...``: the option is taken before the subcommand as after it."""
    taken = 1 if argv and argv[0].startswith("--instance=") else 2
    if not argv or argv[0].split("=")[0] != "--instance":
        return argv
    if len(argv) <= taken:  # no subcommand after it: the parser says one is required
        return []
    return [argv[taken], *argv[:taken], *argv[taken + 1 :]]


def main(argv: list[str] | None = None) -> int:
    """Run ``cellregistry ARGV`` (default: the process's arguments); the exit status."""
    argv = instance_after_command(sys.argv[1:] if argv is None else list(argv))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry.settings")
    if argv and argv[0] in MANAGEMENT_COMMANDS:
        command, _ = MANAGEMENT_COMMANDS[argv[0]]
        options = pop_instance_option(argv[1:])
        with errors_in_one_line(options):
            run_command(command, options, PROG, argv[0])
        return 0
    args = build_parser().parse_args(argv)
    with errors_in_one_line(argv):
        args.run(args)
    return 0
