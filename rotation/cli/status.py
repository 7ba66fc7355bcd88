"""``certrotate status``: the certificate secrets, their certificates and their health.

With an issuance ledger table (``--ledger-table``), the list reads ListSecrets and the ledger and no
secret value, so no private key (:mod:`rotation.cli.keyless`). Without one, it reads ListSecrets and
BatchGetSecretValue, then the ``CERTIFICATE_*`` fields rotation writes and the (public)
``CERTIFICATE_PEM`` itself. ``status NAME…`` shows named certificates in full. This module reads;
each row's health is :mod:`rotation.cli.certificate_health`'s (pure), its drawing
:mod:`rotation.cli.status_tables`'. A malformed secret is reported on its own row. Every value shown
goes through the output's one rendering path (``rotation.cli.output``), which redacts key material.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from rotation.cli import bulk_reads, keyless, options
from rotation.cli.certificate_health import TIME_FORMAT, CertificateStatus, needs_attention, row_document, status_of
from rotation.cli.inventory import SecretRecord, Source, certificate_secrets
from rotation.cli.output import Output
from rotation.cli.session import AwsContext, UsageError
from rotation.cli.status_tables import detail_table, history_table, render_table
from rotation.errors import CertRotateError
from rotation.fleet.ledger import LEDGER_TABLE_ENV, Ledger
from rotation.fleet.revocation import history_state


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
        out.emit_json([row_document(r) for r in rows])
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
