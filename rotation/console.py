"""The ``certrotate`` console script's entry point: as little as possible before Ctrl-C is handled.

The command line (``rotation.cli``) imports argparse, rich and every command's module before it
runs; a Ctrl-C in that first part of a second would otherwise print a ``KeyboardInterrupt``
traceback. Here nothing is imported before the ``try``.
"""

import sys


def main() -> int:
    try:
        from rotation.cli import main as run

        return run()
    except KeyboardInterrupt:
        sys.stderr.write("certrotate: interrupted\n")
        return 130  # rotation.cli.ExitCode.INTERRUPTED
