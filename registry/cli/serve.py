"""``cellregistry serve``: the web interface (the Django admin) of an instance over HTTP.

It runs Django's threaded HTTP server without the autoreloader, serving the admin's static files
itself (``runserver --noreload --insecure``): enough for a lab or a container behind a proxy, and
nothing to install. The instance's database must be migrated.
"""

from __future__ import annotations

import argparse

from registry.cli.parsing import PROG, add_subcommand, use_instance
from registry.commandline import run_command

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def port_number(text: str) -> int:
    """A TCP port from the command line (1 to 65535)."""
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1 to 65535)")
    return port


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    """The ``serve`` subcommand."""
    serve = add_subcommand(
        subcommands,
        "serve",
        "serve the admin of the instance over HTTP",
        "Serve the instance's web interface (the Django admin, /admin/) over HTTP with Django's "
        "threaded server; stop it with Ctrl-C. Hosts other than localhost must be listed in "
        "$CELLREGISTRY_ALLOWED_HOSTS.",
    )
    serve.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})"
    )
    serve.add_argument(
        "--port",
        type=port_number,
        default=DEFAULT_PORT,
        help=f"port to listen on (default {DEFAULT_PORT})",
    )
    serve.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace) -> None:
    """``cellregistry serve [--host H] [--port P] [--instance NAME]``."""
    use_instance(args.instance)
    host = f"[{args.host}]" if ":" in args.host else args.host  # an IPv6 address
    address = f"{host}:{args.port}"
    run_command("runserver", [address, "--noreload", "--insecure"], PROG, "serve")
