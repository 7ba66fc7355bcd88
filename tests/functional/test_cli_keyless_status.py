"""``status`` and ``hosts`` with the issuance ledger: no secret value is read, and nothing forged passes ``--check``.

moto's server runs in this process, so the calls the command makes are counted where they land
(``throttled_moto`` with no quota counts every call). The rotation is certrotate's own, with the
ledger table in moto's DynamoDB.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

import rotation.handler
from rotation.emulation.throttling import throttled_moto
from tests.support.cli import (
    certrotate,
    client,
    make_secret,
    pca_fields,
    rotated,
)

READS_OF_VALUES = {("secretsmanager", "GetSecretValue"), ("secretsmanager", "BatchGetSecretValue")}


@pytest.fixture
def ledger(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A ledger table the rotation function writes (as the central stack's does)."""
    from rotation.fleet.ledger import create_table

    table = f"ledger-{uuid.uuid4().hex[:8]}"
    create_table(client(endpoint, "dynamodb"), table)
    monkeypatch.setenv("CERTROTATE_LEDGER_TABLE", table)
    rotation.handler.reset()
    yield table
    rotation.handler.reset()


def _prefix() -> str:
    return f"keyless-{uuid.uuid4().hex[:6]}/"


def _value(endpoint: str, arn: str) -> dict[str, str]:
    sm = client(endpoint, "secretsmanager")
    return dict(json.loads(sm.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"]))


def _status(endpoint: str, *args: str) -> tuple[int, list[dict[str, object]], str, set[tuple[str, str]]]:
    with throttled_moto({}) as calls:
        result = certrotate("status", *args, "--output", "json", endpoint=endpoint)
    rows = json.loads(result.stdout) if result.stdout.strip() else []
    return result.returncode, rows, result.stderr, set(calls.accepted)


def test_status_shows_each_certificate_from_the_ledger_and_reads_no_value(endpoint: str, ca: str, ledger: str) -> None:
    prefix = _prefix()
    arns = [rotated(endpoint, f"{prefix}{n}", ca) for n in ("a", "b")]
    code, rows, stderr, calls = _status(endpoint, "--prefix", prefix, "--ledger-table", ledger, "--check")
    assert code == 0, stderr
    assert not calls & READS_OF_VALUES  # no value, so no private key, was read
    assert ("dynamodb", "Scan") in calls and ("secretsmanager", "ListSecrets") in calls
    by_arn = {row["arn"]: row for row in rows}
    for arn in arns:
        value = _value(endpoint, arn)
        assert by_arn[arn]["serial"] == value["CERTIFICATE_SERIAL"]
        assert by_arn[arn]["not_after"] == value["CERTIFICATE_NOT_AFTER"]
        assert by_arn[arn]["flags"] == []
    # the same certificates are expiring within a window past their not-after: --check says so
    wide = ("--window-days", "4000")
    code, rows, _, _ = _status(endpoint, "--prefix", prefix, "--ledger-table", ledger, "--check", *wide)
    assert code == 1 and all("expiring" in row["flags"] for row in rows)  # type: ignore[operator]


@pytest.mark.slow
def test_a_rotation_that_keeps_the_certificate_names_its_version_in_the_ledger(
    endpoint: str, ca: str, ledger: str
) -> None:
    prefix = _prefix()
    arn = rotated(endpoint, f"{prefix}kept", ca, RENEWAL_POLICY="WHEN_DUE")
    first = _value(endpoint, arn)["CERTIFICATE_SERIAL"]
    sm = client(endpoint, "secretsmanager")
    before = sm.describe_secret(SecretId=arn)["VersionIdsToStages"]
    sm.rotate_secret(SecretId=arn)  # a scheduled rotation: the certificate still fits and is kept
    for _ in range(100):
        stages = sm.describe_secret(SecretId=arn)["VersionIdsToStages"]
        if stages != before and not any("AWSPENDING" in s for s in stages.values()):
            break
        time.sleep(0.1)
    current = next(v for v, s in stages.items() if "AWSCURRENT" in s)
    assert current not in before and _value(endpoint, arn)["CERTIFICATE_SERIAL"] == first  # kept, in a new version
    code, rows, stderr, calls = _status(endpoint, "--prefix", prefix, "--ledger-table", ledger, "--check")
    assert code == 0, stderr
    assert not calls & READS_OF_VALUES
    assert rows[0]["serial"] == first and rows[0]["flags"] == []


def test_a_secret_writer_cannot_make_a_forged_value_look_healthy(endpoint: str, ca: str, ledger: str) -> None:
    """The attacker may PutSecretValue (and tag); status --check must not report their certificate healthy."""
    prefix = _prefix()
    arn = rotated(endpoint, f"{prefix}forged", ca)
    sm = client(endpoint, "secretsmanager")
    forged = {**_value(endpoint, arn), "CERTIFICATE_NOT_AFTER": "2099-01-01T00:00:00Z", "CERTIFICATE_SERIAL": "0F"}
    sm.put_secret_value(SecretId=arn, SecretString=json.dumps(forged))  # a new AWSCURRENT version
    sm.tag_resource(SecretId=arn, Tags=[{"Key": "CERTIFICATE_NOT_AFTER", "Value": "2099-01-01T00:00:00Z"}])
    code, rows, stderr, calls = _status(endpoint, "--prefix", prefix, "--ledger-table", ledger, "--check")
    assert code == 1
    assert rows[0]["flags"][:1] == ["unverified"] and rows[0]["serial"] == ""  # type: ignore[index]
    assert "ledger" in rows[0]["problems"][0]  # type: ignore[index]
    assert "unverified" in stderr and not calls & READS_OF_VALUES


def _expired_pem() -> str:
    """A certificate whose not-after has passed (the original sample's secrets hold one, with no metadata)."""
    from datetime import timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old.example.internal")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=400))
        .not_valid_after(now - timedelta(days=35))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def test_an_original_sample_secret_is_unverified_until_its_value_is_read_on_request(
    endpoint: str, ca: str, ledger: str
) -> None:
    """An original-format secret (spec and an expired PEM, no metadata) on certrotate's function, not yet rotated."""
    from tests.support.cli import LAMBDA

    prefix = _prefix()
    rotated(endpoint, f"{prefix}managed", ca)  # the function rotates a ledger secret: it is certrotate's
    original = {**pca_fields(ca), "KEY_ALGORITHM": "TYPE_RSA", "KEY_SIZE": "2048", "CERTIFICATE_PEM": _expired_pem()}
    arn = make_secret(endpoint, f"{prefix}original", original)
    # On certrotate's function with no rotation run yet (set on moto's backend: RotateSecret would
    # start one, whose calls would be counted with the command's).
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.secretsmanager.models import secretsmanager_backends

    fake = secretsmanager_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].secrets[arn]
    fake.rotation_lambda_arn, fake.rotation_enabled, fake.rotation_requested = LAMBDA, True, True
    password = make_secret(endpoint, f"{prefix}password", "hunter2")  # no certificate secret, no rotation
    code, rows, stderr, calls = _status(endpoint, "--prefix", prefix, "--ledger-table", ledger, "--check")
    assert code == 1 and not calls & READS_OF_VALUES
    flags = {row["name"]: row["flags"] for row in rows}
    assert flags[f"{prefix}original"][:1] == ["unverified"] and flags[f"{prefix}managed"] == []  # type: ignore[index]
    assert f"{prefix}password" not in flags and "1 listed secret(s)" in stderr  # counted, not shown
    code, rows, _, calls = _status(endpoint, "--prefix", prefix, "--ledger-table", ledger, "--check", "--read-values")
    assert code == 1 and ("secretsmanager", "BatchGetSecretValue") in calls
    shown = {row["arn"]: row for row in rows}
    assert "expired" in shown[arn]["flags"] and password not in shown  # type: ignore[operator]


def test_hosts_takes_the_current_certificate_from_the_ledger_and_reads_no_value(
    endpoint: str, ca: str, ledger: str
) -> None:
    from rotation.emulation.ssm_inventory import ssm_inventory_in_moto
    from rotation.fleet.view import INVENTORY_TYPE

    prefix = _prefix()
    arn = rotated(endpoint, f"{prefix}www", ca)
    value = _value(endpoint, arn)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    record = {
        "SecretArn": arn,
        "CertificateFile": "/etc/apache2/ssl/www.pem",
        "Status": "installed",
        "ExitCode": "0",
        "RecordedAt": now,
        "Serial": value["CERTIFICATE_SERIAL"],
        "FingerprintSha256": value["CERTIFICATE_FINGERPRINT_SHA256"].upper(),
    }
    instance = f"i-0{uuid.uuid4().hex[:16]}"
    with ssm_inventory_in_moto(), throttled_moto({}) as calls:
        item = {"TypeName": INVENTORY_TYPE, "SchemaVersion": "1.0", "CaptureTime": now, "Content": [record]}
        client(endpoint, "ssm").put_inventory(InstanceId=instance, Items=[item])
        result = certrotate(
            "hosts", "--prefix", prefix, "--ledger-table", ledger, "--output", "json", endpoint=endpoint
        )
    assert result.returncode == 0, result.stderr
    assert not set(calls.accepted) & READS_OF_VALUES
    (secret,) = json.loads(result.stdout)["secrets"]
    assert secret["current_serial"] == value["CERTIFICATE_SERIAL"]
    assert [h["state"] for h in secret["hosts"] if h["instance_id"] == instance] == ["current"]


def test_a_kept_version_is_recorded_only_on_the_entry_of_that_very_certificate() -> None:
    """A value that reuses a ledger serial with another certificate (another fingerprint) gains no version."""
    import boto3
    from moto import mock_aws

    from rotation.cli.keyless import certificate_of
    from rotation.fleet.ledger import Ledger, create_table
    from rotation.fleet.revocation import IssuedCertificate

    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:kept-AbCdEf"
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(dynamodb, "ledger")
        ledger = Ledger(dynamodb, "ledger")
        now = datetime.now(UTC)
        entry = IssuedCertificate(arn, "0A1B", "ca", "PCA_ISSUED", "v1", now, now, fingerprint="ab" * 32)
        ledger.record_issued(entry)
        assert not ledger.record_kept(arn, "0A1B", "cd" * 32, "v-forged")  # same serial, another certificate
        assert not ledger.record_kept(arn, "FFFF", "ab" * 32, "v-other")  # no such entry
        assert ledger.record_kept(arn, "0a:1b", "ab" * 32, "v2")
        (item,) = dynamodb.scan(TableName="ledger")["Items"]
    assert certificate_of(item).versions == {"v1", "v2"}
