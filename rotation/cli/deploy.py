"""``certrotate deploy``: run RunUpdateTLS on instances, in this or another account and region.

While it waits, a live line counts the instances done, failed and pending. A command that
reaches no instance (SSM reports it finished with no target) fails at once instead of waiting.
"""

from __future__ import annotations

import argparse
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from rich.table import Table

from rotation.aws import aws_call
from rotation.cli import options
from rotation.cli.output import Output, Progress, literal
from rotation.cli.session import AwsContext, InvalidInputError, UsageError
from rotation.errors import AwsCallError, CertRotateError

_INSTANCE = re.compile(r"^(i|mi)-[0-9a-f]{8,17}$")
_DONE = {
    "Success",
    "Failed",
    "Cancelled",
    "TimedOut",
    "Undeliverable",
    "Terminated",
    "InvalidPlatform",
    "AccessDenied",
    "DeliveryTimedOut",
    "ExecutionTimedOut",
}
_SERIAL = re.compile(r"serial=([0-9A-Fa-f]+)")
#: An invocation SSM never sent: the command's failures passed MaxErrors (StatusDetails Terminated, Status Cancelled).
NOT_SENT = "not sent: the failures passed --max-errors, so SSM sent the command to no further instance"


@dataclass
class InstanceResult:
    instance_id: str
    status: str
    served_serial: str
    detail: str
    sent: bool = True  # False: SSM never sent the command here (its failures passed MaxErrors)


class DeployFailedError(CertRotateError):
    """One or more instances did not install the certificate."""

    def __init__(self, message: str, results: list[InstanceResult]) -> None:
        super().__init__(message)
        self.results = results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("secret", help="secret name or ARN (sent as its full ARN: hosts may be in other accounts)")
    parser.add_argument(
        "--targets",
        action="append",
        required=True,
        help="instance ids (i-0123456789abcdef0,i-...) or one tag selector tag:Key=Value",
    )
    parser.add_argument("--role-arn", help="assume this role to run the command in another account")
    parser.add_argument("--document", default="RunUpdateTLS")
    parser.add_argument("--max-concurrency", type=options.max_concurrency, default="10", help="instances or %% (10)")
    parser.add_argument("--max-errors", type=options.max_errors, default="0", help="instances or %% (0)")
    parser.add_argument(
        "--timeout",
        type=options.positive_number("--timeout", unit="seconds"),
        default=900.0,
        help="seconds to wait for the instances (900)",
    )
    parser.add_argument("--dry-run", action="store_true", help="say what would be sent; send nothing")
    options.json_alias(parser)


def run(aws: AwsContext, args: argparse.Namespace, out: Output) -> int:
    targets = targets_from(args.targets)
    secret_arn = deployable(aws, args.secret)
    if args.dry_run:
        selectors = [f"{t['Key']}={','.join(t['Values'])}" for t in targets.get("Targets", [])]
        where = ", ".join(targets.get("InstanceIds") or selectors)
        account = f" in the account of {args.role_arn}" if args.role_arn else ""
        plan = {"document": args.document, "secret_arn": secret_arn, "targets": targets, "role_arn": args.role_arn}
        if out.json_mode:
            out.emit_json({"dry_run": True, **plan})
        else:
            out.say(f"would run {args.document}{account} on {where} with SecretArn={secret_arn}")
        return 0
    try:
        results = deploy(
            aws,
            secret_arn,
            targets,
            document=args.document,
            role_arn=args.role_arn,
            max_concurrency=args.max_concurrency,
            max_errors=args.max_errors,
            timeout=args.timeout,
            out=out,
        )
        failure: DeployFailedError | None = None
    except DeployFailedError as exc:
        results, failure = exc.results, exc
    if out.json_mode:
        out.emit_json([asdict(r) for r in results])
    elif results:
        out.say(f"deploy {secret_arn}")  # a line of its own: a table title would split the ARN mid-word
        table = Table()
        for column in ("instance", "status", "served serial", "detail"):
            table.add_column(literal(column), overflow="fold")
        for r in results:
            table.add_row(
                literal(r.instance_id), literal(r.status), literal(r.served_serial or "not reported"), literal(r.detail)
            )
        out.show(table)
    if failure is not None:
        raise failure
    return 0


def deployable(aws: AwsContext, secret: str) -> str:
    """The full ARN of a certificate secret with a certificate to install, as ``rotate`` checks first.

    Raises:
        InvalidInputError: not a certificate secret (plain text, binary, no CERTIFICATE_TYPE), or no
            certificate yet (its first rotation has not finished): the installer would only fail.
    """
    from rotation.cli.inventory import certificate_secrets

    (record,) = certificate_secrets(aws, names=[secret])
    if not (record.fields or {}).get("CERTIFICATE_PEM"):
        raise InvalidInputError(
            f"{record.name} has no certificate yet (its first rotation has not finished, or rotation is off): "
            f"nothing to install; `certrotate status {shlex.quote(record.name)}` shows why"
        )
    return record.arn


def targets_from(values: list[str]) -> dict[str, Any]:
    """``--targets i-1,i-2`` or ``--targets tag:Key=Value`` → SendCommand's InstanceIds or Targets."""
    items = [v for raw in values for v in options.comma_list(raw)]
    if items and all(_INSTANCE.match(i) for i in items):
        return {"InstanceIds": items}
    if len(items) == 1 and items[0].startswith("tag:") and "=" in items[0]:
        key, _, value = items[0].partition("=")
        return {"Targets": [{"Key": key, "Values": value.split("|")}]}
    raise UsageError(
        f"--targets {','.join(items)!r}: expected instance ids (i-0123456789abcdef0,...) or one tag selector "
        "tag:Key=Value"
    )


def deploy(
    aws: AwsContext,
    secret_arn: str,
    targets: dict[str, Any],
    *,
    document: str,
    role_arn: str | None,
    max_concurrency: str,
    max_errors: str,
    timeout: float,
    out: Output,
    sleep: Callable[[float], None] = time.sleep,
    show_progress: bool = True,
) -> list[InstanceResult]:
    """Send the install document, wait for every instance, return their results.

    ``show_progress``: the live line (off a terminal, a line each time the counts change); a caller
    that reports each event itself (``revoke``'s timeline) turns it off.

    Raises:
        DeployFailedError: an instance failed (the results are in ``.results``).
    """
    session = aws.assumed(role_arn) if role_arn else None
    ssm = aws.client("ssm", session=session)
    with aws_call("ssm", "SendCommand"):
        command = ssm.send_command(
            DocumentName=document,
            Parameters={"SecretArn": [secret_arn]},
            MaxConcurrency=max_concurrency,
            MaxErrors=max_errors,
            Comment="certrotate deploy",
            **targets,
        )["Command"]
    command_id = command["CommandId"]
    out.note(f"command {command_id} sent ({document})")
    with out.progress(quiet=not show_progress) as progress:
        results = _wait(ssm, command_id, command, time.monotonic() + timeout, progress, sleep)
    ordered = sorted(results.values(), key=lambda r: r.instance_id)
    failed = [r for r in ordered if r.status != "Success"]
    if failed or not ordered:
        unsent = sum(1 for r in failed if not r.sent)
        never = f" ({unsent} never sent: the failures passed --max-errors {max_errors})" if unsent else ""
        raise DeployFailedError(
            f"{len(failed)} of {len(ordered)} instance(s) did not succeed{never}"
            if ordered
            else "the command reached no instance",
            ordered,
        )
    return ordered


def _wait(
    ssm: Any,
    command_id: str,
    command: dict[str, Any],
    deadline: float,
    progress: Progress,
    sleep: Callable[[float], None],
) -> dict[str, InstanceResult]:
    results: dict[str, InstanceResult] = {}
    while True:
        instances, command_status = _instances(ssm, command_id, command)
        for instance_id in instances:
            if instance_id in results and results[instance_id].status in _DONE:
                continue
            results[instance_id] = _invocation(ssm, command_id, instance_id)
        done = [r for r in results.values() if r.status in _DONE]
        failed = [r for r in done if r.status != "Success"]
        progress.update(
            f"{command_id}: {len(done) - len(failed)} done, {len(failed)} failed, "
            f"{len(results) - len(done)} pending of {len(results)} instance(s) (command {command_status or 'sent'})"
        )
        if results and len(done) == len(results):
            return results
        if not results and command_status in _DONE:
            return results  # SSM finished the command without a single target
        if time.monotonic() >= deadline:
            return results
        sleep(2)


def _instances(ssm: Any, command_id: str, command: dict[str, Any]) -> tuple[list[str], str]:
    """The command's instances so far and its own status (ListCommands)."""
    with aws_call("ssm", "ListCommands"):
        listed = ssm.list_commands(CommandId=command_id)["Commands"]
    status = str(listed[0].get("Status", "")) if listed else ""
    try:
        with aws_call("ssm", "ListCommandInvocations"):
            pages = ssm.get_paginator("list_command_invocations").paginate(CommandId=command_id)
            return [i["InstanceId"] for page in pages for i in page.get("CommandInvocations", [])], status
    except AwsCallError as exc:
        # moto lacks the action and answers an HTML 500 (code "500"): fall back as for "not implemented".
        if exc.code not in ("InvalidAction", "NotImplemented", "UnknownOperationException", "500"):
            raise
    # Without ListCommandInvocations (moto), ListCommands' instance ids are the next best source.
    found = (listed[0].get("InstanceIds") if listed else None) or command.get("InstanceIds") or []
    return list(found), status


def _invocation(ssm: Any, command_id: str, instance_id: str) -> InstanceResult:
    try:
        with aws_call("ssm", "GetCommandInvocation"):
            response = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
    except AwsCallError as exc:
        if exc.code == "InvocationDoesNotExist":
            return InstanceResult(instance_id, "Pending", "", "")
        raise
    if response.get("StatusDetails") == "Terminated":
        return InstanceResult(instance_id, str(response.get("Status", "")), "", NOT_SENT, sent=False)
    output = str(response.get("StandardOutputContent") or "")
    serials = _SERIAL.findall(output)
    detail = str(response.get("StandardErrorContent") or "").strip().splitlines()
    return InstanceResult(
        instance_id,
        str(response.get("Status", "")),
        serials[-1] if serials else "",
        detail[-1] if detail else str(response.get("StatusDetails", "")),
    )
