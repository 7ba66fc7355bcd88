"""``certrotate rotate``: rotate now, a fresh certificate whatever the renewal policy.

Only certificate secrets with rotation configured are rotated. With ``--wait`` each rotation is
followed until its version is AWSCURRENT, and a failure is noticed within a poll or two from
what the rotation leaves behind: the rotation function's own structured log lines for that
token (its CloudWatch log group, found from DescribeSecret's rotation Lambda ARN) and the
version's staging labels.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rotation.aws import aws_call, redact
from rotation.cli import options
from rotation.cli.inventory import SecretRecord, certificate_secrets
from rotation.cli.output import Output, literal
from rotation.cli.pacing import paced
from rotation.cli.session import AwsContext, InvalidInputError, ProblemsError, UsageError
from rotation.errors import AwsCallError
from rotation.lifecycle.guard import ROTATE_NOW_TAG
from rotation.redaction import shorten

POLL_SECONDS = 2.0
#: A bulk rotation names this many skipped secrets per reason, then counts the rest.
SKIPPED_NAMES = 5
_VERSION = re.compile(r" \(AWSPENDING is on version [^)]*\)")
STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")


@dataclass
class Rotation:
    """One rotate-now and what ``--wait`` learnt of it."""

    secret: str
    arn: str
    token: str
    function: str
    serial_before: str
    status: str = "started"  # started | done | failed | timed-out | would-rotate
    step: str = ""
    error: str = ""
    serial_after: str = ""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("secrets", nargs="*", metavar="SECRET", help="secret names or ARNs")
    parser.add_argument("--all", action="store_true", help="every certificate secret with rotation configured")
    parser.add_argument(
        "--filter",
        type=options.tag_filter,
        action="append",
        default=[],
        metavar="tag:KEY=VALUE",
        help="certificate secrets with this tag (repeatable: all must match)",
    )
    parser.add_argument("--wait", action="store_true", help="follow each rotation to AWSCURRENT")
    parser.add_argument(
        "--timeout",
        type=options.positive_number("--timeout", unit="seconds"),
        default=300.0,
        help="seconds to wait (300)",
    )
    parser.add_argument("--dry-run", action="store_true", help="say what would be rotated; change nothing")
    parser.add_argument("--yes", action="store_true", help="with --all: rotate without asking")


def run(aws: AwsContext, args: argparse.Namespace, out: Output) -> int:
    selected = _select(aws, args, out)
    if args.all and not args.dry_run and not args.yes:
        _confirm(len(selected), out)
    if args.dry_run:
        rotations = [_planned(r, "would-rotate") for r in selected]
        _report(rotations, out, lambda r: f"would rotate {r.secret} with {r.function}")
        return 0
    rotations = paced(selected, lambda record: start(aws, record), _certificate_type, out)  # at the issuers' quotas
    if args.wait:
        for r in rotations:
            out.note(f"rotation {r.token} started for {r.secret}")
        follow(aws, rotations, timeout=args.timeout, out=out)
    _report(rotations, out, _line)
    failed = [r for r in rotations if r.status in ("failed", "timed-out")]
    if failed:
        raise ProblemsError([_line(r) for r in failed])
    return 0


def _confirm(count: int, out: Output) -> None:
    """``rotate --all`` asks first on a terminal; elsewhere it needs ``--yes``.

    Raises:
        UsageError: not confirmed.
    """
    question = f"rotate --all: {count} certificate secret(s) get a new certificate now"
    if sys.stdin.isatty() and sys.stderr.isatty():
        out.stderr.print(literal(f"{question}. Rotate them? [y/N] "), end="")
        if input().strip().lower() in ("y", "yes"):
            return
        raise UsageError("not confirmed: nothing rotated")
    raise UsageError(f"{question}: add --yes to confirm (or --dry-run to list them)")


def _select(aws: AwsContext, args: argparse.Namespace, out: Output) -> list[SecretRecord]:
    if args.secrets and (args.all or args.filter):
        raise UsageError("name secrets, or select them with --all / --filter tag:KEY=VALUE, not both")
    if not args.secrets and not (args.all or args.filter):
        raise UsageError("name one or more secrets, or use --all or --filter tag:KEY=VALUE")
    # One rotation per secret, however often it is named (a name and its ARN are the same secret):
    # two RotateSecret calls would race for AWSPENDING.
    records = list({r.arn: r for r in certificate_secrets(aws, names=args.secrets, tags=args.filter)}.values())
    if args.secrets:
        for record in records:
            refusal = _refusal(record)
            if refusal:
                raise InvalidInputError(f"{record.name}: {refusal}")
        return records
    chosen = []
    skipped: dict[str, list[str]] = {}
    for record in sorted(records, key=lambda r: r.name):  # a stable order, whatever ListSecrets returns
        refusal = record.problem if not record.is_certificate else _refusal(record)
        if refusal:
            reason = _VERSION.sub("", refusal.split(";")[0])  # the same reason whatever the version
            skipped.setdefault(reason, []).append(record.name)
        else:
            chosen.append(record)
    for reason, names in skipped.items():  # one line per reason, not one per secret
        if len(names) == 1:
            out.note(f"skipped {names[0]}: {reason}")
            continue
        more = f" and {len(names) - SKIPPED_NAMES} more" if len(names) > SKIPPED_NAMES else ""
        out.note(f"skipped {len(names)} secrets ({reason}): {', '.join(names[:SKIPPED_NAMES])}{more}")
    if not chosen:
        raise InvalidInputError("no certificate secret with rotation configured matches")
    return chosen


def _certificate_type(record: SecretRecord) -> str:
    return str((record.fields or {}).get("CERTIFICATE_TYPE", ""))


def _refusal(record: SecretRecord) -> str:
    """Why Secrets Manager would not, or should not, rotate this certificate secret now ("" if it may)."""
    if not record.rotation_configured:
        return (
            "rotation is not configured (no rotation function, or rotation disabled); "
            f"turn it on with `aws secretsmanager rotate-secret --secret-id {shlex.quote(record.arn)} "
            "--rotation-lambda-arn ARN` (the central stack's rotation function)"
        )
    if record.stuck_pending:
        # Secrets Manager answers RotateSecret with an error while AWSPENDING sits on another version.
        return (
            f"a rotation is still in progress or has failed (AWSPENDING is on version {record.stuck_pending}, which is "
            "not AWSCURRENT) and Secrets Manager refuses a new one until it finishes; `certrotate status NAME` "
            "shows it, the rotation function's logs say why; to abandon it: "
            "`aws secretsmanager update-secret-version-stage "
            f"--secret-id {shlex.quote(record.arn)} --version-stage AWSPENDING "
            f"--remove-from-version-id {shlex.quote(record.stuck_pending)}`"
        )
    return ""


def _planned(record: SecretRecord, status: str) -> Rotation:
    serial = str((record.fields or {}).get("CERTIFICATE_SERIAL") or "")
    return Rotation(record.name, record.arn, "", record.rotation_lambda_arn, serial, status=status)


def start(aws: AwsContext, record: SecretRecord) -> Rotation:
    """Tag the secret rotate-now with a fresh token, then RotateSecret with that token."""
    sm = aws.client("secretsmanager")
    rotation = _planned(record, "started")
    rotation.token = str(uuid.uuid4())
    with aws_call("secretsmanager", "TagResource"):
        sm.tag_resource(SecretId=record.arn, Tags=[{"Key": ROTATE_NOW_TAG, "Value": rotation.token}])
    with aws_call("secretsmanager", "RotateSecret"):
        sm.rotate_secret(SecretId=record.arn, ClientRequestToken=rotation.token, RotateImmediately=True)
    return rotation


def follow(
    aws: AwsContext,
    rotations: Sequence[Rotation],
    *,
    timeout: float,
    out: Output,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Poll each rotation until it is AWSCURRENT, failed or out of time; a live line meanwhile."""
    sm = aws.client("secretsmanager")
    logs = _FunctionLogs(aws, out)
    started_ms = int(time.time() * 1000) - 60_000
    deadline = time.monotonic() + timeout
    with out.progress() as progress:
        while True:
            for r in rotations:
                if r.status == "started":
                    _poll(sm, logs, r, started_ms)
            progress.update("waiting: " + "; ".join(_progress(r) for r in rotations))
            if all(r.status != "started" for r in rotations):
                return
            if time.monotonic() >= deadline:
                break
            sleep(POLL_SECONDS)
    for r in rotations:
        if r.status == "started":
            r.status = "timed-out"
            r.error = f"did not reach AWSCURRENT within {timeout:g} s"


def _poll(sm: Any, logs: _FunctionLogs, r: Rotation, started_ms: int) -> None:
    with aws_call("secretsmanager", "DescribeSecret"):
        stages = sm.describe_secret(SecretId=r.arn).get("VersionIdsToStages", {})
    labels = stages.get(r.token, [])
    if "AWSCURRENT" in labels:
        r.status, r.step = "done", "finishSecret"
        r.serial_after = current_serial(sm, r.arn)
        if not r.serial_after:
            r.status, r.error = "failed", "it finished but AWSCURRENT holds no certificate"
        return
    for line in logs.lines(r.function, r.token, started_ms):
        r.step = str(line.get("step") or r.step)
        if str(line.get("level", "")).upper() in ("ERROR", "CRITICAL"):
            r.status, r.error = "failed", shorten(redact(str(line.get("message") or "failed")), 1000)
            return
    if "AWSPENDING" not in labels:
        r.status = "failed"
        r.error = "its version is no longer AWSPENDING (another rotation replaced it, or it was cancelled)"
        return
    if r.step in ("", "createSecret") and _pending_has_value(sm, r):
        r.step = r.step or "createSecret"  # createSecret has staged the new certificate


def _pending_has_value(sm: Any, r: Rotation) -> bool:
    try:
        with aws_call("secretsmanager", "GetSecretValue"):
            sm.get_secret_value(SecretId=r.arn, VersionId=r.token, VersionStage="AWSPENDING")
    except AwsCallError as exc:
        if exc.code == "ResourceNotFoundException":
            return False
        raise
    return True


class _FunctionLogs:
    """The rotation function's JSON log lines for one token, from its CloudWatch log group."""

    def __init__(self, aws: AwsContext, out: Output) -> None:
        self._aws = aws
        self._out = out
        self._clients: dict[str, Any] = {}
        self._disabled = False

    def lines(self, function_arn: str, token: str, since_ms: int) -> list[Mapping[str, Any]]:
        parts = function_arn.split(":")
        if self._disabled or len(parts) < 7:
            return []
        region, name = parts[3], parts[6]
        client = self._clients.get(region) or self._clients.setdefault(region, self._aws.client("logs", region))
        try:
            with aws_call("logs", "FilterLogEvents"):
                events = client.filter_log_events(
                    logGroupName=f"/aws/lambda/{name}", startTime=since_ms, filterPattern=f'"{token}"'
                ).get("events", [])
        except AwsCallError as exc:
            if exc.code == "ResourceNotFoundException":
                return []  # the function has not logged yet
            self._disabled = True
            self._out.note(f"cannot read the rotation function's logs ({exc.code}): following version stages only")
            return []
        found: list[Mapping[str, Any]] = []
        for event in events:
            try:
                line = json.loads(event.get("message") or "")
            except ValueError:
                continue
            if isinstance(line, dict) and line.get("token") == token:
                found.append(line)
        return found


#: How far back ``status NAME`` looks for a stuck rotation's failure in the function's logs.
FAILURE_LOOKBACK_MS = 14 * 24 * 3600 * 1000


def failure_of(aws: AwsContext, out: Output, function_arn: str, token: str) -> str:
    """Why the rotation ``token`` failed: its last error line in the function's logs ("step: message"), or ""."""
    since = int(time.time() * 1000) - FAILURE_LOOKBACK_MS
    errors = [
        line
        for line in _FunctionLogs(aws, out).lines(function_arn, token, since)
        if str(line.get("level", "")).upper() in ("ERROR", "CRITICAL")
    ]
    if not errors:
        return ""
    last = errors[-1]
    message = shorten(redact(str(last.get("message") or "failed")), 1000)
    return f"failed at {last.get('step') or 'an unknown step'}: {message}"


def current_serial(sm: Any, secret_id: str) -> str:
    with aws_call("secretsmanager", "GetSecretValue"):
        value = sm.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT").get("SecretString") or "{}"
    try:
        return str(json.loads(value).get("CERTIFICATE_SERIAL") or "")
    except (ValueError, AttributeError, RecursionError):
        return ""


def _progress(r: Rotation) -> str:
    if r.status == "started":
        step = r.step or "createSecret"
        index = STEPS.index(step) + 1 if step in STEPS else 1
        return f"{r.secret} at {step} ({index}/4)"
    return f"{r.secret} {r.status}"


def _line(r: Rotation) -> str:
    if r.status == "done":
        return f"{r.secret}: serial {r.serial_before or '(none)'} -> {r.serial_after}"
    if r.status == "failed":
        return f"{r.secret}: rotation {r.token} failed at {r.step or 'an unknown step'}: {r.error}"
    if r.status == "timed-out":
        at = f" (last seen at {r.step})" if r.step else ""
        return f"{r.secret}: rotation {r.token} {r.error}{at}; see the rotation function's logs"
    return f"{r.secret}: rotation {r.token} started"


def _report(rotations: Sequence[Rotation], out: Output, line: Callable[[Rotation], str]) -> None:
    if out.json_mode:
        out.emit_json([asdict(r) for r in rotations])
        return
    for r in rotations:
        if r.status not in ("failed", "timed-out"):  # failures are the error lines
            out.say(line(r))
