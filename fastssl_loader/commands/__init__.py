"""Sub-commands of the ``fastssl`` command line: each module has ``add_parser(subparsers)`` and ``run(args)``."""
