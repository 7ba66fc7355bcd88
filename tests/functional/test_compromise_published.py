"""Issue 28 item 3: ``certrotate revoke --compromised`` ends only once clients can see the revocation.

What runs for real: moto's server (Secrets Manager with certrotate's rotation function, Private CA,
DynamoDB for the ledger, S3 for the CRL, SSM inventory from rotation.emulation.ssm_inventory), the
``certrotate`` console script, which downloads the CRL from the compromised certificate's CDP URL.
The emulated Private CA publishes on a compressed schedule (1 s after a revocation instead of about
30 minutes: rotation.emulation.pca_crl.crl_publisher); no instance is tagged, so no host waits.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509

import rotation.handler
from rotation.emulation.pca_crl import CrlSchedule, crl_publisher
from rotation.emulation.pki import create_ca
from rotation.emulation.ssm_inventory import ssm_inventory_in_moto
from rotation.fleet.crl_facts import leaf_pointers, read_crl, s3_location
from rotation.fleet.ledger import LEDGER_TABLE_ENV, create_table
from tests.support.cli import certrotate, client, rotated, shell_env
from tests.support.crl import crl_ca as support_crl_ca

TABLE = "certrotate-ledger-published"
BUCKET = "certrotate-crl-published"


@pytest.fixture
def ledger_endpoint(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv(LEDGER_TABLE_ENV, TABLE)
    rotation.handler.reset()
    if TABLE not in client(endpoint, "dynamodb").list_tables()["TableNames"]:
        create_table(client(endpoint, "dynamodb"), TABLE)
    with ssm_inventory_in_moto():
        yield endpoint
    rotation.handler.reset()


def crl_ca(endpoint: str) -> str:
    return support_crl_ca(client(endpoint, "acm-pca"), client(endpoint, "s3"), BUCKET, key="EC")


def current(endpoint: str, arn: str) -> x509.Certificate:
    value = client(endpoint, "secretsmanager").get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")
    return x509.load_pem_x509_certificate(json.loads(value["SecretString"])["CERTIFICATE_PEM"].encode())


def listed(endpoint: str, certificate: x509.Certificate) -> bool:
    (url,) = leaf_pointers(certificate).crl_urls
    bucket, key = s3_location(url) or ("", "")
    data = client(endpoint, "s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return certificate.serial_number in read_crl(data, None).serials


@pytest.mark.slow
def test_compromise_ends_when_the_crl_lists_the_serial_and_exits_5_when_publication_is_blocked(
    ledger_endpoint: str,
) -> None:
    endpoint = ledger_endpoint
    ca = crl_ca(endpoint)
    arn = rotated(endpoint, "published/web", ca)
    first = current(endpoint, arn)
    with crl_publisher(CrlSchedule(after_revocation=timedelta(seconds=1)), tick=0.2) as publications:
        result = certrotate(
            "revoke", "published/web", "--compromised", "--ledger-table", TABLE,
            "--timeout", "30", "--publish-timeout", "60", endpoint=endpoint,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert listed(endpoint, first)  # what any client downloading the CDP URL now sees
        lines = result.stdout.splitlines()
        events = [m.group(1) for m in (re.match(r"\+\s*[\d.]+s\s+(\S+)", line) for line in lines) if m]
        assert events[-2:] == ["revoked", "published"], result.stdout
        assert any(line.startswith("revoked at ") and line.endswith("Z") for line in lines)
        assert any(line.startswith("published at ") and line.endswith("Z") for line in lines)
        assert any(line.startswith("hosts moved at ") for line in lines)
        (url,) = leaf_pointers(first).crl_urls
        assert f"in the CRL at {url}" in result.stdout
        assert any(first.serial_number in p.serials for p in publications)

        # Publication blocked: the bucket policy no longer lets Private CA write. Revoked at the CA,
        # never in the CRL clients read: the command says so and exits 5 after its bound.
        client(endpoint, "s3").delete_bucket_policy(Bucket=BUCKET)
        second = current(endpoint, arn)
        result = certrotate(
            "revoke", "published/web", "--compromised", "--ledger-table", TABLE,
            "--timeout", "30", "--publish-timeout", "4", "--output", "json", endpoint=endpoint,
        )  # fmt: skip
    assert result.returncode == 5, result.stderr
    report = json.loads(result.stdout)
    assert report["revoked"] is True and report["serial"] == format(second.serial_number, "X")
    assert [e["event"] for e in report["timeline"]][-2:] == ["revoked", "unpublished"]
    assert report["times"]["published_at"] is None and report["times"]["revoked_at"]
    error = [line for line in result.stderr.splitlines() if line.startswith("certrotate: error:")]
    assert len(error) == 1 and "not in the CRL clients download" in error[0] and "after 4 s" in error[0]
    assert not listed(endpoint, second)
    assert any("denies acm-pca.amazonaws.com" in p.error for p in publications)


def test_a_ca_without_a_crl_is_named_and_exits_5(ledger_endpoint: str) -> None:
    endpoint = ledger_endpoint
    ca = create_ca(client(endpoint, "acm-pca"), key="EC")
    rotated(endpoint, "published/nocrl", ca)
    result = certrotate(
        "revoke", "published/nocrl", "--compromised", "--ledger-table", TABLE, "--timeout", "30", endpoint=endpoint
    )
    assert result.returncode == 5
    assert "publishes no CRL" in result.stderr and "--publish-timeout 0" in result.stderr
    result = certrotate(
        "revoke",
        "published/nocrl",
        "--compromised",
        "--ledger-table",
        TABLE,
        "--timeout",
        "30",
        "--publish-timeout",
        "0",
        endpoint=endpoint,
    )
    assert result.returncode == 0, result.stderr
    assert "not waited for (--publish-timeout 0)" in result.stdout


@pytest.mark.slow
def test_revoke_compromised_finishes_in_the_sandbox(tmp_path: Path) -> None:
    """The sandbox CA publishes on its compressed cadence, so the whole response ends with exit 0."""
    script = "\n".join(
        [
            'trap \'[ -n "${CERTROTATE_SANDBOX_PID:-}" ] && kill "$CERTROTATE_SANDBOX_PID"\' EXIT',
            "set -e",
            'eval "$(certrotate sandbox --detach --ledger)"',
            'certrotate create-secret web/compromised --type PCA_ISSUED --ca-arn "$CA_ARN" '
            '--common-name web.example.internal --kms-key-id "$KMS_KEY_ID" '
            '--rotation-lambda-arn "$ROTATION_LAMBDA_ARN"',
            # RotateSecret runs the first rotation in the background, as Secrets Manager does: revoke
            # refuses a secret whose rotation is still in progress, so wait for its first certificate.
            "for _ in $(seq 120); do",
            "  certrotate status web/compromised --check >/dev/null 2>&1 && break; sleep 0.5",
            "done",
            "certrotate revoke web/compromised --compromised --timeout 60 --publish-timeout 120",
        ]
    )
    env = shell_env()
    result = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    matches = (re.match(r"\+\s*[\d.]+s\s+(\S+)", line) for line in result.stdout.splitlines())
    events = [m.group(1) for m in matches if m]
    assert events[-2:] == ["revoked", "published"], result.stdout
    assert re.search(r"^published at +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", result.stdout, re.MULTILINE), result.stdout
    assert re.search(r"in the CRL at http://certrotate-sandbox-crl\.s3\.us-east-1\.amazonaws\.com/crl/", result.stdout)


@pytest.mark.parametrize("value", ["-3", "nan", "soon"])
def test_a_bad_publish_timeout_names_the_flag_the_value_and_what_is_allowed(value: str) -> None:
    result = certrotate("revoke", "x", "--compromised", "--publish-timeout", value)
    assert result.returncode == 2
    assert f"--publish-timeout {value!r}: expected seconds, 0 or more" in result.stderr
