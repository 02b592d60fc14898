#!/usr/bin/env python
"""cellregistry's Django entry point: migrate, runserver (admin), check and the project's commands.

``--instance NAME`` (anywhere on the command line) selects the instance to work on; otherwise
``$CELLREGISTRY_INSTANCE`` or the default from ``instances.toml`` is used. The database a command
needs is checked before it runs, and errors end as one line on stderr with exit status 1
(:mod:`registry.commandline`).
"""

import sys

from registry.commandline import main

if __name__ == "__main__":
    main(sys.argv)
