"""The issuance ledger table's shape and items: keys, the sparse open-entries index, TTL, an entry as
an item and back, and :func:`create_table`, which makes it on moto as the central template
declares it (cfn/src); :mod:`rotation.fleet.ledger` makes the calls."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from rotation.fleet.ledger_protection import ADMIN_ACTIONS, ITEM_WRITES
from rotation.fleet.revocation import IssuedCertificate
from rotation.fleet.view import normalize_serial

_TIME = "%Y-%m-%dT%H:%M:%SZ"
#: How long an entry outlives its certificate (``status NAME`` still shows it as expired).
KEPT_AFTER_EXPIRY = timedelta(days=90)

#: The TTL attribute the central template's table declares.
TTL_ATTRIBUTE = "ExpiresAt"
#: The sparse index of open entries (rotation.fleet.ledger; the central template declares it too).
OPEN_INDEX = "OpenEntries"
#: The index's partition key: the secret's ARN, present only while the entry is open (not revoked).
OPEN_ATTRIBUTE = "OpenFor"
#: The index's sort key: an entry's not-after (``%Y-%m-%dT%H:%M:%SZ`` sorts as time does).
OPEN_SORT_ATTRIBUTE = "NotAfter"


def time_text(value: datetime) -> str:
    return value.astimezone(UTC).strftime(_TIME)


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, Mapping) or not isinstance(value.get("S"), str) or not value["S"]:
        return None
    return datetime.strptime(value["S"], _TIME).replace(tzinfo=UTC)


def text(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    return str(value.get("S", "")) if isinstance(value, Mapping) else ""


def strings(item: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = item.get(key)
    found = value.get("SS", []) if isinstance(value, Mapping) else []
    return tuple(sorted(str(v) for v in found)) if isinstance(found, list) else ()


def whole_second(value: datetime) -> datetime:
    """A time as the table stores it (whole seconds, UTC)."""
    return value.astimezone(UTC).replace(microsecond=0)


def entry_item(entry: IssuedCertificate, certificate_arn: str) -> dict[str, Any]:
    """An entry as the ledger writes it (open: with ``OpenFor`` unless it is revoked already)."""
    item: dict[str, Any] = {
        "SecretArn": {"S": entry.secret_arn},
        "Serial": {"S": normalize_serial(entry.serial)},
        "CaArn": {"S": entry.ca_arn},
        "CertificateType": {"S": entry.certificate_type},
        "VersionId": {"S": entry.version_id},
        "IssuedAt": {"S": time_text(entry.issued_at)},
        "NotAfter": {"S": time_text(entry.not_after)},
        "Fingerprint": {"S": entry.fingerprint},
        TTL_ATTRIBUTE: {"N": str(int((entry.not_after + KEPT_AFTER_EXPIRY).timestamp()))},
    }
    if entry.revoked_at is None:
        item[OPEN_ATTRIBUTE] = {"S": entry.secret_arn}
    if certificate_arn:
        item["CertificateArn"] = {"S": certificate_arn}
    return item


def entry_of(item: Mapping[str, Any]) -> IssuedCertificate:
    """One ledger item (DynamoDB's typed JSON) as an entry."""
    issued = parse_time(item.get("IssuedAt")) or datetime.min.replace(tzinfo=UTC)
    return IssuedCertificate(
        secret_arn=text(item, "SecretArn"),
        serial=text(item, "Serial"),
        ca_arn=text(item, "CaArn"),
        certificate_type=text(item, "CertificateType"),
        version_id=text(item, "VersionId"),
        issued_at=issued,
        not_after=parse_time(item.get("NotAfter")) or issued,
        fingerprint=text(item, "Fingerprint"),
        current_from=parse_time(item.get("CurrentFrom")),
        superseded_at=parse_time(item.get("SupersededAt")),
        revoked_at=parse_time(item.get("RevokedAt")),
        revocation_reason=text(item, "RevocationReason"),
        held_by=strings(item, "HeldBy"),
        refused_at=parse_time(item.get("RefusedAt")),
        refusal=text(item, "Refusal"),
        last_served_at=parse_time(item.get("LastServedAt")),
    )


def create_table(client: Any, table: str, writers: Collection[str] = (), administrators: Collection[str] = ()) -> None:
    """The table as the central template declares it (the demo and tests on moto): deletion
    protection, TTL, and the resource policy that denies item writes to all but ``writers`` and table
    administration to all but ``administrators`` (the account's root user is always one of each)."""
    description = client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "SecretArn", "KeyType": "HASH"}, {"AttributeName": "Serial", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"}
            for name in ("SecretArn", "Serial", OPEN_ATTRIBUTE, OPEN_SORT_ATTRIBUTE)
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": OPEN_INDEX,
                "KeySchema": [
                    {"AttributeName": OPEN_ATTRIBUTE, "KeyType": "HASH"},
                    {"AttributeName": OPEN_SORT_ATTRIBUTE, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
        DeletionProtectionEnabled=True,
    )["TableDescription"]
    client.update_time_to_live(
        TableName=table, TimeToLiveSpecification={"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    )
    arn = str(description["TableArn"])
    root = f"arn:{arn.split(':')[1]}:iam::{arn.split(':')[4]}:root"

    def deny(sid: str, actions: Collection[str], exempt: Collection[str]) -> dict[str, Any]:
        return {
            "Sid": sid,
            "Effect": "Deny",
            "Principal": "*",
            "Action": [f"dynamodb:{a}" for a in actions],
            "Resource": "*",
            "Condition": {"ArnNotEquals": {"aws:PrincipalArn": sorted({root, *exempt})}},
        }

    policy = {
        "Version": "2012-10-17",
        "Statement": [
            deny("OnlyTheRotationRoleAndOperatorsWriteItems", ITEM_WRITES, writers),
            deny("OnlyTheStackAdministratorsAdministerTheTable", ADMIN_ACTIONS, administrators),
        ],
    }
    client.put_resource_policy(ResourceArn=arn, Policy=json.dumps(policy))
