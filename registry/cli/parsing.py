"""What every subcommand of ``cellregistry`` shares: the parser class and ``--instance``."""

from __future__ import annotations

import argparse
import os
from typing import NoReturn

from registry.commandline import add_instance_option, usage_error

PROG = "cellregistry"


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        usage_error(self.prog, message)


def add_subcommand(
    subcommands: argparse._SubParsersAction,
    name: str,
    summary: str,
    description: str = "",
    instance_help: str | None = None,
) -> Parser:
    """A subcommand parser with ``--instance NAME`` (``instance_help``: its help, if not the
    usual one)."""
    parser = subcommands.add_parser(name, help=summary, description=description or summary)
    if instance_help:
        parser.add_argument("--instance", metavar="NAME", help=instance_help)
    else:
        add_instance_option(parser)
    return parser


def use_instance(name: str | None) -> None:
    """Make ``name`` (if given) the instance Django is set up with in this process."""
    if name:
        os.environ["CELLREGISTRY_INSTANCE"] = name
