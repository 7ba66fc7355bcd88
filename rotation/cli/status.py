"""``certrotate status``: the certificate secrets, their certificates and their health.

With an issuance ledger table (``--ledger-table``), the list reads ListSecrets and the ledger and no
secret value, so no private key (:mod:`rotation.cli.keyless`). Without one, it reads ListSecrets and
BatchGetSecretValue, then the ``CERTIFICATE_*`` fields rotation writes and the (public)
``CERTIFICATE_PEM`` itself: the certificate is what hosts serve, so its
expiry and serial win over metadata that is missing (a secret in the original sample's format) or
disagrees with it (a flag and a problem). ``status NAME…`` shows named certificates in full. A
malformed secret is reported on its own row. Every value shown goes through the output's one
rendering path (``rotation.cli.output``), which redacts key material.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.table import Table

from rotation.cli import bulk_reads, keyless, options
from rotation.cli.certificate_health import key_algorithm, spec_problem
from rotation.cli.certificate_health import not_before as not_before_of
from rotation.cli.inventory import SecretRecord, Source, certificate_secrets
from rotation.cli.output import Output, columns_that_fit, literal
from rotation.cli.session import AwsContext, UsageError
from rotation.errors import CertRotateError
from rotation.fleet.ledger import LEDGER_TABLE_ENV, Ledger
from rotation.fleet.revocation import history_state
from rotation.redaction import quote

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
#: Flags that make ``status --check`` exit 1 (a monitoring probe's "needs attention").
ATTENTION = (
    "expired",
    "expiring",
    "not-yet-valid",
    "invalid-spec",
    "rotation-failed",
    "rotation-overdue",
    "bad-metadata",
    "bad-certificate",
    "unreadable",
    "unverified",
)


@dataclass
class CertificateStatus:
    name: str
    arn: str
    certificate_type: str
    key_algorithm: str
    subject: str
    serial: str
    not_after: str
    days_to_expiry: float | None
    rotation_enabled: bool
    last_rotated: str
    next_rotation: str
    flags: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    not_before: str = ""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME", help="show these certificate secrets in full")
    options.secret_selection(parser)
    parser.add_argument(
        "--window-days",
        type=options.positive_number("--window-days", unit="days"),
        default=30.0,
        help="flag certificates expiring within (30)",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when any certificate needs attention")
    bulk_reads.add_max_rate_argument(parser)
    parser.add_argument(
        "--ledger-table",
        default=os.environ.get(LEDGER_TABLE_ENV, ""),
        help="read each certificate from the issuance ledger, no secret value (no key) is read; with NAME: "
        f"list its past certificates and their revocation state (default ${LEDGER_TABLE_ENV})",
    )
    keyless.add_read_values_argument(parser)
    options.json_alias(parser)


def run(aws: AwsContext, args: argparse.Namespace, out: Output) -> int:
    if args.names and (args.prefix or args.tag):
        raise UsageError("name secrets, or select them with --prefix / --tag, not both")
    records = read_records(aws, args, out)
    now = datetime.now(UTC)
    rows = [status_of(r, now, args.window_days) for r in records]
    if not args.names:
        rows.sort(key=lambda r: (r.days_to_expiry is None, r.days_to_expiry or 0, r.name))
    if args.names:
        details = [
            {**detail, "rotation_failure": _rotation_failure(aws, out, detail)}
            for detail in (detail_of(record, row) for record, row in zip(records, rows, strict=True))
        ]
        if args.ledger_table:
            ledger = Ledger(aws.client("dynamodb"), args.ledger_table)
            for detail in details:
                detail["certificates"] = certificate_history(ledger, detail["arn"], now)
        _add_policy_rules(aws, details)
        if out.json_mode:
            out.emit_json(details)
        else:
            for detail in details:
                out.show(detail_table(detail))
                out.say(f"issuance policy rule: {detail['policy_rule']}")
                if "certificates" in detail:
                    out.show(history_table(detail["name"], detail["certificates"], out.stdout.width))
    elif out.json_mode:
        out.emit_json([asdict(r) for r in rows])
    else:
        out.show(render_table(rows, out.stdout.width))
    attention = [r for r in rows if needs_attention(r)]
    if args.check and attention:
        out.note(
            f"{len(attention)} certificate(s) need attention: "
            + ", ".join(f"{r.name} ({', '.join(needs_attention(r))})" for r in attention)
        )
        return 1
    return 0


def read_records(aws: AwsContext, args: argparse.Namespace, out: Output) -> list[SecretRecord]:
    """The secrets: from the issuance ledger when a ledger table is known (no value read), else their values."""
    selection = {"names": args.names, "prefix": args.prefix, "tags": args.tag, "max_rate": args.max_rate}
    if not args.ledger_table:
        return certificate_secrets(aws, **selection)
    read = keyless.certificate_secrets(aws, args.ledger_table, read_values=args.read_values, **selection)
    if read.unclassified:
        out.note(
            f"certrotate: {len(read.unclassified)} listed secret(s) neither in the issuance ledger nor rotated by "
            f"its functions are not shown (not certificate secrets, or not rotated by certrotate yet: "
            f"--read-values reads them), e.g. {read.unclassified[0]}"
        )
    return read.records


def _rotation_failure(aws: AwsContext, out: Output, detail: Mapping[str, Any]) -> str:
    """A stuck rotation's cause, from the function's own log lines (as ``rotate --wait`` reads them)."""
    if not detail["pending_versions"] or not detail["rotation_function"]:
        return ""
    from rotation.cli.rotate import failure_of

    why = failure_of(aws, out, detail["rotation_function"], detail["pending_versions"][0])
    return why or "no error in the rotation function's logs (still running, or its logs are not readable)"


def status_of(record: SecretRecord, now: datetime, window_days: float) -> CertificateStatus:
    """The row of one secret; bad metadata becomes a flag and a problem, never an exception."""
    fields: Mapping[str, Any] = record.fields or {}
    flags: list[str] = []
    problems: list[str] = []
    if record.fields is None:
        flags.append("unverified" if record.source is Source.LEDGER else "unreadable")
        problems.append(record.problem)
    expiry, not_after, serial = _expiry(fields, flags, problems)
    not_before = not_before_of(fields)
    if not_before is not None and not_before > now:  # hosts and clients refuse it until then
        flags.append("not-yet-valid")
        problems.append(f"not valid before {not_before.strftime(TIME_FORMAT)}: a client refuses it until then")
    days = None if expiry is None else round((expiry - now).total_seconds() / 86400, 2)
    if days is None and not flags and record.fields is not None:
        flags.append("no-certificate")
    elif days is not None and days <= 0:
        flags.append("expired")
    elif days is not None and days <= window_days:
        flags.append("expiring")
    if record.fields is not None and record.source is not Source.LEDGER:  # a ledger entry holds no spec
        invalid = spec_problem(fields)
        if invalid:  # the next rotation fails in createSecret
            flags.append("invalid-spec")
            problems.append(invalid)
    metadata = record.metadata
    if not metadata.get("RotationEnabled"):
        flags.append("rotation-disabled")
    if any("AWSPENDING" in s and "AWSCURRENT" not in s for s in record.stages.values()):
        flags.append("rotation-failed")  # a rotation started and never reached AWSCURRENT
    next_rotation = metadata.get("NextRotationDate")
    if metadata.get("RotationEnabled") and isinstance(next_rotation, datetime) and next_rotation < now:
        flags.append("rotation-overdue")
    return CertificateStatus(
        name=record.name,
        arn=record.arn,
        certificate_type=str(fields.get("CERTIFICATE_TYPE") or ""),
        key_algorithm=key_algorithm(fields),
        subject=str(fields.get("COMMON_NAME") or ""),
        serial=serial,
        not_after=not_after,
        days_to_expiry=days,
        rotation_enabled=bool(metadata.get("RotationEnabled")),
        last_rotated=_when(metadata.get("LastRotatedDate")),
        next_rotation=_when(next_rotation),
        flags=flags,
        problems=problems,
        not_before=not_before.strftime(TIME_FORMAT) if not_before is not None else "",
    )


def needs_attention(row: CertificateStatus) -> list[str]:
    """The row's flags that fail ``--check``: :data:`ATTENTION`, and no certificate with rotation off
    (nothing will ever issue one)."""
    flags = [f for f in row.flags if f in ATTENTION]
    if "no-certificate" in row.flags and "rotation-disabled" in row.flags:
        flags += ["no-certificate", "rotation-disabled"]
    return flags


def _expiry(fields: Mapping[str, Any], flags: list[str], problems: list[str]) -> tuple[datetime | None, str, str]:
    """Expiry, not-after text and serial: the certificate's own when it has one, else the metadata's."""
    not_after = str(fields.get("CERTIFICATE_NOT_AFTER") or "")
    serial = str(fields.get("CERTIFICATE_SERIAL") or "")
    expiry: datetime | None = None
    if not_after:
        try:
            expiry = _utc_time(not_after)
        except ValueError:
            flags.append("bad-metadata")
            problems.append(f"CERTIFICATE_NOT_AFTER={quote(not_after)}: expected YYYY-MM-DDTHH:MM:SSZ")
    certificate = certificate_facts(fields.get("CERTIFICATE_PEM"))
    if isinstance(certificate, str):
        flags.append("bad-certificate")
        problems.append(certificate)
    elif certificate is not None:
        pem_expiry, pem_serial = certificate
        if expiry is not None and expiry != pem_expiry:
            flags.append("bad-metadata")
            problems.append(
                f"CERTIFICATE_NOT_AFTER={quote(not_after)} disagrees with the certificate "
                f"(not after {pem_expiry.strftime(TIME_FORMAT)}): the certificate is shown"
            )
        if serial and serial.upper().replace(":", "") != pem_serial:
            flags.append("bad-metadata")
            problems.append(f"CERTIFICATE_SERIAL={quote(serial)} disagrees with the certificate ({pem_serial})")
        expiry, not_after, serial = pem_expiry, pem_expiry.strftime(TIME_FORMAT), pem_serial
    return expiry, not_after, serial


_TIME_SHAPE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def _utc_time(text: str) -> datetime:
    """``YYYY-MM-DDTHH:MM:SSZ`` (TIME_FORMAT) as an aware datetime: strptime's result, without its
    cost (10,000 rows took a second of CPU in strptime).

    Raises:
        ValueError: any other text.
    """
    if not _TIME_SHAPE.fullmatch(text):
        raise ValueError(text)
    return datetime.fromisoformat(text).astimezone(UTC)


def certificate_facts(pem: object) -> tuple[datetime, str] | str | None:
    """Not-after and serial (upper-case hex, as rotation writes it) of a stored ``CERTIFICATE_PEM``.

    None when there is none; the problem (a string) when it is not a certificate.
    """
    if not pem:
        return None
    if not isinstance(pem, str):
        return f"CERTIFICATE_PEM: a JSON {type(pem).__name__}, not a PEM certificate"
    from cryptography import x509

    try:
        certificate = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        return "CERTIFICATE_PEM: not a PEM certificate"
    return certificate.not_valid_after_utc, format(certificate.serial_number, "X")


def _when(moment: Any) -> str:
    return moment.astimezone(UTC).strftime(TIME_FORMAT) if isinstance(moment, datetime) else ""


def days_left(days: float | None) -> str:
    """Whole days, hours under a day: ``365``, ``6h``, ``expired``."""
    if days is None:
        return "-"
    if days <= 0:
        return "expired"
    if days < 1:
        return f"{max(int(days * 24), 1)}h"
    return str(int(days))


# Columns in priority order: the first three always; the others while they fit at their natural width.
_COLUMNS: Sequence[str] = (
    "secret",
    "days left",
    "health",
    "type",
    "key",
    "subject",
    "rotation",
    "last rotated",
    "next rotation",
)
_FOLDED = ("secret", "subject", "health")  # may wrap; never cut


def _cells(r: CertificateStatus) -> dict[str, str]:
    return {
        "secret": r.name,
        "type": r.certificate_type.removesuffix("_ISSUED") or "-",
        "key": r.key_algorithm or "-",
        "subject": r.subject or "-",
        "days left": days_left(r.days_to_expiry),
        "last rotated": r.last_rotated[:10] or "-",
        "next rotation": r.next_rotation[:10] or "-",
        "rotation": "on" if r.rotation_enabled else "off",
        "health": ", ".join(r.flags) or "ok",
    }


def columns_for(rows: Sequence[dict[str, str]], width: int) -> list[str]:
    """The columns to show at ``width``: the first three, then each that still fits whole."""
    return columns_that_fit(rows, _COLUMNS, width, folded=_FOLDED)


def render_table(rows: Sequence[CertificateStatus], width: int) -> Table:
    cells = [_cells(r) for r in rows]
    shown = columns_for(cells, width)
    table = Table(title=literal(f"{len(rows)} certificate secret(s)"), expand=False)
    for name in shown:
        if name in _FOLDED:
            table.add_column(literal(name), overflow="fold")
        else:
            table.add_column(literal(name), no_wrap=True, justify="right" if name == "days left" else "left")
    for row in cells:
        table.add_row(*(literal(row[name]) for name in shown))
    hidden = [name for name in _COLUMNS if name not in shown]
    if hidden:
        table.caption = literal(f"wider terminal or status NAME for: {', '.join(hidden)}")
    return table


def _add_policy_rules(aws: AwsContext, details: list[dict[str, Any]]) -> None:
    """``policy_rule``: the issuance policy rule that governs each secret (the policy read once)."""
    from rotation.cli.policy import deployed_policy
    from rotation.issuance.policy import PolicyError

    try:
        policy = deployed_policy(aws)
    except CertRotateError as exc:
        for detail in details:
            detail["policy_rule"] = f"unknown (the issuance policy cannot be read: {exc})"
        return
    for detail in details:
        try:
            rule = policy.rule_for(str(detail["name"]), str(detail["arn"]).split(":")[4])
            detail["policy_rule"] = f"{rule.name} ({policy.source})"
        except PolicyError:
            detail["policy_rule"] = f"none: no rule of {policy.source} governs it, nothing is issued"


def detail_of(record: SecretRecord, row: CertificateStatus) -> dict[str, Any]:
    """Everything about one certificate secret: the row, the certificate's names, the rotation setup."""
    fields: Mapping[str, Any] = record.fields or {}
    metadata = record.metadata
    rules = metadata.get("RotationRules") or {}
    pending = [v for v, stages in record.stages.items() if "AWSPENDING" in stages and "AWSCURRENT" not in stages]
    return {
        **asdict(row),
        "ca_arn": str(fields.get("CA_ARN") or ""),
        "subject_alternative_names": _names(fields),
        "certificate_arn": str(fields.get("CERTIFICATE_ARN") or ""),
        "fingerprint_sha256": str(fields.get("CERTIFICATE_FINGERPRINT_SHA256") or ""),
        "renewal_policy": _renewal_policy(fields)
        if record.source is Source.VALUE
        else "unknown: the specification is in the value, not read (--read-values)",
        "rotation_function": record.rotation_lambda_arn,
        "rotation_schedule": str(rules.get("ScheduleExpression") or "")
        or (f"every {rules['AutomaticallyAfterDays']} days" if rules.get("AutomaticallyAfterDays") else ""),
        "pending_versions": pending,
    }


def _names(fields: Mapping[str, Any]) -> list[str]:
    """DNS names and IPs of the stored (public) certificate; the spec's when there is none."""
    pem = fields.get("CERTIFICATE_PEM")
    if isinstance(pem, str) and pem:
        try:
            from cryptography import x509

            certificate = x509.load_pem_x509_certificate(pem.encode())
            extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            return [str(n) for n in extension.get_values_for_type(x509.DNSName)] + [
                str(ip) for ip in extension.get_values_for_type(x509.IPAddress)
            ]
        except (ValueError, x509.ExtensionNotFound):
            pass
    sans = fields.get("SUBJECT_ALTERNATIVE_NAMES") or []
    names = options.comma_list(sans) if isinstance(sans, str) else [str(s) for s in sans]
    common = str(fields.get("COMMON_NAME") or "")
    return ([common] if common else []) + [n for n in names if n != common]


def _renewal_policy(fields: Mapping[str, Any]) -> str:
    from rotation.errors import SpecError
    from rotation.issuance.spec import parse_spec

    try:
        return parse_spec(fields).renewal_policy.value
    except SpecError:
        return "unknown: the specification is invalid (certrotate validate NAME lists why)"


_DETAIL_LABELS = (
    ("name", "secret"),
    ("arn", "ARN"),
    ("certificate_type", "type"),
    ("ca_arn", "CA"),
    ("subject", "subject"),
    ("subject_alternative_names", "names"),
    ("serial", "serial"),
    ("not_before", "not before"),
    ("not_after", "not after"),
    ("days_to_expiry", "days left"),
    ("key_algorithm", "key"),
    ("renewal_policy", "renewal policy"),
    ("rotation_enabled", "rotation"),
    ("rotation_function", "rotation function"),
    ("rotation_schedule", "schedule"),
    ("last_rotated", "last rotated"),
    ("next_rotation", "next rotation"),
    ("pending_versions", "pending"),
    ("rotation_failure", "why"),
    ("flags", "health"),
    ("problems", "problems"),
)


def detail_table(detail: Mapping[str, Any]) -> Table:
    table = Table.grid(padding=(0, 2, 0, 0))
    table.add_column(no_wrap=True, style="bold")
    table.add_column(overflow="fold")
    for key, label in _DETAIL_LABELS:
        value = detail.get(key, "")
        if key == "rotation_failure" and not value:
            continue
        if key == "days_to_expiry":
            text = days_left(value)
        elif key == "rotation_enabled":
            text = "on" if value else "off"
        elif key == "flags":
            text = ", ".join(value) or "ok"
        elif isinstance(value, list):
            text = ", ".join(value) or "-"
        else:
            text = str(value) or "-"
        table.add_row(literal(label), literal(text))
    table.add_row(literal(""), literal(""))
    return table


def certificate_history(ledger: Ledger, arn: str, now: datetime) -> list[dict[str, str]]:
    """The secret's certificates from the issuance ledger, newest first, with their revocation state."""

    def when(moment: datetime | None) -> str:
        return moment.strftime(TIME_FORMAT) if moment else ""

    entries = sorted(ledger.entries(arn), key=lambda e: e.issued_at, reverse=True)
    return [
        {
            "serial": e.serial,
            "state": history_state(e, now),
            "issued": when(e.issued_at),
            "replaced": when(e.superseded_at),
            "revoked": when(e.revoked_at),
            "reason": e.revocation_reason or e.refusal,
            "not_after": when(e.not_after),
        }
        for e in entries
    ]


_HISTORY_COLUMNS = ("serial", "state", "not_after", "issued", "replaced", "revoked")


def history_table(name: str, history: Sequence[Mapping[str, str]], width: int = 200) -> Table:
    """The ledger's certificates: serial and state whole on one line, then the dates that fit (UTC days)."""
    cells = [
        {c: (row[c][:10] if c not in ("serial", "state") else row[c]) or "-" for c in _HISTORY_COLUMNS}
        for row in history
    ]
    shown = columns_that_fit(cells, _HISTORY_COLUMNS, width, always=2)
    table = Table(title=literal(f"{name}: certificates issued by its rotations"))
    for column in shown:
        table.add_column(literal(column.replace("_", " ")), no_wrap=True)
    for row in cells:
        table.add_row(*(literal(row[c]) for c in shown))
    hidden = [c.replace("_", " ") for c in _HISTORY_COLUMNS if c not in shown]
    if not history:
        table.caption = literal("no entry in the issuance ledger")
    elif hidden:
        table.caption = literal(f"wider terminal or --output json for: {', '.join(hidden)}")
    return table
