"""``certrotate revoke NAME --compromised``: replace a compromised certificate everywhere, then revoke it.

The steps, each a line of the timeline: find the compromised certificate (the secret's AWSCURRENT)
in the issuance ledger (only a certificate this secret's rotations issued is revoked); with
``--immediately`` revoke it first; rotate now with a fresh key and wait (``rotate``'s code); send
the install document to the instances the secret's association targets (tag ``certrotate:secret``
= the secret's name, set by the account's admin; ``deploy``'s code; workload accounts install
through their own RotationSucceeded rule); wait until each of them, and each host whose record
reports the compromised serial, shows the new serial and no longer the old one, or the timeout
passes (per host); then revoke with reason KEY_COMPROMISE and wait until the serial is in the CA's
published CRL (``rotation.cli.crl_published``: exit 5 past ``--publish-timeout``). Records only watch progress: a host
record (which any root of that account can write) never chooses where the command goes. A host
that did not move keeps the certificate valid (unless ``--immediately``) and makes the command
exit 1.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rotation.aws import aws_call
from rotation.cli import hosts, options
from rotation.cli.deploy import DeployFailedError, deploy
from rotation.cli.inventory import certificate_secrets
from rotation.cli.output import Output
from rotation.cli.rotate import _refusal, follow, start
from rotation.cli.session import AwsContext, InvalidInputError, ProblemsError, UsageError
from rotation.fleet.inventory import read_records
from rotation.fleet.ledger import LEDGER_TABLE_ENV, Ledger
from rotation.fleet.revocation import IssuedCertificate, RevocationReason
from rotation.fleet.view import INSTANCE_TAG, HostReport, normalize_serial, serves
from rotation.issuance.spec import parse_spec

POLL_SECONDS = 2.0


@dataclass
class Timeline:
    """What happened and when, in seconds from the start of the command."""

    out: Output
    started: float = field(default_factory=time.monotonic)
    events: list[dict[str, Any]] = field(default_factory=list)

    def add(self, event: str, detail: str) -> None:
        seconds = round(time.monotonic() - self.started, 1)
        self.events.append({"seconds": seconds, "event": event, "detail": detail})
        if not self.out.json_mode:
            self.out.say(f"+{seconds:6.1f}s  {event:<10} {detail}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("secret", metavar="NAME", help="certificate secret name or ARN")
    parser.add_argument("--compromised", action="store_true", help="its current key is compromised (required)")
    parser.add_argument(
        "--immediately", action="store_true", help="revoke before replacing it (hosts serve a revoked certificate)"
    )
    parser.add_argument("--dry-run", action="store_true", help="show the plan; change nothing")
    parser.add_argument(
        "--timeout",
        type=options.positive_number("--timeout", unit="seconds"),
        default=900.0,
        help="seconds to wait for the rotation, then for the hosts (900 each)",
    )
    parser.add_argument(
        "--role-arn",
        type=hosts.role_arn,
        action="append",
        default=[],
        metavar="ARN",
        help="hosts of this account, through its FleetViewRole (repeat; default: your own account)",
    )
    parser.add_argument(
        "--ledger-table",
        default=os.environ.get(LEDGER_TABLE_ENV, ""),
        help=f"the issuance ledger table (the central stack's output; default ${LEDGER_TABLE_ENV})",
    )
    parser.add_argument("--document", default="RunUpdateTLS", help="install document (RunUpdateTLS)")
    from rotation.cli.crl_published import PUBLISH_TIMEOUT, publish_timeout

    parser.add_argument(
        "--publish-timeout",
        type=publish_timeout,
        default=PUBLISH_TIMEOUT,
        metavar="SECONDS",
        help=f"after revoking, wait until the serial is in the CA's published CRL ({PUBLISH_TIMEOUT:g}; 0: do not "
        "wait); past it, exit 5",
    )


def run(aws: AwsContext, args: argparse.Namespace, out: Output, sleep: Callable[[float], None] = time.sleep) -> int:
    if not args.compromised:
        raise UsageError("say why: --compromised (superseded certificates are revoked by the rotation function)")
    if not args.ledger_table:
        raise UsageError(f"--ledger-table is required (or set {LEDGER_TABLE_ENV})")
    (record,) = certificate_secrets(aws, names=[args.secret])
    ledger = Ledger(aws.client("dynamodb"), args.ledger_table)
    ledger.require_protected()  # a replaced or stripped table could name another secret's certificate
    compromised = _compromised_entry(ledger, record.arn, hosts.current_of(record).serial, record.name)
    refusal = _refusal(record)
    if refusal:
        raise InvalidInputError(f"{record.name}: {refusal}")
    if parse_spec(record.fields or {}).reuse_private_key:
        raise InvalidInputError(
            f"{record.name}: REUSE_PRIVATE_KEY=true would keep the compromised key; set it to false first"
        )
    holders = _serving(aws, args.role_arn, [compromised.serial])
    compromised_pem = str((record.fields or {}).get("CERTIFICATE_PEM") or "")  # its CDP names the CRL to watch
    timeline = Timeline(out)
    tagged = f"the instances tagged {INSTANCE_TAG}={record.name}"
    reporting = ", ".join(sorted({f"{h.account}/{h.instance_id}" for h in holders}))
    where = f"{tagged} (hosts reporting the serial: {reporting or 'none'})"
    if args.dry_run:
        steps = [
            *(["revoke KEY_COMPROMISE first"] if args.immediately else []),
            "rotate now with a fresh key and wait",
            f"install on {where}" if holders else "install on no host: no host has reported this secret",
            "wait until each host serves the new serial" if holders else "wait for no host",
            *([] if args.immediately else ["revoke KEY_COMPROMISE"]),
            "wait until the serial is in the CA's published CRL",
        ]
        return _finish(out, timeline, {"dry_run": True, "serial": compromised.serial, "plan": steps}, [])
    timeline.add("found", f"{record.name}: compromised serial {compromised.serial}; hosts: {where}")
    revoked = False
    if args.immediately:
        revoke(ledger, aws, compromised)
        timeline.add("revoked", f"serial {compromised.serial} (KEY_COMPROMISE), before the rotation")
        revoked = True
    rotation = start(aws, record)
    timeline.add("rotating", f"rotation {rotation.token} started")
    follow(aws, [rotation], timeout=args.timeout, out=out)
    if rotation.status != "done":
        raise ProblemsError([f"{record.name}: rotation {rotation.token} {rotation.status}: {rotation.error}"])
    new_serial = normalize_serial(rotation.serial_after)
    timeline.add("rotated", f"serial {compromised.serial} -> {new_serial}")
    own = _install(aws, args, out, timeline, record)
    waiting = sorted({f"{h.account}/{h.instance_id}" for h in holders} | set(own))
    stuck = _wait_for_hosts(aws, args, timeline, waiting, compromised.serial, new_serial, sleep)
    if not revoked and not stuck:
        revoke(ledger, aws, compromised)
        timeline.add("revoked", f"serial {compromised.serial} (KEY_COMPROMISE)")
        revoked = True
    problems = _not_moved(aws, args, stuck, compromised.serial, new_serial)
    if stuck and not revoked:
        problems.append(f"serial {compromised.serial} NOT revoked while a host serves it (--immediately revokes first)")
    result = {
        "serial": compromised.serial,
        "new_serial": new_serial,
        "revoked": revoked,
        "hosts_not_moved": stuck,
    }
    if revoked and not problems:
        result.update(_published(aws, args, out, timeline, compromised, compromised_pem, result, sleep))
    return _finish(out, timeline, result, problems)


def _published(
    aws: AwsContext,
    args: argparse.Namespace,
    out: Output,
    timeline: Timeline,
    compromised: IssuedCertificate,
    pem: str,
    result: dict[str, Any],
    sleep: Callable[[float], None],
) -> dict[str, Any]:
    """The last step (``rotation.cli.crl_published``): its fields, or the JSON so far and exit 5."""
    from rotation.cli.crl_published import published_step

    extra, failure = published_step(
        aws, timeline, compromised.ca_arn, compromised.serial, pem, args.publish_timeout, sleep
    )
    if failure is not None:
        _finish(out, timeline, {**result, **extra}, [])
        raise failure
    return extra


def _not_moved(
    aws: AwsContext, args: argparse.Namespace, stuck: list[str], compromised: str, new_serial: str
) -> list[str]:
    """One line per host that did not move, saying what it last reported (not always the compromised serial)."""
    if not stuck:
        return []
    last: dict[str, set[str]] = {}
    for report in _serving(aws, args.role_arn, [compromised, new_serial]):
        last.setdefault(f"{report.account}/{report.instance_id}", set()).add(normalize_serial(report.serial))
    lines = []
    for name in stuck:
        serials = last.get(name, set())
        if normalize_serial(compromised) in serials:
            lines.append(f"{name} still serves serial {compromised} after {args.timeout:g} s")
        else:
            shown = ", ".join(sorted(s for s in serials if s)) or "no serial"
            lines.append(f"{name} reports serial {shown}, not the new serial {new_serial}, after {args.timeout:g} s")
    return lines


def _finish(out: Output, timeline: Timeline, result: dict[str, Any], problems: list[str]) -> int:
    if out.json_mode:
        out.emit_json({**result, "timeline": timeline.events})
    elif result.get("dry_run"):
        out.say(f"would, for serial {result['serial']}:")
        for number, step in enumerate(result["plan"], 1):
            out.say(f"  {number}. {step}")
    if problems:
        raise ProblemsError(problems)  # some hosts did not report the new certificate in time
    return 0


def _compromised_entry(ledger: Ledger, secret_arn: str, serial: str, name: str) -> IssuedCertificate:
    entries = {e.serial: e for e in ledger.entries(secret_arn)}
    entry = entries.get(normalize_serial(serial))
    if entry is None:
        raise InvalidInputError(
            f"{name}: its current certificate (serial {serial or 'unknown'}) is not in the issuance ledger: "
            "certrotate revokes only certificates this secret's rotations issued"
        )
    return entry


def _serving(aws: AwsContext, roles: list[str], serials: list[str]) -> list[HostReport]:
    """The records, in this account and each ``--role-arn`` account, of the instances whose records
    name one of ``serials`` (whatever secret ARN they name)."""
    reports: list[HostReport] = []
    sources: list[str | None] = [*roles] or [None]
    for role in sources:
        found, _ = read_records(*hosts.open_account(aws, role, session_name="certrotate-revoke"), serials)
        reports.extend(found)
    return reports


def _install(aws: AwsContext, args: argparse.Namespace, out: Output, timeline: Timeline, record: Any) -> list[str]:
    """Send the install document to the secret's association targets in this account (when no
    ``--role-arn`` is given); the "account/instance" names it reached."""
    for role in args.role_arn:
        # A FleetViewRole reads inventory only; that account's RotationSucceeded rule (forwarded
        # bus to bus) starts its association, which installs on its instances.
        timeline.add("install", f"{role.split(':')[4]}: through its RotationSucceeded rule and association")
    if args.role_arn:
        return []
    with aws_call("sts", "GetCallerIdentity"):
        account = str(aws.client("sts").get_caller_identity()["Account"])
    targets = {"Targets": [{"Key": f"tag:{INSTANCE_TAG}", "Values": [record.name]}]}
    try:
        results = deploy(
            aws,
            record.arn,
            targets,
            document=args.document,
            role_arn=None,
            max_concurrency="50%",
            max_errors="100%",
            timeout=args.timeout,
            out=out,
            show_progress=False,  # the timeline says what happened, a line per event; no progress line per host
        )
    except DeployFailedError as exc:
        failed = ", ".join(f"{r.instance_id} {r.status}" for r in exc.results if r.status != "Success")
        timeline.add(
            "install", f"{account}: {exc}{f' ({failed})' if failed else ''}; waiting for the fleet view anyway"
        )
        results = exc.results
    else:
        reached = ", ".join(r.instance_id for r in results)
        timeline.add("installed", f"{args.document} sent to {reached} ({account}, tag {INSTANCE_TAG}={record.name})")
    return [f"{account}/{r.instance_id}" for r in results]


def _wait_for_hosts(
    aws: AwsContext,
    args: argparse.Namespace,
    timeline: Timeline,
    waiting_for: list[str],
    old_serial: str,
    new_serial: str,
    sleep: Callable[[float], None],
) -> list[str]:
    """Poll the fleet view until each host reports ``new_serial`` and no longer ``old_serial``;
    the names of those that did not."""
    waiting = set(waiting_for)
    deadline = time.monotonic() + args.timeout
    while waiting:
        reports = _serving(aws, args.role_arn, [old_serial, new_serial])
        for name in sorted(waiting):
            mine = [r for r in reports if f"{r.account}/{r.instance_id}" == name]
            moved = any(serves(r, new_serial) for r in mine) and not any(serves(r, old_serial) for r in mine)
            if moved:
                waiting.discard(name)
                timeline.add("moved", f"{name} serves serial {new_serial}")
        if not waiting or time.monotonic() >= deadline:
            break
        sleep(POLL_SECONDS)
    for name in sorted(waiting):
        timeline.add("timeout", f"{name} did not move to serial {new_serial}")
    return sorted(waiting)


def _pca(aws: AwsContext) -> Callable[[str], Any]:
    return lambda region: aws.client("acm-pca", region)


def revoke(ledger: Ledger, aws: AwsContext, entry: IssuedCertificate) -> None:
    """KEY_COMPROMISE through rotation.fleet.revoker, imported here: it loads the function's Logger, whose
    level is read at import (the demo sets it after the command line is parsed)."""
    from rotation.fleet.revoker import revoke as revoke_entry

    revoke_entry(ledger, _pca(aws), entry, RevocationReason.KEY_COMPROMISE, datetime.now(UTC), in_function=False)
