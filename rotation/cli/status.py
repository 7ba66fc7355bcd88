"""``certrotate status``: the certificate secrets, their certificates and their health.

Reads metadata only: ListSecrets (100 a page) and BatchGetSecretValue (20 a call), then the
``CERTIFICATE_*`` metadata fields rotation writes; no PEM is parsed and none is printed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from rotation.aws import aws_call
from rotation.cli.session import AwsContext

BATCH = 20


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


def collect(
    aws: AwsContext, *, prefix: str | None, tags: Mapping[str, str], window_days: float, now: datetime | None = None
) -> list[CertificateStatus]:
    sm = aws.client("secretsmanager")
    now = now or datetime.now(UTC)
    listed = list(_list(sm, prefix, tags))
    values = _values(sm, [s["ARN"] for s in listed])
    rows = []
    for secret in listed:
        fields = values.get(secret["ARN"])
        if not isinstance(fields, dict) or "CERTIFICATE_TYPE" not in fields:
            continue  # not a certificate secret
        rows.append(_row(secret, fields, now, window_days))
    return sorted(rows, key=lambda r: (r.days_to_expiry is None, r.days_to_expiry or 0, r.name))


def _list(sm: Any, prefix: str | None, tags: Mapping[str, str]) -> Iterator[dict[str, Any]]:
    filters = [{"Key": "name", "Values": [prefix]}] if prefix else []
    for key, value in tags.items():
        filters += [{"Key": "tag-key", "Values": [key]}, {"Key": "tag-value", "Values": [value]}]
    arguments: dict[str, Any] = {"MaxResults": 100, **({"Filters": filters} if filters else {})}
    with aws_call("secretsmanager", "ListSecrets"):
        for page in sm.get_paginator("list_secrets").paginate(**arguments):
            for secret in page.get("SecretList", []):
                have = {t["Key"]: t.get("Value", "") for t in secret.get("Tags") or []}
                if all(have.get(k) == v for k, v in tags.items()) and not secret.get("DeletedDate"):
                    yield secret


def _values(sm: Any, arns: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for start in range(0, len(arns), BATCH):
        with aws_call("secretsmanager", "BatchGetSecretValue"):
            response = sm.batch_get_secret_value(SecretIdList=arns[start : start + BATCH])
        for item in response.get("SecretValues", []):
            try:
                values[item["ARN"]] = json.loads(item.get("SecretString") or "")
            except ValueError:
                values[item["ARN"]] = None
    return values


def _row(secret: Mapping[str, Any], fields: Mapping[str, Any], now: datetime, window_days: float) -> CertificateStatus:
    not_after = str(fields.get("CERTIFICATE_NOT_AFTER") or "")
    days = None
    if not_after:
        expiry = datetime.strptime(not_after, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        days = round((expiry - now).total_seconds() / 86400, 1)
    flags = []
    if days is None:
        flags.append("no-certificate")
    elif days <= 0:
        flags.append("expired")
    elif days <= window_days:
        flags.append("expiring")
    if not secret.get("RotationEnabled"):
        flags.append("rotation-disabled")
    stages = secret.get("SecretVersionsToStages") or {}
    if any("AWSPENDING" in s and "AWSCURRENT" not in s for s in stages.values()):
        flags.append("rotation-failed")  # a rotation started and never reached AWSCURRENT
    next_rotation = secret.get("NextRotationDate")
    if secret.get("RotationEnabled") and next_rotation and next_rotation < now:
        flags.append("rotation-overdue")
    return CertificateStatus(
        name=secret.get("Name", ""),
        arn=secret["ARN"],
        certificate_type=str(fields.get("CERTIFICATE_TYPE")),
        key_algorithm=str(fields.get("CERTIFICATE_KEY_ALGORITHM") or fields.get("KEY_ALGORITHM") or ""),
        subject=str(fields.get("COMMON_NAME") or ""),
        serial=str(fields.get("CERTIFICATE_SERIAL") or ""),
        not_after=not_after,
        days_to_expiry=days,
        rotation_enabled=bool(secret.get("RotationEnabled")),
        last_rotated=_when(secret.get("LastRotatedDate")),
        next_rotation=_when(next_rotation),
        flags=flags,
    )


def _when(moment: Any) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(moment, datetime) else ""


def render(rows: list[CertificateStatus], as_json: bool) -> str | None:
    if as_json:
        return json.dumps([asdict(r) for r in rows], indent=2)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} certificate secret(s)")
    for column in (
        "secret",
        "type",
        "key",
        "subject",
        "days left",
        "last rotated",
        "next rotation",
        "rotation",
        "health",
    ):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r.name,
            r.certificate_type.removesuffix("_ISSUED"),
            r.key_algorithm,
            r.subject,
            "-" if r.days_to_expiry is None else f"{r.days_to_expiry:.1f}",
            r.last_rotated[:10] or "-",
            r.next_rotation[:10] or "-",
            "on" if r.rotation_enabled else "off",
            ", ".join(r.flags) or "ok",
        )
    Console(highlight=False).print(table)
    return None
