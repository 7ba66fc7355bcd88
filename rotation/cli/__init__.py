"""The ``certrotate`` command line.

Global options (``--region``, ``--profile``, ``--endpoint-url``, ``--debug``, ``--output``,
``--no-color``, ``--connect-timeout``, ``--read-timeout``) go before or after the command, as
with the AWS CLI. Errors are one line on stderr (``--debug`` for tracebacks); key material is
never printed. Exit codes are :class:`ExitCode`, the table in the README.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from rotation import __version__
from rotation.cli import examples
from rotation.cli.hints import CREDENTIALS_MISSING
from rotation.cli.parser import ExitCode, Parser, global_options
from rotation.errors import AwsCallError, CertRotateError, SpecError

__all__ = ["ExitCode", "build_parser", "exit_code", "main"]

_UNREACHABLE = {
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ConnectionClosedError",
    "ProxyConnectionError",
    "SSLError",
    "ProfileNotFound",
    "NoRegionError",
    *CREDENTIALS_MISSING,
}
_NOT_FOUND = {
    "ResourceNotFoundException",
    "InvalidParameterException",
    "ValidationException",
    "InvalidRequestException",
    "InvalidDocument",
    "InvalidInstanceId",
}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="certrotate", description="Private TLS certificates kept fresh by AWS Secrets Manager rotation."
    )
    parser.add_argument("--version", action="version", version=f"certrotate {__version__}")
    global_options(parser, on_command=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=text,
            description=text,
            epilog=examples.epilog(name),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        global_options(sub, on_command=True)
        return sub

    from rotation.cli import (
        ca_rollover,
        create_secret,
        deploy,
        doctor,
        hosts,
        policy,
        revoke,
        rotate,
        sandbox,
        status,
        validate,
    )
    from rotation.cli.local_servers import LOCAL_SERVERS

    demo = command("demo", "run the whole product locally: no AWS account, no network")
    demo.add_argument("--workdir", help="keep the demo's files here instead of a temporary directory")
    demo.add_argument(
        "--no-apache", action="store_true", help="serve with a Python TLS server even when the server is installed"
    )
    demo.add_argument(
        "--server",
        choices=tuple(LOCAL_SERVERS),
        default="apache",
        help="the real server the documents feed (Debian's, when installed; default apache)",
    )
    sandbox.add_arguments(
        command(
            "sandbox", "a local AWS account (moto) with a CA, the rotation function and documents: try every command"
        )
    )
    status.add_arguments(command("status", "certificate secrets, their expiry and rotation health"))
    rotate.add_arguments(command("rotate", "rotate now: a fresh certificate whatever the renewal policy"))
    deploy.add_arguments(command("deploy", "install the certificate on instances with the RunUpdateTLS document"))
    revoke.add_arguments(
        command("revoke", "compromised key: rotate, install everywhere, wait for every host, revoke (KEY_COMPROMISE)")
    )
    hosts.add_arguments(command("hosts", "which instances serve each secret's current certificate (SSM inventory)"))
    validate.add_arguments(command("validate", "check a certificate specification (a JSON file or a secret)"))
    create_secret.add_arguments(command("create-secret", "create a certificate secret, validated, with rotation"))
    doctor.add_arguments(command("doctor", "check a deployment from where you stand: one line per check"))
    policy.add_arguments(command("policy", "the issuance policy: validate a document before storing it"))
    ca_rollover.add_arguments(
        command("ca-rollover", "move the fleet to a new Private CA: bundles, hosts, leaves, in phases the fleet gates")
    )

    package = command("package", "build the Lambda zip for arm64 or x86_64 (binary wheels, reproducible)")
    package.add_argument("--arch", choices=["arm64", "x86_64"], default="arm64")
    package.add_argument("--python", default="3.12", help="target Lambda Python version (3.12)")
    package.add_argument("--dist-dir", default="dist", help="output directory (dist)")
    package.add_argument(
        "--compile-with",
        metavar="PYTHON",
        help="interpreter of the target version that compiles the zip's bytecode (default: looked for)",
    )

    completion = command("completion", 'print a shell completion script: eval "$(certrotate completion bash)"')
    completion.add_argument("shell", choices=["bash", "zsh"])
    help_command = command("help", "show a command's help (its options and examples)")
    help_command.add_argument("topic", nargs="?", metavar="COMMAND", help="the command (default: all commands)")
    _complete_secret_names(commands.choices.values())
    return parser


#: What ``certrotate completion`` offers for a secret argument: the certificate secrets' names,
#: read when the user presses Tab (one bounded ``status`` call with the shell's AWS settings).
SECRET_NAMES_COMMAND = "certrotate status --output text --query '[].name' 2>/dev/null"


def _complete_secret_names(subparsers: Any) -> None:
    import shtab

    for sub in subparsers:
        for action in sub._actions:
            if action.dest in ("names", "secrets", "secret") and not action.option_strings:
                action.complete = shtab.cmd(SECRET_NAMES_COMMAND)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``certrotate`` console script.

    Ctrl-C at any moment (parsing, importing a command's modules) is the one line and exit 130.
    A shell starts ``certrotate … &`` with SIGINT ignored, and Python then never installs its
    handler: restore it, so ``kill -INT`` stops a background run as it stops a foreground one.
    """
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code = _main(argv)
        sys.stdout.flush()  # inside the try: a reader gone shows here, not in the interpreter's exit
        return code
    except BrokenPipeError:
        return _reader_gone()
    except KeyboardInterrupt:
        sys.stderr.write("certrotate: interrupted\n")
        return _interrupted()


def _reader_gone() -> int:
    """Exit :attr:`ExitCode.READER_GONE` quietly: stdout now goes nowhere, so nothing more fails on it."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return int(ExitCode.READER_GONE)


def _interrupted() -> int:
    """Exit 130 now. A parallel read still blocked on an endpoint that never answers would
    otherwise hold the interpreter's exit (it joins every worker thread) for its read timeout."""
    import threading

    if threading.active_count() > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(ExitCode.INTERRUPTED))
    return int(ExitCode.INTERRUPTED)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from rotation.cli.output import Output, error_line

    out = Output(json_mode=args.output == "json", color=not args.no_color, text=args.output == "text", query=args.query)
    import signal

    # From here Ctrl-C is KeyboardInterrupt (rotation.console ended the process at once until now):
    # a command's cleanup runs, then the one line and exit 130 below.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return int(_run(parser, args, out))
    except CertRotateError as exc:
        _traceback(args, out)
        for problem in getattr(exc, "problems", None) or [exc]:
            hint = _next_step(problem, args)
            out.note(f"certrotate: error: {error_line(problem)}" + (f"; {hint}" if hint else ""))
        return int(exit_code(exc))
    except KeyboardInterrupt:
        out.note("certrotate: interrupted")
        return _interrupted()
    except BrokenPipeError:
        raise  # main(): the reader of stdout is gone, not an error of the command
    except Exception as exc:  # botocore/boto3 errors outside an AWS call (profile, credentials, region)
        _traceback(args, out)
        from botocore.exceptions import BotoCoreError

        hint = ""
        if type(exc).__name__ == "ProfileNotFound":
            hint = "; next: `aws configure list-profiles` lists them, `aws configure --profile NAME` creates one"
        out.note(f"certrotate: error: {type(exc).__name__}: {error_line(exc)}{hint}")
        return int(ExitCode.UNREACHABLE if isinstance(exc, BotoCoreError) else ExitCode.FAILED)


def _next_step(problem: object, args: argparse.Namespace) -> str:
    """The hint for an AWS error: where the call went (region, account) and the fix (see ``hints``)."""
    if not isinstance(problem, AwsCallError) or getattr(args, "command", "") in ("demo", "sandbox", "package"):
        return ""
    from rotation.cli.hints import Where, next_step
    from rotation.cli.session import AwsContext

    try:
        aws = AwsContext.from_args(args)
        region = aws.region_name
    except Exception:
        return ""
    account = None
    if problem.code in ("ResourceNotFoundException", "AccessDeniedException"):
        try:  # one bounded call: the credentials worked for the call that failed
            account = str(aws.client("sts").get_caller_identity()["Account"])
        except Exception:
            account = None
    ledger_table = str(getattr(args, "ledger_table", "") or "")
    given = [getattr(args, key, None) for key in ("secret", "target", "name", "names", "secrets")]
    values = [v for g in given for v in (g if isinstance(g, list) else [g]) if isinstance(v, str)]
    requested = tuple(v for v in values if v.startswith("arn:"))
    return next_step(problem, Where(region, args.profile, aws.endpoint_url, account, ledger_table, requested))


def _traceback(args: argparse.Namespace, out: Any) -> None:
    """With ``--debug``: the traceback of the error being handled (redacted), before its usual line and code."""
    if getattr(args, "debug", False):
        import traceback

        out.note(traceback.format_exc().rstrip())


def exit_code(exc: CertRotateError) -> ExitCode:
    from rotation.cli.session import ConfigurationError, InvalidInputError, InvalidSpecError, UsageError

    if isinstance(exc, UsageError):
        return ExitCode.USAGE
    from rotation.cli.crl_published import NotPublishedError

    if isinstance(exc, NotPublishedError):
        return ExitCode.NOT_PUBLISHED
    if isinstance(exc, ConfigurationError):
        return ExitCode.UNREACHABLE
    if isinstance(exc, (SpecError, InvalidInputError, InvalidSpecError)):
        return ExitCode.INVALID
    if isinstance(exc, AwsCallError):
        from rotation.cli.hints import NOT_AN_AWS_ENDPOINT

        if exc.code in _UNREACHABLE or exc.code in NOT_AN_AWS_ENDPOINT:
            return ExitCode.UNREACHABLE
        if exc.code in _NOT_FOUND:
            return ExitCode.INVALID
    return ExitCode.FAILED


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, out: Any) -> int:
    if args.command == "help":
        parser.parse_args([args.topic, "--help"] if args.topic else ["--help"])  # prints, exits 0 (or 2: unknown)
    if args.command == "completion":
        import shtab

        out.stdout.file.write(shtab.complete(parser, shell=args.shell))
        return ExitCode.OK
    if args.command == "demo":
        from rotation.cli.demo import run_demo

        return run_demo(args.workdir, use_apache=not args.no_apache, region=args.region, out=out, server=args.server)
    if args.command == "sandbox":
        from rotation.cli.sandbox import run as run_sandbox

        return run_sandbox(args, out)
    if args.command == "package":
        from pathlib import Path

        from rotation.build.lambda_zip import build

        built = build(args.arch, args.python, Path(args.dist_dir), compile_with=args.compile_with)
        if out.json_mode:
            out.emit_json(
                {"path": str(built.path), "size": built.size, "sha256": built.sha256, "bytecode": built.bytecode}
            )
        else:
            out.say(f"{built.path}: {built.size / 1e6:.1f} MB, sha256 {built.sha256}")
            if built.bytecode:
                out.say(f"bytecode compiled by Python {built.bytecode}")
            else:
                out.say(
                    f"no bytecode: no Python {args.python} found here to compile it (--compile-with PYTHON); "
                    "every cold start will compile the sources"
                )
        return ExitCode.OK
    from rotation.cli.session import AwsContext

    aws = AwsContext.from_args(args)
    runner: Callable[[Any, argparse.Namespace, Any], int] = _runner(args.command)
    return runner(aws, args, out)


def _runner(name: str) -> Callable[[Any, argparse.Namespace, Any], int]:
    import importlib

    module = importlib.import_module(f"rotation.cli.{name.replace('-', '_')}")
    run: Callable[[Any, argparse.Namespace, Any], int] = module.run
    return run


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
