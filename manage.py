#!/usr/bin/env python
"""cellregistry's Django entry point: migrate, runserver (admin), check and the project's commands.

``--instance NAME`` (anywhere on the command line) selects the instance to work on; otherwise
``$CELLREGISTRY_INSTANCE`` or the default from ``instances.toml`` is used.
"""

import os
import sys


def main() -> None:
    argv = list(sys.argv)
    for i, arg in enumerate(argv):
        if arg == "--instance" and i + 1 < len(argv):
            os.environ["CELLREGISTRY_INSTANCE"] = argv[i + 1]
            del argv[i : i + 2]
            break
        if arg.startswith("--instance="):
            os.environ["CELLREGISTRY_INSTANCE"] = arg.split("=", 1)[1]
            del argv[i]
            break
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry.settings")
    from django.core.management import execute_from_command_line

    from registry.errors import RegistryError

    try:
        execute_from_command_line(argv)
    except RegistryError as exc:  # a user error (unknown instance, ...): the message says it all
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
