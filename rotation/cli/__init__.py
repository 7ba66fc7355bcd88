"""The ``certrotate`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rotation import __version__
from rotation.errors import CertRotateError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="certrotate", description="Private TLS certificates kept fresh by AWS Secrets Manager rotation."
    )
    parser.add_argument("--version", action="version", version=f"certrotate {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser("demo", help="run the whole product locally: no AWS account, no network")
    demo.add_argument("--workdir", help="keep the demo's files here instead of a temporary directory")
    demo.add_argument(
        "--no-apache", action="store_true", help="serve with a Python TLS server even when apache2 is installed"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``certrotate`` console script.

    Exit codes: 0 success, 1 the operation failed (one clear line on stderr), 2 usage error.
    """
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            from rotation.cli.demo import run_demo

            return run_demo(args.workdir, use_apache=not args.no_apache)
    except CertRotateError as exc:
        if args.debug:
            raise
        print(f"certrotate: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
