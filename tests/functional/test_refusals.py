"""What rotation refuses: malformed secrets, unusable CAs, bad pending bundles, the contract guard.

Every refusal raises a clear error, issues nothing, stages nothing and leaves AWSCURRENT alone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

import pytest
from freezegun import freeze_time

from rotation.emulation.pki import create_ca, leaf_signed_by, moto_ca
from rotation.errors import (
    CertificateAuthorityError,
    NotPendingError,
    RotationDisabledError,
    SpecError,
    UnknownVersionError,
    VerificationError,
)
from rotation.issuance.bundle import CertBundle, merge_into_secret
from tests.functional.helpers import calls_of
from tests.support.driver import rotate, run_steps, secret_fields, stage_pending, stages

UNKNOWN_CA = "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/00000000-0000-0000-0000-000000000000"
ISSUING_CALLS = ("IssueCertificate", "RequestCertificate", "PutSecretValue")


def base(ca: str) -> dict[str, Any]:
    return {"CERTIFICATE_TYPE": "PCA_ISSUED", "CA_ARN": ca, "COMMON_NAME": "app.example.internal"}


MALFORMED: list[tuple[str, Any, type[Exception], str]] = [
    ("invalid JSON", "{CERTIFICATE_TYPE: PCA_ISSUED", SpecError, "SecretString"),
    ("JSON list", "[]", SpecError, "SecretString"),
    ("missing CA", {"CA_ARN": None}, SpecError, "CA_ARN=<missing>"),
    ("missing type", {"CERTIFICATE_TYPE": None}, SpecError, "CERTIFICATE_TYPE=<missing>"),
    ("missing name", {"COMMON_NAME": None}, SpecError, "COMMON_NAME=<missing>"),
    ("DSA", {"KEY_ALGORITHM": "TYPE_DSA"}, SpecError, "KEY_ALGORITHM='TYPE_DSA'"),
    ("Ed25519", {"KEY_ALGORITHM": "Ed25519"}, SpecError, "KEY_ALGORITHM='Ed25519'"),
    ("Ed448", {"KEY_ALGORITHM": "Ed448"}, SpecError, "KEY_ALGORITHM='Ed448'"),
    ("RSA-1024", {"KEY_ALGORITHM": "TYPE_RSA", "KEY_SIZE": "1024"}, SpecError, "KEY_SIZE='1024'"),
    ("unknown hash", {"SIGNING_HASH": "md5"}, SpecError, "SIGNING_HASH='md5'"),
    ("ECDSA on an RSA CA", {"SIGNING_ALGORITHM": "ECDSA"}, SpecError, "SIGNING_ALGORITHM='ECDSA'"),
    ("ACM RSA-4096", {"CERTIFICATE_TYPE": "ACM_ISSUED", "KEY_ALGORITHM": "RSA_4096"}, SpecError, "KEY_ALGORITHM"),
    ("unknown CA", {"CA_ARN": UNKNOWN_CA}, CertificateAuthorityError, "no such Private CA"),
]


@pytest.mark.parametrize(("fields", "error", "message"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_secret_issues_nothing(
    aws: Any, root_ca: str, make_secret: Any, fields: Any, error: type[Exception], message: str
) -> None:
    if isinstance(fields, dict):
        fields = json.dumps({k: v for k, v in {**base(root_ca), **fields}.items() if v is not None})
    arn = make_secret(fields)
    before = stages(aws.sm, arn)
    token = stage_pending(arn)
    with pytest.raises(error) as caught:
        run_steps(arn, token, ["createSecret"])
    assert message in str(caught.value)
    assert all(calls_of(aws, call) == 0 for call in ISSUING_CALLS)
    after = stages(aws.sm, arn)
    assert {v: s for v, s in after.items() if v != token} == before  # AWSCURRENT unchanged
    with pytest.raises(aws.sm.exceptions.ResourceNotFoundException):
        aws.sm.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")


@pytest.mark.parametrize("status", ["DISABLED"])
def test_a_ca_that_is_not_active_is_named(aws: Any, root_ca: str, make_secret: Any, status: str) -> None:
    aws.pca.update_certificate_authority(CertificateAuthorityArn=root_ca, Status=status)
    arn = make_secret(base(root_ca))
    with pytest.raises(CertificateAuthorityError, match=r"CA_ARN=.*not ACTIVE"):
        rotate(arn)
    assert calls_of(aws, "IssueCertificate") == 0


def test_a_ca_pending_its_certificate_is_named(aws: Any, make_secret: Any) -> None:
    pending = aws.pca.create_certificate_authority(
        CertificateAuthorityConfiguration={
            "KeyAlgorithm": "RSA_2048",
            "SigningAlgorithm": "SHA256WITHRSA",
            "Subject": {"CommonName": "never activated"},
        },
        CertificateAuthorityType="ROOT",
    )["CertificateAuthorityArn"]
    with pytest.raises(CertificateAuthorityError, match="not ACTIVE"):
        rotate(make_secret(base(pending)))


def stage_bundle(aws: Any, arn: str, bundle: CertBundle) -> str:
    """Put a crafted bundle AWSPENDING, as a createSecret that went wrong might have."""
    token = stage_pending(arn)
    value = merge_into_secret(
        json.loads(aws.sm.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"]), bundle
    )
    aws.sm.put_secret_value(
        SecretId=arn, ClientRequestToken=token, SecretString=json.dumps(value), VersionStages=["AWSPENDING"]
    )
    return token


def good_bundle(aws: Any, arn: str) -> CertBundle:
    rotate(arn)
    bundle = CertBundle.from_fields(secret_fields(aws.sm, arn))
    assert bundle is not None
    return bundle


def _test_secret_refuses(aws: Any, arn: str, bundle: CertBundle, check: str) -> None:
    current = next(v for v, s in stages(aws.sm, arn).items() if "AWSCURRENT" in s)
    token = stage_bundle(aws, arn, bundle)
    with pytest.raises(VerificationError) as caught:
        run_steps(arn, token, ["testSecret"])
    assert caught.value.check == check
    assert "PRIVATE KEY" not in str(caught.value)
    assert "AWSCURRENT" in stages(aws.sm, arn)[current]


def test_test_secret_refuses_a_chain_that_does_not_verify(aws: Any, root_ca: str, make_secret: Any) -> None:
    arn = make_secret(base(root_ca))
    good = good_bundle(aws, arn)
    other = moto_ca(create_ca(aws.pca, name="Another CA"))
    foreign = leaf_signed_by(other, ["app.example.internal"], good.private_key).decode()
    _test_secret_refuses(
        aws,
        arn,
        dataclasses.replace(good, certificate_pem=foreign, chain_pem=other.certificate_bytes.decode()),
        "chain",
    )


def test_test_secret_refuses_a_key_that_does_not_match(aws: Any, root_ca: str, make_secret: Any) -> None:
    arn = make_secret(base(root_ca))
    first, second = good_bundle(aws, arn), good_bundle(aws, arn)
    _test_secret_refuses(aws, arn, dataclasses.replace(second, private_key_pem=first.private_key_pem), "key-match")


def test_test_secret_refuses_a_san_that_differs(aws: Any, root_ca: str, make_secret: Any) -> None:
    arn = make_secret(base(root_ca))
    good = good_bundle(aws, arn)
    wrong = leaf_signed_by(moto_ca(root_ca), ["app.example.internal", "intruder.example"], good.private_key)
    _test_secret_refuses(aws, arn, dataclasses.replace(good, certificate_pem=wrong.decode()), "names")


def test_test_secret_refuses_an_expired_certificate(aws: Any, root_ca: str, make_secret: Any) -> None:
    arn = make_secret(base(root_ca))
    good = good_bundle(aws, arn)
    token = stage_bundle(aws, arn, good)
    with freeze_time(dt.datetime.now(dt.UTC) + dt.timedelta(days=400)), pytest.raises(VerificationError) as caught:
        run_steps(arn, token, ["testSecret"])
    assert caught.value.check == "validity"


def test_test_secret_refuses_a_pending_version_without_a_certificate(aws: Any, root_ca: str, make_secret: Any) -> None:
    arn = make_secret(base(root_ca))
    token = stage_pending(arn)
    with pytest.raises(VerificationError, match="no value staged"):
        run_steps(arn, token, ["testSecret"])


def test_guard_refusals(aws: Any, root_ca: str, make_secret: Any) -> None:
    arn = make_secret(base(root_ca))
    with pytest.raises(RotationDisabledError):
        run_steps(arn, "11111111-1111-4111-8111-111111111111", ["createSecret"])
    token = stage_pending(arn)
    with pytest.raises(UnknownVersionError):
        run_steps(arn, "22222222-2222-4222-8222-222222222222", ["createSecret"])
    run_steps(arn, token)
    previous = next(v for v, s in stages(aws.sm, arn).items() if "AWSPREVIOUS" in s)
    with pytest.raises(NotPendingError):
        run_steps(arn, previous, ["createSecret"])
