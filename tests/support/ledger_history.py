"""A long issuance history written straight into a ledger table (tests and bench/finish_reads_bench.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from rotation.fleet.ledger import OPEN_ATTRIBUTE

_TIME = "%Y-%m-%dT%H:%M:%SZ"


def seed_history(
    dynamodb: Any, table: str, secret_arn: str, ca_arn: str, count: int, now: datetime, *, indexed: bool = True
) -> None:
    """``count`` past entries of one secret, as hourly rotations leave them: every other one revoked
    (superseded, then revoked), the rest expired (their not-after before ``now``). With ``indexed``
    off, written as before the open-entries index (no ``OpenFor`` on any)."""
    items = []
    for n in range(count):
        issued = now - timedelta(hours=count - n + 48)
        revoked = n % 2 == 0
        not_after = issued + (timedelta(days=400) if revoked else timedelta(hours=24))
        item = {
            "SecretArn": {"S": secret_arn},
            "Serial": {"S": f"{0x7000_0000 + n:X}"},
            "CaArn": {"S": ca_arn},
            "CertificateType": {"S": "PCA_ISSUED"},
            "VersionId": {"S": f"past-{n}"},
            "IssuedAt": {"S": issued.strftime(_TIME)},
            "NotAfter": {"S": not_after.strftime(_TIME)},
            "Fingerprint": {"S": f"{n:064X}"},
            "CurrentFrom": {"S": issued.strftime(_TIME)},
            "SupersededAt": {"S": (issued + timedelta(hours=1)).strftime(_TIME)},
            "ExpiresAt": {"N": str(int((not_after + timedelta(days=90)).timestamp()))},
        }
        if revoked:
            item["RevokedAt"] = {"S": (issued + timedelta(hours=1)).strftime(_TIME)}
            item["RevocationReason"] = {"S": "SUPERSEDED"}
        elif indexed:
            item[OPEN_ATTRIBUTE] = {"S": secret_arn}  # expired: still carries it; the index's range skips it
        items.append({"PutRequest": {"Item": item}})
    for start in range(0, len(items), 25):  # BatchWriteItem: at most 25 requests a call
        dynamodb.batch_write_item(RequestItems={table: items[start : start + 25]})
