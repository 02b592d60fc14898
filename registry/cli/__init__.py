"""``cellregistry``: the command line, in the manner of LaminDB's ``lamin``.

``cellregistry init | connect | info | serve`` are its own (:mod:`.instance_commands`,
:mod:`.info`, :mod:`.serve`); ``load-ontologies``, ``build-demo-release``, ``curate``, ``diff`` and
``demo`` run the management commands of the same purpose with their own options
(:data:`.main.MANAGEMENT_COMMANDS`), so this package imports none of the packages above
``registry``. Every subcommand takes ``--instance NAME`` and ``--help``; errors end as one line on
stderr, as in ``manage.py`` (:mod:`registry.commandline`).
"""
