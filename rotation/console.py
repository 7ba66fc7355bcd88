"""The ``certrotate`` console script's entry point: Ctrl-C is handled from the first moment.

The command line (``rotation.cli``) imports argparse, rich and every command's module before it
runs, and pip's script wrapper runs a line of its own before calling us; a Ctrl-C there would
otherwise print a ``KeyboardInterrupt`` traceback. Importing this module installs a SIGINT handler
that ends the process with the one line and exit 130 (nothing has been done yet, so there is
nothing to clean up); ``rotation.cli`` replaces it with Python's own (``KeyboardInterrupt``) just
before a command runs, so a command's own cleanup (``finally``, context managers) still happens.
"""

import os
import signal
import sys

INTERRUPTED = 130  # rotation.cli.ExitCode.INTERRUPTED


def _interrupted_while_starting(signum: int, frame: object) -> None:
    os.write(2, b"certrotate: interrupted\n")
    os._exit(INTERRUPTED)


if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # `certrotate … &`: rotation.cli decides
    signal.signal(signal.SIGINT, _interrupted_while_starting)


def main() -> int:
    try:
        from rotation.cli import main as run

        return run()
    except KeyboardInterrupt:
        sys.stderr.write("certrotate: interrupted\n")
        return INTERRUPTED
