"""Benchmark: what superseded revocation adds to a rotation beside a large unrelated fleet.

Run from the repository root:  python bench/revocation_bench.py [--rotations 20] [--hosts 1000]

moto in process (Secrets Manager, Private CA with its CA key kept loaded, DynamoDB for the issuance
ledger, SSM inventory from rotation.emulation.ssm_inventory). ``--hosts`` instances report serving
certificates of other secrets. Two secrets rotate alternately through the real handler: one with
``REVOKE_SUPERSEDED_AFTER=0`` (every rotation revokes the certificate it replaced: a revoking
rotation) and one without (a rotation that never revokes). Prints the median time of each, the
difference, and the GetInventory, ledger Query and RevokeCertificate calls per rotation.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rotations", type=int, default=20, help="rotations of each secret (default 20)")
    parser.add_argument("--hosts", type=int, default=1000, help="unrelated hosts reporting (default 1000)")
    args = parser.parse_args()

    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")  # the handler's INFO lines are not the figures
    import boto3
    from moto import mock_aws

    import rotation.handler
    from rotation.emulation.pki import cached_moto_ca_keys, create_ca
    from rotation.emulation.ssm_inventory import ssm_inventory_in_moto
    from rotation.fleet.ledger import Ledger, create_table
    from rotation.fleet.view import INVENTORY_TYPE
    from rotation.issuance.keys import SPARE_KEYS
    from rotation.lifecycle.engine import build_services
    from tests.support.driver import rotate

    region = "us-east-1"
    with mock_aws(), cached_moto_ca_keys(), ssm_inventory_in_moto(), contextlib.redirect_stdout(io.StringIO()):
        sm, pca, ssm, dynamodb = (
            boto3.client(s, region_name=region) for s in ("secretsmanager", "acm-pca", "ssm", "dynamodb")
        )
        calls: Counter[str] = Counter()
        for client in (sm, pca, ssm, dynamodb):
            client.meta.events.register("before-call", lambda model, **_: calls.update([model.name]))
        ca = create_ca(pca, key="EC")
        create_table(dynamodb, "bench-ledger")
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for n in range(args.hosts):
            content = [
                {
                    "SecretArn": f"arn:aws:secretsmanager:{region}:123456789012:secret:other-{n % 50}-AbCdEf",
                    "CertificateFile": "/etc/ssl/certs/www.pem",
                    "Status": "unchanged",
                    "ExitCode": "0",
                    "RecordedAt": now,
                    "Serial": f"{0x10_0000 + n:X}",
                    "FingerprintSha256": f"{n:064x}",
                }
            ]
            item = {"TypeName": INVENTORY_TYPE, "SchemaVersion": "1.0", "CaptureTime": now, "Content": content}
            ssm.put_inventory(InstanceId=f"i-{n:017x}", Items=[item])
        rotation.handler._services = build_services(
            sm,
            lambda r: pca,
            lambda r: None,
            ledger=Ledger(dynamodb, "bench-ledger"),
            make_ssm=lambda r: ssm,
        )
        base = {"CERTIFICATE_TYPE": "PCA_ISSUED", "CA_ARN": ca, "KEY_ALGORITHM": "EC_prime256v1"}
        arns = {
            "revoking": sm.create_secret(
                Name="bench-revoking",
                SecretString=json.dumps({**base, "COMMON_NAME": "r.example.internal", "REVOKE_SUPERSEDED_AFTER": "0"}),
            )["ARN"],
            "not revoking": sm.create_secret(
                Name="bench-plain", SecretString=json.dumps({**base, "COMMON_NAME": "p.example.internal"})
            )["ARN"],
        }
        for arn in arns.values():  # first rotations (key made, CA read, nothing to revoke) not measured
            rotate(arn)
            SPARE_KEYS.wait()
        timings: dict[str, list[float]] = {label: [] for label in arns}
        counted: dict[str, list[Counter[str]]] = {label: [] for label in arns}
        for i in range(args.rotations):
            for label in list(arns)[i % 2 :] + list(arns)[: i % 2]:  # alternate who goes first
                calls.clear()
                start = time.perf_counter()
                rotate(arns[label])
                SPARE_KEYS.wait()
                timings[label].append((time.perf_counter() - start) * 1000)
                counted[label].append(Counter(calls))
        rotation.handler.reset()
    for label in arns:
        per = counted[label]
        print(
            f"{label:>13}: median {statistics.median(timings[label]):6.1f} ms;",
            f"per rotation: GetInventory {max(c['GetInventory'] for c in per)},",
            f"ledger Query {max(c['Query'] for c in per)},",
            f"RevokeCertificate {min(c['RevokeCertificate'] for c in per)}-{max(c['RevokeCertificate'] for c in per)},",
            f"AWS calls {statistics.median(sum(c.values()) for c in per):.0f}",
        )
    extra = statistics.median(timings["revoking"]) - statistics.median(timings["not revoking"])
    print(f"a revoking rotation beside {args.hosts} unrelated hosts costs {extra:+.1f} ms (medians)")
    print(
        f"{args.rotations} rotations each; machine: {platform.machine()}, {os.cpu_count()} cores,",
        f"load {os.getloadavg()[0]:.1f}, Python {platform.python_version()}, moto in process (CA key kept)",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
