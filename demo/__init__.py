"""The demo: a synthetic registry (the benchmark workload), demo Census releases built offline,
and the ``demo`` / ``build_demo_release`` commands that put them together.

This app sits on top of the others: it imports ``registry``, ``ontologies`` and ``curation``;
nothing imports it.
"""
