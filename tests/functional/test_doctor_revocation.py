"""Issue 28 item 1: ``certrotate doctor`` says, per CA, whether a client can learn of a revocation.

What runs for real: moto's server (Secrets Manager with certrotate's rotation function, Private CA
with rotation.emulation's issuance and CRL publication, S3), the ``certrotate`` console script, which
downloads each CRL from its certificate's CDP URL through the emulation's S3 mapping. Eight CAs are
each misconfigured one way, as operators do; a ninth is set up right.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from moto.acmpca.models import acmpca_backends
from moto.core import DEFAULT_ACCOUNT_ID

from rotation.emulation.pca_crl import publish
from rotation.emulation.pki import create_ca, moto_ca
from tests.support.cli import REGION, certrotate, client, rotated
from tests.support.crl import crl_bucket
from tests.support.crl import crl_ca as support_crl_ca


def bucket(endpoint: str, name: str) -> None:
    crl_bucket(client(endpoint, "s3"), name)


def crl_ca(endpoint: str, name: str, **extra: Any) -> str:
    return support_crl_ca(client(endpoint, "acm-pca"), client(endpoint, "s3"), name, name=name, **extra)


def publish_now(ca: str, when: datetime | None = None) -> None:
    assert publish(moto_ca(ca), when or datetime.now(UTC).replace(microsecond=0), "test").error == ""


def empty(endpoint: str, name: str) -> None:
    s3 = client(endpoint, "s3")
    for item in s3.list_objects_v2(Bucket=name).get("Contents", []):
        s3.delete_object(Bucket=name, Key=item["Key"])


@pytest.mark.slow
def test_each_revocation_misconfiguration_is_found_with_its_fix_and_a_correct_setup_has_none(endpoint: str) -> None:
    s3, pca = client(endpoint, "s3"), client(endpoint, "acm-pca")
    cas: dict[str, str] = {}

    cas["correct"] = crl_ca(endpoint, "crl-correct")
    cas["no-revocation"] = create_ca(pca, name="no-revocation")
    cas["no-bucket"] = crl_ca(endpoint, "crl-gone")
    cas["not-writable"] = crl_ca(endpoint, "crl-locked")
    cas["moved"] = crl_ca(endpoint, "crl-old")
    cas["stale"] = crl_ca(endpoint, "crl-stale", ExpirationInDays=1)
    cas["large"] = crl_ca(endpoint, "crl-large")
    cas["partitioned"] = crl_ca(endpoint, "crl-partitioned", CrlType="PARTITIONED")
    cas["no-cdp"] = crl_ca(endpoint, "crl-no-cdp", CrlDistributionPointExtensionConfiguration={"OmitExtension": True})
    for case, ca in cas.items():
        rotated(endpoint, f"rv/{case}", ca)
    for case, ca in cas.items():
        if case != "no-revocation":
            publish_now(ca)

    empty(endpoint, "crl-gone")
    s3.delete_bucket_policy(Bucket="crl-gone")
    s3.delete_bucket(Bucket="crl-gone")  # the CRL bucket deleted under the CA
    s3.delete_bucket_policy(Bucket="crl-locked")  # a policy rewrite dropped Private CA's statement
    bucket(endpoint, "crl-new")  # the CA moved to a new bucket; the old one removed: leaves still point there
    pca.update_certificate_authority(
        CertificateAuthorityArn=cas["moved"],
        RevocationConfiguration={
            "CrlConfiguration": {"Enabled": True, "S3BucketName": "crl-new", "ExpirationInDays": 7}
        },
    )
    publish_now(cas["moved"])
    empty(endpoint, "crl-old")
    s3.delete_bucket(Bucket="crl-old")
    publish_now(cas["stale"], datetime.now(UTC).replace(microsecond=0) - timedelta(days=3))  # never refreshed since
    large = acmpca_backends[DEFAULT_ACCOUNT_ID][REGION].certificate_authorities[cas["large"]]
    for number in range(30_000):  # a CA that revoked many long-lived certificates
        large.revoked_certificates[format(10**30 + number, "x")] = {
            "revocation_reason": "SUPERSEDED",
            "revocation_time": datetime.now(UTC).timestamp(),
        }
    publish_now(cas["large"])

    result = certrotate("doctor", "--prefix", "rv/", "--output", "json", endpoint=endpoint, timeout=300)
    checks = json.loads(result.stdout)
    by_ca: dict[str, dict[str, dict[str, str]]] = {case: {} for case in cas}
    for check in checks:
        for case, ca in cas.items():
            if check["name"].startswith(f"CA {ca} revocation"):
                kind = check["name"].split("revocation", 1)[1].lstrip("/") or "ok"
                by_ca[case][kind] = check
    fixes = {
        case: {kind: c["detail"].split("; fix: ", 1)[-1] for kind, c in found.items()} for case, found in by_ca.items()
    }

    assert set(by_ca["correct"]) == {"ok"}, by_ca["correct"]
    assert by_ca["correct"]["ok"]["outcome"] == "ok"
    assert "0 revoked" in by_ca["correct"]["ok"]["detail"]
    expected = {
        "no-revocation": {"no-revocation"},
        "no-bucket": {"no-bucket", "crl-unreachable"},
        "not-writable": {"bucket-not-writable"},
        "moved": {"crl-unreachable"},
        "stale": {"crl-stale"},
        "large": {"crl-large"},
        "partitioned": {"crl-partitioned"},
        "no-cdp": {"leaf-without-cdp"},
    }
    assert {case: set(found) for case, found in by_ca.items() if case != "correct"} == expected
    assert all(c["outcome"] == "FAIL" for case in expected for c in by_ca[case].values())
    assert "update-certificate-authority" in fixes["no-revocation"]["no-revocation"]
    assert "create-bucket --bucket crl-gone" in fixes["no-bucket"]["no-bucket"]
    assert "put-bucket-policy --bucket crl-locked" in fixes["not-writable"]["bucket-not-writable"]
    assert "acm-pca.amazonaws.com" in fixes["not-writable"]["bucket-not-writable"]
    assert "certrotate rotate rv/moved" in fixes["moved"]["crl-unreachable"]
    assert "MisconfiguredCRLBucket" in fixes["stale"]["crl-stale"]
    assert "PARTITIONED" in fixes["large"]["crl-large"]
    assert "CrlType COMPLETE" in fixes["partitioned"]["crl-partitioned"]
    assert "OmitExtension to false" in fixes["no-cdp"]["leaf-without-cdp"]
    assert "certrotate rotate rv/no-cdp" in fixes["no-cdp"]["leaf-without-cdp"]
    assert result.returncode == 1
