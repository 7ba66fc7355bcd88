"""``certrotate hosts`` shows the trust bundle each host installed (issue 27 item 1), read from the
``Custom:CertrotateTrustBundle`` records the installer puts (trust_record.py), here put the same way
into moto's server, whose SSM inventory is rotation.emulation.ssm_inventory (moto 5.2 has none)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from rotation.emulation.ssm_inventory import ssm_inventory_in_moto
from rotation.fleet.trust_view import TRUST_INVENTORY_TYPE, bundle_fingerprint
from tests.support import cli
from tests.support.certs import LocalCA


@pytest.fixture
def endpoint(moto_endpoint: str) -> Iterator[str]:
    with ssm_inventory_in_moto():
        yield moto_endpoint


def trust_record(name: str, fingerprint: str, status: str = "installed") -> dict[str, str]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "BundleName": name,
        "BundleArn": f"arn:aws:secretsmanager:us-east-1:123456789012:secret:certrotate/trust-bundles/{name}-AbCdEf",
        "FingerprintSha256": fingerprint,
        "Files": "/etc/apache2/client-ca.pem",
        "InstalledAt": now if status != "failed" else "",
        "Status": status,
        "ExitCode": "4" if status == "failed" else "0",
        "Message": "certificate 2 (CN=leaf) is not a CA certificate" if status == "failed" else "",
        "RecordedAt": now,
    }


def put(ssm: Any, instance: str, *entries: dict[str, str]) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    item = {"TypeName": TRUST_INVENTORY_TYPE, "SchemaVersion": "1.0", "CaptureTime": now, "Content": list(entries)}
    ssm.put_inventory(InstanceId=instance, Items=[item])


def test_each_hosts_bundle_fingerprint_is_shown(endpoint: str) -> None:
    pem = "".join(
        LocalCA(name=f"bundle CA {n}").certificate.public_bytes(serialization.Encoding.PEM).decode() for n in (1, 2)
    )
    fingerprint = bundle_fingerprint(pem)
    name = f"partners-{uuid.uuid4().hex[:8]}"
    done, failed = (f"i-{uuid.uuid4().hex[:17]}" for _ in range(2))
    ssm = cli.client(endpoint, "ssm")
    put(ssm, done, trust_record(name, fingerprint))
    put(ssm, failed, trust_record(name, "", status="failed"))

    result = cli.certrotate("hosts", "--output", "json", endpoint=endpoint)

    assert result.returncode == 0, result.stderr
    mine = {b["instance_id"]: b for b in json.loads(result.stdout)["trust_bundles"] if b["bundle"] == name}
    assert mine[done]["fingerprint_sha256"] == fingerprint and mine[done]["status"] == "installed"
    assert mine[failed]["status"] == "failed" and mine[failed]["exit_code"] == "4"
    table = cli.certrotate("hosts", endpoint=endpoint)
    assert fingerprint[:16] in table.stdout and name in table.stdout
