"""The ``certrotate`` command line.

Exit codes: 0 success; 1 the operation failed (AWS error, rotation not finished, an instance
failed); 2 usage error; 3 invalid input (bad specification, unknown secret, bad flag value);
4 AWS unreachable or no credentials. Errors are one line on stderr (``--debug`` for tracebacks);
key material is never printed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rotation import __version__
from rotation.cli.session import AwsContext, UsageError, add_aws_options
from rotation.errors import AwsCallError, CertRotateError, SpecError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INVALID, EXIT_UNREACHABLE = 0, 1, 2, 3, 4
_UNREACHABLE = {
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "NoCredentialsError",
    "ConnectionClosedError",
    "ProfileNotFound",
    "NoRegionError",
    "PartialCredentialsError",
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
    parser = argparse.ArgumentParser(
        prog="certrotate", description="Private TLS certificates kept fresh by AWS Secrets Manager rotation."
    )
    parser.add_argument("--version", action="version", version=f"certrotate {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str, *, aws: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("--debug", action="store_true", help="show tracebacks on errors")
        if aws:
            add_aws_options(sub)
        return sub

    demo = command("demo", "run the whole product locally: no AWS account, no network", aws=False)
    demo.add_argument("--workdir", help="keep the demo's files here instead of a temporary directory")
    demo.add_argument(
        "--no-apache", action="store_true", help="serve with a Python TLS server even when apache2 is installed"
    )

    status = command("status", "certificate secrets, their expiry and rotation health")
    status.add_argument("--prefix", help="only secrets whose name starts with this")
    status.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="only secrets with this tag")
    status.add_argument("--window-days", type=float, default=30, help="flag certificates expiring within (30)")
    status.add_argument("--json", action="store_true", help="JSON for scripts")

    rotate = command("rotate", "rotate now: a fresh certificate whatever the renewal policy")
    rotate.add_argument("secret", help="secret name or ARN")
    rotate.add_argument("--wait", action="store_true", help="follow the rotation to AWSCURRENT")
    rotate.add_argument("--timeout", type=float, default=300, help="seconds to wait (300)")

    deploy = command("deploy", "install the certificate on instances with the RunUpdateTLS document")
    deploy.add_argument("secret", help="secret ARN (full ARN: hosts may be in other accounts)")
    deploy.add_argument(
        "--targets", action="append", required=True, help="instance ids (i-1,i-2) or a tag selector tag:Key=Value"
    )
    deploy.add_argument("--role-arn", help="assume this role to run the command in another account")
    deploy.add_argument("--document", default="RunUpdateTLS")
    deploy.add_argument("--max-concurrency", default="10")
    deploy.add_argument("--max-errors", default="0")
    deploy.add_argument("--timeout", type=float, default=900, help="seconds to wait for the instances (900)")
    deploy.add_argument("--json", action="store_true")

    validate = command("validate", "check a certificate specification (a JSON file or a secret)")
    validate.add_argument("target", help="a JSON file, or a secret name/ARN")
    validate.add_argument("--offline", action="store_true", help="skip the checks against the CA")

    package = command("package", "build the Lambda zip for arm64 or x86_64 (binary wheels, reproducible)", aws=False)
    package.add_argument("--arch", choices=["arm64", "x86_64"], default="arm64")
    package.add_argument("--python", default="3.12", help="target Lambda Python version (3.12)")
    package.add_argument("--output", default="dist", help="output directory (dist)")

    create = command("create-secret", "create a certificate secret, validated, with rotation")
    from rotation.cli.create_secret import add_arguments

    add_arguments(create)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``certrotate`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except CertRotateError as exc:
        if args.debug:
            raise
        for problem in getattr(exc, "problems", None) or [exc]:
            print(f"certrotate: error: {problem}", file=sys.stderr)
        return _exit_code(exc)
    except KeyboardInterrupt:
        return EXIT_FAILED
    except Exception as exc:  # botocore/boto3 errors outside an AWS call (profile, credentials, region)
        if args.debug:
            raise
        from botocore.exceptions import BotoCoreError

        print(f"certrotate: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE if isinstance(exc, BotoCoreError) else EXIT_FAILED


def _exit_code(exc: CertRotateError) -> int:
    from rotation.cli.validate import InvalidSpecError

    if isinstance(exc, (SpecError, UsageError, InvalidSpecError)):
        return EXIT_INVALID
    if isinstance(exc, AwsCallError):
        if exc.code in _UNREACHABLE:
            return EXIT_UNREACHABLE
        if exc.code in _NOT_FOUND:
            return EXIT_INVALID
    return EXIT_FAILED


def _say(text: str) -> None:
    print(text)


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from rotation.cli.demo import run_demo

        return run_demo(args.workdir, use_apache=not args.no_apache)
    if args.command == "package":
        from pathlib import Path

        from rotation.build.lambda_zip import build

        built = build(args.arch, args.python, Path(args.output))
        _say(f"{built.path}: {built.size / 1e6:.1f} MB, sha256 {built.sha256}")
        return EXIT_OK
    aws = AwsContext.from_args(args)
    if args.command == "status":
        from rotation.cli.create_secret import parse_tags
        from rotation.cli.status import collect, render

        tags = {t["Key"]: t["Value"] for t in parse_tags(args.tag)}
        rows = collect(aws, prefix=args.prefix, tags=tags, window_days=args.window_days)
        text = render(rows, args.json)
        if text is not None:
            print(text)
        return EXIT_OK
    if args.command == "rotate":
        from rotation.cli.rotate import rotate_now

        rotate_now(aws, args.secret, wait=args.wait, timeout=args.timeout, say=_say)
        return EXIT_OK
    if args.command == "validate":
        from rotation.cli.validate import load_target, validate

        fields = load_target(aws, args.target)
        online = not args.offline and aws.has_credentials()
        if not online:
            _say("checking offline: the CA is not checked" + ("" if args.offline else " (no AWS credentials)"))
        validate(fields, aws if online else None, _say)
        return EXIT_OK
    if args.command == "create-secret":
        from rotation.cli.create_secret import create_secret

        create_secret(aws, args, _say)
        return EXIT_OK
    if args.command == "deploy":
        return _deploy(aws, args)
    return EXIT_USAGE


def _deploy(aws: AwsContext, args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from rotation.cli.deploy import DeployFailedError, deploy, targets_from

    try:
        results = deploy(
            aws,
            args.secret,
            targets_from(args.targets),
            document=args.document,
            role_arn=args.role_arn,
            max_concurrency=args.max_concurrency,
            max_errors=args.max_errors,
            timeout=args.timeout,
            say=_say,
        )
        failure: DeployFailedError | None = None
    except DeployFailedError as exc:
        results, failure = exc.results, exc
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"deploy {args.secret}")
        for column in ("instance", "status", "served serial", "detail"):
            table.add_column(column)
        for r in results:
            table.add_row(r.instance_id, r.status, r.served_serial or "-", r.detail)
        Console(highlight=False).print(table)
    if failure is not None:
        raise failure
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
