"""Command-line subcommands; each module defines ``configure_parser(parser)`` and ``run(args)``.

The modules hold argument parsing and printing only; the work lives in the library modules.
"""
