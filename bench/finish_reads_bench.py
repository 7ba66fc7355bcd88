"""Benchmark: what a rotation reads from the ledger and the fleet view, at 10 and at 10,000 past entries.

Run from the repository root:  python bench/finish_reads_bench.py [--sizes 10 10000] [--rotations 3]

moto in process (Secrets Manager, Private CA, DynamoDB for the issuance ledger, SSM inventory from
rotation.emulation.ssm_inventory). For each size, one secret with ``REVOKE_SUPERSEDED_AFTER=0`` (every
rotation revokes the certificate it replaced: a revoking rotation) gets that many past entries
(tests/support/ledger_history.py: half revoked, half expired, as hourly rotations leave them), then
rotates through the real handler: once to index that history (a secret written before the
open-entries index; once per secret), then ``--rotations`` measured times. Calls are counted with
botocore's before-call event, items and bytes with after-call (the HTTP body of each DynamoDB read),
on the clients the rotation uses. For comparison it prints what reading the whole history costs
(Ledger.entries: what finishSecret read on every rotation before the index).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LEDGER_READS = ("Query", "GetItem", "BatchGetItem", "Scan")


class Meter:
    """Calls by operation; items and response bytes of the DynamoDB reads."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.items = 0
        self.bytes = 0

    def before(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    def after(self, model: Any, http_response: Any, parsed: Any, **_: Any) -> None:
        if model.name not in LEDGER_READS:
            return
        self.bytes += len(http_response.content or b"")
        if "Count" in parsed:
            self.items += int(parsed["Count"])
        elif "Item" in parsed:
            self.items += 1
        else:
            self.items += sum(len(v) for v in parsed.get("Responses", {}).values())

    def line(self) -> str:
        reads = ", ".join(f"{op} {self.calls[op]}" for op in LEDGER_READS if self.calls[op]) or "none"
        return (
            f"ledger reads: {reads}; {self.items} items, {self.bytes:,} bytes; "
            f"GetInventory {self.calls['GetInventory']}; RevokeCertificate {self.calls['RevokeCertificate']}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 10_000], help="past entries (default 10 10000)")
    parser.add_argument("--rotations", type=int, default=3, help="measured rotations per size (default 3)")
    args = parser.parse_args()

    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    import boto3
    from freezegun import freeze_time
    from moto import mock_aws

    import rotation.handler
    from rotation.emulation.pki import cached_moto_ca_keys, create_ca
    from rotation.emulation.ssm_inventory import ssm_inventory_in_moto
    from rotation.fleet.ledger import Ledger, create_table
    from rotation.lifecycle.engine import build_services
    from tests.support.driver import rotate
    from tests.support.ledger_history import seed_history

    region, table = "us-east-1", "bench-ledger"
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    rows: dict[int, list[str]] = {}
    with mock_aws(), cached_moto_ca_keys(), ssm_inventory_in_moto(), contextlib.redirect_stdout(io.StringIO()):
        sm, pca, ssm, dynamodb = (
            boto3.client(s, region_name=region) for s in ("secretsmanager", "acm-pca", "ssm", "dynamodb")
        )
        meter = Meter()
        for client in (pca, ssm, dynamodb):
            client.meta.events.register("before-call", meter.before)
            client.meta.events.register("after-call", meter.after)
        ca = create_ca(pca, key="EC")
        create_table(dynamodb, table)
        ledger = Ledger(dynamodb, table)
        rotation.handler._services = build_services(
            sm, lambda r: pca, lambda r: None, ledger=ledger, make_ssm=lambda r: ssm
        )
        for size in args.sizes:
            fields = {
                "CERTIFICATE_TYPE": "PCA_ISSUED",
                "CA_ARN": ca,
                "KEY_ALGORITHM": "EC_prime256v1",
                "COMMON_NAME": f"h{size:05d}.example.internal",
                "REVOKE_SUPERSEDED_AFTER": "0",
            }
            arn = sm.create_secret(Name=f"bench-{size:05d}", SecretString=json.dumps(fields))["ARN"]
            seed_history(dynamodb, table, arn, ca, size, start, indexed=False)
            lines = []
            meter.__init__()  # type: ignore[misc]
            ledger.entries(arn)
            lines.append(f"  the whole history (Ledger.entries, read by finishSecret before): {meter.line()}")
            for n in range(args.rotations + 1):
                meter.__init__()  # type: ignore[misc]
                with freeze_time(start + timedelta(days=n)):
                    rotate(arn)
                label = "first rotation (indexes the history once)" if n == 0 else f"rotation {n}"
                lines.append(f"  {label}: {meter.line()}")
            rows[size] = lines
        rotation.handler.reset()
    for size, lines in rows.items():
        print(f"{size:,} past entries:")
        print("\n".join(lines))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f},",
        f"Python {platform.python_version()}, moto in process",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
