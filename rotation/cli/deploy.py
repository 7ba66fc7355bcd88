"""``certrotate deploy``: run RunUpdateTLS on instances, in this or another account and region."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rotation.aws import aws_call
from rotation.cli.session import AwsContext, UsageError
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


@dataclass
class InstanceResult:
    instance_id: str
    status: str
    served_serial: str
    detail: str


class DeployFailedError(CertRotateError):
    """One or more instances did not install the certificate."""

    def __init__(self, message: str, results: list[InstanceResult]) -> None:
        super().__init__(message)
        self.results = results


def targets_from(values: list[str]) -> dict[str, Any]:
    """``--targets i-1,i-2`` or ``--targets tag:Key=Value`` → SendCommand's InstanceIds or Targets."""
    items = [v for raw in values for v in raw.split(",") if v]
    if items and all(_INSTANCE.match(i) for i in items):
        return {"InstanceIds": items}
    if len(items) == 1 and items[0].startswith("tag:") and "=" in items[0]:
        key, _, value = items[0].partition("=")
        return {"Targets": [{"Key": key, "Values": value.split("|")}]}
    raise UsageError("--targets: instance ids (i-0123456789abcdef0,...) or one tag selector tag:Key=Value")


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
    say: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> list[InstanceResult]:
    """Send the install document, wait for every instance, return their results.

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
    say(f"command {command_id} sent ({document})")
    deadline = time.monotonic() + timeout
    results: dict[str, InstanceResult] = {}
    while True:
        for instance_id in _instances(ssm, command_id, command):
            if instance_id in results and results[instance_id].status in _DONE:
                continue
            results[instance_id] = _invocation(ssm, command_id, instance_id)
        if results and all(r.status in _DONE for r in results.values()):
            break
        if time.monotonic() >= deadline:
            break
        sleep(2)
    ordered = sorted(results.values(), key=lambda r: r.instance_id)
    failed = [r for r in ordered if r.status != "Success"]
    if failed or not ordered:
        raise DeployFailedError(
            f"{len(failed)} of {len(ordered)} instance(s) did not succeed"
            if ordered
            else "the command reached no instance",
            ordered,
        )
    return ordered


def _instances(ssm: Any, command_id: str, command: dict[str, Any]) -> list[str]:
    try:
        with aws_call("ssm", "ListCommandInvocations"):
            pages = ssm.get_paginator("list_command_invocations").paginate(CommandId=command_id)
            return [i["InstanceId"] for page in pages for i in page.get("CommandInvocations", [])]
    except AwsCallError as exc:
        # moto lacks the action and answers an HTML 500 (code "500"): fall back as for "not implemented".
        if exc.code not in ("InvalidAction", "NotImplemented", "UnknownOperationException", "500"):
            raise
    # Without ListCommandInvocations (moto), ListCommands' instance ids are the next best source.
    with aws_call("ssm", "ListCommands"):
        listed = ssm.list_commands(CommandId=command_id)["Commands"]
    return list(listed[0].get("InstanceIds") or command.get("InstanceIds") or [])


def _invocation(ssm: Any, command_id: str, instance_id: str) -> InstanceResult:
    try:
        with aws_call("ssm", "GetCommandInvocation"):
            response = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
    except AwsCallError as exc:
        if exc.code == "InvocationDoesNotExist":
            return InstanceResult(instance_id, "Pending", "", "")
        raise
    output = str(response.get("StandardOutputContent") or "")
    serials = _SERIAL.findall(output)
    detail = str(response.get("StandardErrorContent") or "").strip().splitlines()
    return InstanceResult(
        instance_id,
        str(response.get("Status", "")),
        serials[-1] if serials else "",
        detail[-1] if detail else str(response.get("StatusDetails", "")),
    )
