"""``status`` and ``hosts`` without secret values: each secret's current certificate from the issuance ledger.

A certificate secret's value holds its private key, so reading it (GetSecretValue,
BatchGetSecretValue) needs the permission to read every key. What ``status`` shows needs none of
it: ListSecrets gives each secret's rotation metadata and the version that holds AWSCURRENT, and
the issuance ledger (DynamoDB, :mod:`rotation.fleet.ledger`) gives the certificate each version holds:
serial, not-after, fingerprint and issuing CA, written in createSecret by the rotation role alone
(the table's resource policy). Tags were the other candidate; anyone with
``secretsmanager:TagResource`` writes them, so a forged tag could make an expired certificate look
healthy, while a ledger entry cannot be forged by a secret's or a tag's writer.

The AWSCURRENT version is matched to the entry whose ``VersionId`` (a fresh certificate) or
``KeptVersions`` (a rotation that kept the certificate) names it. Versions are immutable (AWS
Secrets Manager User Guide, *Secret versions*), so a matched version holds the certificate the
rotation verified and recorded. A certificate secret whose AWSCURRENT version no entry names (a
value put by hand, an original-sample secret not yet rotated by certrotate, a rotation from before
``KeptVersions``) is *unverified*: ``status --check`` counts it, and ``--read-values`` reads those
values as before. A rotation refuses a certificate that is not yet valid (``verify_bundle``), so a
matched entry is never not-yet-valid; the ledger holds no not-before.

Which listed secrets are certificate secrets is known without values for those the ledger has
entries for, and for those rotated by a function that rotates such a secret; any other listed
secret is *unclassified* (a password, or an original-sample secret on another function) and is
counted, not shown, unless ``--read-values`` reads it.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rotation.aws import aws_call
from rotation.cli import bulk_reads
from rotation.cli.inventory import BATCH, UNREADABLE, SecretRecord, Source, described, records, split_pages
from rotation.cli.session import AwsContext, InvalidInputError
from rotation.fleet.ledger import KEPT_VERSIONS
from rotation.fleet.view import normalize_serial

#: Parallel Scan segments (DynamoDB Developer Guide, *Parallel scan*: each segment is its own page chain).
SEGMENTS = 8
_TIME = "%Y-%m-%dT%H:%M:%SZ"
_PROJECTION = ("SecretArn", "Serial", "CaArn", "CertificateType", "VersionId", "NotAfter", "Fingerprint", "RevokedAt")


def add_read_values_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--read-values",
        action="store_true",
        help="with the ledger: read the values of secrets it cannot vouch for "
        "(needs secretsmanager:GetSecretValue, which also reads their private keys)",
    )


@dataclass(frozen=True)
class LedgerCertificate:
    """A certificate the ledger says a secret's rotation issued, and the versions that hold it."""

    secret_arn: str
    serial: str
    not_after: datetime | None
    fingerprint: str
    ca_arn: str
    certificate_type: str
    versions: frozenset[str]
    revoked: bool

    def fields(self) -> dict[str, str]:
        """The metadata fields a rotation writes into the value, as ``status`` reads them."""
        return {
            "CERTIFICATE_TYPE": self.certificate_type,
            "CA_ARN": self.ca_arn,
            "CERTIFICATE_SERIAL": self.serial,
            "CERTIFICATE_NOT_AFTER": self.not_after.strftime(_TIME) if self.not_after else "",
            "CERTIFICATE_FINGERPRINT_SHA256": self.fingerprint,
        }


def _text(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    return str(value.get("S", "")) if isinstance(value, Mapping) else ""


def certificate_of(item: Mapping[str, Any]) -> LedgerCertificate:
    """One ledger item (DynamoDB's typed JSON) as a :class:`LedgerCertificate`."""
    kept = item.get(KEPT_VERSIONS)
    versions = {_text(item, "VersionId")} | set(kept.get("SS", []) if isinstance(kept, Mapping) else [])
    not_after_text = _text(item, "NotAfter")
    try:  # the ledger writes YYYY-MM-DDTHH:MM:SSZ; fromisoformat reads it 50 times faster than strptime
        not_after = datetime.fromisoformat(not_after_text).astimezone(UTC) if not_after_text else None
    except ValueError:
        not_after = None
    return LedgerCertificate(
        secret_arn=_text(item, "SecretArn"),
        serial=normalize_serial(_text(item, "Serial")),
        not_after=not_after,
        fingerprint=_text(item, "Fingerprint"),
        ca_arn=_text(item, "CaArn"),
        certificate_type=_text(item, "CertificateType"),
        versions=frozenset(v for v in versions if v),
        revoked=bool(_text(item, "RevokedAt")),
    )


def unsuperseded(dynamodb: Any, table: str, *, max_rate: float, segments: int = SEGMENTS) -> dict[str, list[Any]]:
    """Every ledger entry not yet superseded (the current and pending ones), by secret ARN.

    A parallel Scan (``segments`` page chains side by side, each page taking a rate-limiter token);
    the filter drops superseded entries before they are sent, the projection every attribute
    ``status`` does not show.
    """
    limited = bulk_reads.rate_limited(dynamodb, max_rate)
    names = {f"#a{i}": name for i, name in enumerate((*_PROJECTION, KEPT_VERSIONS, "SupersededAt"))}
    by_name = {name: key for key, name in names.items()}

    def segment(number: int) -> list[dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": table,
            "Segment": number,
            "TotalSegments": segments,
            # the issuance pacer's slots share the table under keys that are no ARN (rotation.issuance.pacer)
            "FilterExpression": f"attribute_not_exists({by_name['SupersededAt']}) "
            f"AND begins_with({by_name['SecretArn']}, :arn)",
            "ProjectionExpression": ", ".join(by_name[n] for n in (*_PROJECTION, KEPT_VERSIONS)),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {":arn": {"S": "arn:"}},
        }
        items: list[dict[str, Any]] = []
        while True:
            with aws_call("dynamodb", "Scan"):
                page = limited.scan(**request)
            items += page.get("Items", [])
            if not page.get("LastEvaluatedKey"):
                return items
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    found: dict[str, list[Any]] = {}
    for items in bulk_reads.in_parallel(segment, list(range(segments))):
        for item in items:
            entry = certificate_of(item)
            found.setdefault(entry.secret_arn, []).append(entry)
    return found


def current_version(metadata: Mapping[str, Any]) -> str:
    stages = metadata.get("VersionIdsToStages") or metadata.get("SecretVersionsToStages") or {}
    return next((str(v) for v, s in stages.items() if "AWSCURRENT" in s), "")


def match(metadata: Mapping[str, Any], entries: Sequence[LedgerCertificate]) -> LedgerCertificate | None:
    """The entry whose certificate the secret's AWSCURRENT version holds, if the ledger names it."""
    version = current_version(metadata)
    return next((e for e in entries if version and version in e.versions), None)


UNVERIFIED = (
    "no issuance ledger entry names its AWSCURRENT version (a value put by hand, or not yet rotated by "
    "certrotate): its certificate is unknown without reading the value (--read-values)"
)


@dataclass(frozen=True)
class KeylessRead:
    """The certificate secrets read without values, and the listed secrets that could not be classified."""

    records: list[SecretRecord]
    unclassified: list[str]


def classify(
    listed: Iterable[Mapping[str, Any]], ledger: Mapping[str, Sequence[LedgerCertificate]], *, named: bool
) -> tuple[list[SecretRecord], list[Mapping[str, Any]]]:
    """Records for the secrets the ledger vouches for or knows to be certificate secrets; the rest apart."""
    secrets = list(listed)
    functions = {str(m.get("RotationLambdaARN") or "") for m in secrets if ledger.get(str(m["ARN"]))} - {""}
    shown: list[SecretRecord] = []
    others: list[Mapping[str, Any]] = []
    for metadata in secrets:
        arn = str(metadata["ARN"])
        entry = match(metadata, ledger.get(arn, ()))
        known = named or arn in ledger or str(metadata.get("RotationLambdaARN") or "") in functions
        name = str(metadata.get("Name") or arn)
        if entry is not None:
            shown.append(SecretRecord(name, arn, metadata, entry.fields(), named=named, source=Source.LEDGER))
        elif known:
            shown.append(SecretRecord(name, arn, metadata, None, UNVERIFIED, named=named, source=Source.LEDGER))
        else:
            others.append(metadata)
    return shown, others


def certificate_secrets(
    aws: AwsContext,
    ledger_table: str,
    *,
    names: Sequence[str] = (),
    prefix: str | None = None,
    tags: Sequence[tuple[str, str]] = (),
    max_rate: float = bulk_reads.DEFAULT_MAX_RATE,
    read_values: bool = False,
) -> KeylessRead:
    """The certificate secrets (named, or listed) with their current certificates from the ledger.

    The listing (ListSecrets chains) and the ledger Scan run side by side. With ``read_values``,
    the secrets the ledger does not vouch for are read as :func:`rotation.cli.inventory.certificate_secrets`
    reads them (BatchGetSecretValue), and those found to be no certificate secret are dropped.

    Raises:
        InvalidInputError: with ``read_values``, a named secret holds no certificate specification.
        AwsCallError: a call failed (an unknown name: ResourceNotFoundException).
    """
    sm = aws.client("secretsmanager")
    dynamodb = aws.client("dynamodb")  # clients are made here, never in the pool's threads

    def listing() -> list[Any]:
        if names:
            return described(sm, names)
        return [s for page in split_pages(sm, prefix=prefix, tags=tags, max_rate=max_rate) for s in page]

    def scan() -> dict[str, list[Any]]:
        return unsuperseded(dynamodb, ledger_table, max_rate=max_rate)

    found: list[Any] = bulk_reads.in_parallel(lambda read: read(), [listing, scan])
    listed: list[Any] = found[0]
    ledger: dict[str, list[Any]] = found[1]
    shown, others = classify(listed, ledger, named=bool(names))
    if not read_values:
        return KeylessRead(shown, [str(m.get("Name") or m["ARN"]) for m in others])
    unknown = {r.arn for r in shown if r.fields is None} | {str(m["ARN"]) for m in others}
    to_read = [m for m in listed if str(m["ARN"]) in unknown]
    limited = bulk_reads.rate_limited(sm, max_rate)
    read = {
        r.arn: r
        for r in bulk_reads.overlapped([to_read], BATCH, lambda chunk: records(limited, chunk, named=bool(names)))
    }
    if names:
        for record in read.values():
            if not record.is_certificate:
                why = record.problem or "a JSON object without CERTIFICATE_TYPE"
                raise InvalidInputError(f"{record.name} is not a certificate secret: it holds {why}")
    vouched = {r.arn: r for r in shown if r.fields is not None}
    result = []
    for metadata in listed:
        arn = str(metadata["ARN"])
        value = read.get(arn)
        if arn in vouched:
            result.append(vouched[arn])
        elif value is not None and (value.is_certificate or value.problem.startswith(UNREADABLE)):
            result.append(value)
    return KeylessRead(result, [])
