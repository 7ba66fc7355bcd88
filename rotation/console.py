"""The ``certrotate`` console script's entry point: Ctrl-C is handled from its first line.

The first statement installs the SIGINT handler, through ``_signal`` (built into the interpreter:
importing it runs no Python code and cannot be interrupted half-way), before anything else is
imported. Until ``rotation.cli`` takes over, a Ctrl-C ends the process with the one line and exit
130 (nothing has been done yet, so there is nothing to clean up). ``rotation.cli`` replaces the
handler with Python's own (``KeyboardInterrupt``) just before a command runs, so a command's
cleanup (``finally``, context managers) still happens; when the command has returned, this module
puts its handler back, so a Ctrl-C while the interpreter shuts down is the one line and 130 too.

What comes before this module's first line is the interpreter's own start (its ``site`` module and
the ``.pth`` files of site-packages, then pip's script wrapper importing this package): no code of
a package runs there, and a Ctrl-C then ends Python as Python ends it.
"""

import _signal  # type: ignore[import-not-found]  # first: nothing runs before the handler

INTERRUPTED = 130  # rotation.cli.ExitCode.INTERRUPTED


def _interrupted_while_starting(signum: int, frame: object) -> None:
    import os  # loaded with the interpreter (site): no module is read inside the handler
    import sys

    # What a finished command printed still reaches a pipe (os._exit flushes nothing); interrupted
    # mid-write, or with stdout closed, it exits all the same.
    try:  # noqa: SIM105 - contextlib may not be loaded yet: no import inside a signal handler
        sys.stdout.flush()
    except Exception:  # noqa: S110
        pass
    os.write(2, b"certrotate: interrupted\n")
    os._exit(INTERRUPTED)


# `certrotate … &` starts with SIGINT ignored: rotation.cli decides then.
if _signal.getsignal(_signal.SIGINT) is not _signal.SIG_IGN:
    _signal.signal(_signal.SIGINT, _interrupted_while_starting)

import sys  # noqa: E402


def main() -> int:
    try:
        from rotation.cli import main as run

        return run()
    except KeyboardInterrupt:
        sys.stderr.write("certrotate: interrupted\n")
        return INTERRUPTED
    finally:
        if _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
            _signal.signal(_signal.SIGINT, _interrupted_while_starting)
