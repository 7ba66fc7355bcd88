"""How a run ends and what it says: exit codes, the two failures, one-line printable output."""

import enum
import os
import signal
import sys
from typing import Tuple


class Exit(enum.IntEnum):
    OK = 0
    INTERNAL = 1
    BAD_PARAMETER = 2
    SECRET_UNREADABLE = 3
    BUNDLE_INVALID = 4
    CONFIG_TEST_FAILED = 5
    RELOAD_FAILED = 6
    NOTHING_TO_ROLL_BACK = 7
    BUSY = 8
    REFUSED = 9
    WRITE_FAILED = 10
    INTERRUPTED = 11
    ROLLBACK_INCOMPLETE = 12
    HOST_UNSUPPORTED = 13
    SERVER_DOWN = 14  # the previous files are back, but the server could not be brought back onto them


class InstallError(Exception):
    """A failure with its documented exit code; the message never holds key material."""

    def __init__(self, code: Exit, message: str, served_check: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.served_check = served_check  # the failed run's served-truth check (the fleet record's ServedCheck)

    def with_served_check(self, summary: str) -> "InstallError":
        """The same failure, carrying the summary of the served-truth check that ran before it."""
        return InstallError(self.code, self.message, summary)


class Interrupted(BaseException):
    """SIGTERM, SIGINT or SIGHUP arrived: roll back and exit 11."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def printable(text: str) -> str:
    """Pure: ``text`` as one line of printable ASCII: a newline, an escape sequence or a non-ASCII
    character (a certificate's CN, Apache's output) is written as ``\\n``, ``\\x1b``, ``\\xe9``. No
    user text can add a line to the document's output, and nothing depends on the locale's
    encoding (Python 3.6 in a C locale writes ASCII only)."""
    return "".join(c if " " <= c <= "~" and c != "\\" else c.encode("unicode_escape").decode("ascii") for c in text)


def out(text: str) -> None:
    print(printable(text), flush=True)


def say(text: str) -> None:
    out("certrotate: " + text)


def warn(text: str) -> None:
    print(printable("certrotate: " + text), file=sys.stderr, flush=True)


def refused(text: str) -> InstallError:
    return InstallError(Exit.REFUSED, text)


def describe_os_error(exc: OSError) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


def classify(exc: BaseException) -> Tuple[Exit, str]:
    """The exit code and message of a failure; never the text of an arbitrary exception."""
    if isinstance(exc, InstallError):
        return exc.code, exc.message
    if isinstance(exc, Interrupted):
        return Exit.INTERRUPTED, f"interrupted by signal {signal.Signals(exc.signum).name}"
    if isinstance(exc, OSError):
        return Exit.WRITE_FAILED, f"a file operation failed: {describe_os_error(exc)}"
    trace = exc.__traceback__
    while trace is not None and trace.tb_next is not None:
        trace = trace.tb_next
    line = trace.tb_lineno if trace is not None else 0
    module = os.path.basename(trace.tb_frame.f_code.co_filename) if trace is not None else "?"
    return Exit.INTERNAL, f"unexpected {type(exc).__name__} at line {line} of the installer ({module})"
