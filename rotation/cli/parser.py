"""The command line's exit codes and the argparse parts every command shares: one-line errors, the global options."""

from __future__ import annotations

import argparse
import re
from enum import IntEnum
from typing import Any, NoReturn

from rotation.cli import options
from rotation.cli.session import DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # the operation failed: AWS error, rotation failed or timed out, instance failed, check failed
    USAGE = 2  # a flag, argument or flag value the command cannot use
    INVALID = 3  # the input is unusable: bad specification, unknown secret or file, not a certificate secret
    UNREACHABLE = 4  # AWS unreachable, timed out, or no region/credentials
    NOT_PUBLISHED = 5  # revoke --compromised: the revocation is not in the CA's published CRL in time
    INTERRUPTED = 130  # Ctrl-C
    #: The reader of stdout went away (``certrotate status | head``): quietly, 128 + SIGPIPE, the status
    #: a shell reports for any command that a closed pipe stops (``cat``, ``grep``), so ``pipefail``
    #: scripts see what they see for those, and it is never confused with a failed check (1).
    READER_GONE = 141


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, like every other certrotate error."""

    def error(self, message: str) -> NoReturn:
        # "argument --tag: --tag 'foo': expected KEY=VALUE" says the flag twice: keep the second.
        message = re.sub(r"^argument (\S+): (?=\1 )", "", message)
        mistyped = re.match(
            r"^argument (COMMAND|COMMAND \S+): invalid choice: '([^']*)' \(choose from (.*)\)$", message
        )
        if mistyped:
            import difflib

            known = re.findall(r"'([^']*)'", mistyped.group(3))
            close = difflib.get_close_matches(mistyped.group(2), known, n=1, cutoff=0.6)
            message = f"unknown command {mistyped.group(2)!r}" + (f"; did you mean {close[0]!r}?" if close else "")
            message += f" (commands: {', '.join(known)})"
        self.exit(ExitCode.USAGE, f"certrotate: error: {message} (see: {self.prog} --help)\n")


def global_options(parser: argparse.ArgumentParser, *, on_command: bool) -> None:
    """The global options; on a command their default is SUPPRESS so a value given first survives."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if on_command else value

    group = parser.add_argument_group("global options (before or after the command)")
    group.add_argument("--region", type=options.region, default=default(None), help="AWS region")
    group.add_argument("--profile", default=default(None), help="named AWS profile")
    group.add_argument(
        "--endpoint-url",
        type=options.endpoint_url,
        default=default(None),
        help="AWS endpoint, e.g. a moto server (default: AWS_ENDPOINT_URL)",
    )
    group.add_argument(
        "--output",
        choices=["table", "json", "text"],
        default=default("table"),
        help="table (default), json, or text (tab-separated, for scripts)",
    )
    group.add_argument(
        "--query",
        type=options.jmespath_query,
        default=default(None),
        metavar="JMESPATH",
        help='select from the result as the AWS CLI does, e.g. "[?days_to_expiry<`30`].name" (implies json)',
    )
    group.add_argument("--no-color", action="store_true", default=default(False), help="no colour")
    group.add_argument("--debug", action="store_true", default=default(False), help="show tracebacks on errors")
    group.add_argument(
        "--connect-timeout",
        type=options.positive_number("--connect-timeout", unit="seconds", maximum=300),
        default=default(DEFAULT_CONNECT_TIMEOUT),
        metavar="SECONDS",
        help=f"per AWS call ({DEFAULT_CONNECT_TIMEOUT:g})",
    )
    group.add_argument(
        "--read-timeout",
        type=options.positive_number("--read-timeout", unit="seconds", maximum=300),
        default=default(DEFAULT_READ_TIMEOUT),
        metavar="SECONDS",
        help=f"per AWS call, one retry ({DEFAULT_READ_TIMEOUT:g})",
    )
