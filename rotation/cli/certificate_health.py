"""One certificate secret's health as ``certrotate status`` shows it: its row, flags and problems. Pure.

The certificate is what hosts serve, so its expiry and serial win over metadata that is missing
(a secret in the original sample's format) or disagrees with it (a flag and a problem); bad
metadata becomes a flag and a problem, never an exception.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime
from typing import Any

from rotation.cli.inventory import SecretRecord, Source
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
    """One secret's row: its certificate as read, and the health flags and problems found."""

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


_ROW_FIELDS = dataclass_fields(CertificateStatus)


def status_of(record: SecretRecord, now: datetime, window_days: float) -> CertificateStatus:
    """The row of one secret; bad metadata becomes a flag and a problem, never an exception."""
    fields: Mapping[str, Any] = record.fields or {}
    flags: list[str] = []
    problems: list[str] = []
    if record.fields is None:
        flags.append("unverified" if record.source is Source.LEDGER else "unreadable")
        problems.append(record.problem)
    expiry, not_after, serial = _expiry(fields, flags, problems)
    starts = not_before(fields)
    if starts is not None and starts > now:  # hosts and clients refuse it until then
        flags.append("not-yet-valid")
        problems.append(f"not valid before {starts.strftime(TIME_FORMAT)}: a client refuses it until then")
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
        # a ledger entry names no key and holds no specification: the key shows "-" (parsing the
        # entry as a specification to find that out was 0.75 s of CPU over 10,000 rows)
        key_algorithm="" if record.source is Source.LEDGER else key_algorithm(fields),
        subject=str(fields.get("COMMON_NAME") or ""),
        serial=serial,
        not_after=not_after,
        days_to_expiry=days,
        rotation_enabled=bool(metadata.get("RotationEnabled")),
        last_rotated=_when(metadata.get("LastRotatedDate")),
        next_rotation=_when(next_rotation),
        flags=flags,
        problems=problems,
        not_before=starts.strftime(TIME_FORMAT) if starts is not None else "",
    )


def row_document(row: CertificateStatus) -> dict[str, Any]:
    """``dataclasses.asdict(row)`` (its fields in order, the lists copied) without asdict's deep copy
    of every string: a third of the CPU ``status --output json`` spent over 10,000 rows."""
    return {f.name: list(value) if isinstance(value := getattr(row, f.name), list) else value for f in _ROW_FIELDS}


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
    certificate = _loaded(pem)
    if certificate is None:
        return "CERTIFICATE_PEM: not a PEM certificate"
    return certificate.not_valid_after_utc, format(certificate.serial_number, "X")


@functools.lru_cache(maxsize=4)
def _loaded(pem: str) -> Any:
    """The certificate of a ``CERTIFICATE_PEM``, or None when it is none. A row reads its PEM up to
    three times (expiry and serial, notBefore, key): parsed once (certificates are immutable). The
    cache holds the last few only: another secret's certificate is parsed again."""
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        return None


def _when(moment: Any) -> str:
    return moment.astimezone(UTC).strftime(TIME_FORMAT) if isinstance(moment, datetime) else ""


def spec_problem(fields: Mapping[str, Any]) -> str:
    """The specification's problems in one line (``validate NAME`` details them); empty when valid."""
    from rotation.issuance.spec import spec_problems

    found = list(spec_problems(fields))
    if not found:
        return ""
    return f"invalid specification ({len(found)} problem(s)): {found[0]}" + ("; …" if len(found) > 1 else "")


def key_algorithm(fields: Mapping[str, Any]) -> str:
    """The key as Private CA names it: the rotation's metadata, else the certificate's key, else the spec's
    (an original-format ``TYPE_RSA`` with ``KEY_SIZE`` reads as ``RSA_2048``)."""
    stored = str(fields.get("CERTIFICATE_KEY_ALGORITHM") or "")
    if stored:
        return stored
    pem = fields.get("CERTIFICATE_PEM")
    if isinstance(pem, str) and pem:
        from rotation.issuance.keys import key_algorithm_of

        certificate = _loaded(pem)
        found = key_algorithm_of(certificate.public_key()) if certificate is not None else None
        if found is not None:
            return found.value
    from rotation.errors import SpecError
    from rotation.issuance.spec import parse_spec

    try:
        return parse_spec(fields).key_algorithm.value
    except SpecError:
        return str(fields.get("KEY_ALGORITHM") or "")


def not_before(fields: Mapping[str, Any]) -> datetime | None:
    """The stored certificate's notBefore (the metadata's when the PEM is missing or unreadable)."""
    pem = fields.get("CERTIFICATE_PEM")
    if isinstance(pem, str) and pem:
        certificate = _loaded(pem)
        if certificate is not None:
            return certificate.not_valid_before_utc  # type: ignore[no-any-return]
    text = str(fields.get("CERTIFICATE_NOT_BEFORE") or "")
    if not text:  # most rows (a ledger entry holds none): strptime's ValueError, without its cost
        return None
    try:
        return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
