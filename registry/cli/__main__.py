"""``python -m registry.cli``: the ``cellregistry`` command line."""

from registry.cli.main import main

raise SystemExit(main())
