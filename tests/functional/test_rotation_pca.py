"""PCA_ISSUED rotations through the real handler, driven as Secrets Manager drives it (moto)."""

from __future__ import annotations

from typing import Any

import pytest

from rotation.emulation.pki import create_ca
from rotation.errors import SpecError
from rotation.issuance.keys import public_key_der
from rotation.issuance.spec import KeyAlgorithm
from rotation.lifecycle.guard import ROTATE_NOW_TAG
from tests.functional.helpers import assert_valid_bundle, calls_of
from tests.support.driver import replace_current, rotate, stage_pending, stages

HASHES = ["sha256", "sha384", "sha512"]


def pca_secret(ca_arn: str, **fields: Any) -> dict[str, Any]:
    return {
        "CERTIFICATE_TYPE": "PCA_ISSUED",
        "CA_ARN": ca_arn,
        "COMMON_NAME": "app.example.internal",
        "SUBJECT_ALTERNATIVE_NAMES": ["api.example.internal", "10.0.0.7"],
        **fields,
    }


@pytest.fixture
def recorded(aws: Any) -> list[dict[str, Any]]:
    """The parameters of every Private CA call, as botocore sent them."""
    seen: list[dict[str, Any]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        seen.append({"operation": model.name, **params})

    aws.pca.meta.events.register("provide-client-params.acm-pca", record)
    aws.recorded = seen
    return seen


@pytest.mark.parametrize("digest", HASHES)
@pytest.mark.parametrize("ca_key", ["RSA", "EC"])
@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_rotation_matrix(
    aws: Any, recorded: Any, make_secret: Any, algorithm: KeyAlgorithm, ca_key: str, digest: str
) -> None:
    ca_arn = create_ca(aws.pca, key=ca_key)
    recorded.clear()
    arn = make_secret(pca_secret(ca_arn, KEY_ALGORITHM=algorithm.value, SIGNING_HASH=digest))
    first_version = aws.sm.describe_secret(SecretId=arn)["VersionIdsToStages"]
    token = rotate(arn)

    versions = stages(aws.sm, arn)
    assert versions[token] == ["AWSPENDING", "AWSCURRENT"] or set(versions[token]) >= {"AWSCURRENT"}
    (original,) = first_version
    assert versions[original] == ["AWSPREVIOUS"]
    _bundle, spec = assert_valid_bundle(aws, arn)
    family = "RSA" if ca_key == "RSA" else "ECDSA"
    (issued,) = [p for p in recorded if p["operation"] == "IssueCertificate"]
    assert issued["SigningAlgorithm"] == f"{digest.upper()}WITH{family}"
    # The default issuance policy allows no clientAuth: the template is narrowed to its server-only twin.
    assert issued["TemplateArn"] == "arn:aws:acm-pca:::template/EndEntityServerAuthCertificate/V1"
    assert issued["Validity"] == {"Value": 365, "Type": "DAYS"}
    assert len(issued["IdempotencyToken"]) <= 36
    assert spec.key_algorithm is algorithm


def test_original_sample_secret_rotates_unchanged(aws: Any, recorded: Any, root_ca: str, make_secret: Any) -> None:
    original = {
        "CERTIFICATE_TYPE": "PCA_ISSUED",
        "CA_ARN": root_ca,
        "COMMON_NAME": "server2.example",
        "TEMPLATE_ARN": "arn:aws:acm-pca:::template/EndEntityCertificate/V1",
        "KEY_ALGORITHM": "TYPE_RSA",
        "KEY_SIZE": "2048",
        "SIGNING_ALGORITHM": "RSA",
        "SIGNING_HASH": "sha384",
        "ENVIRONMENT": "TEST",
    }
    arn = make_secret(original)
    rotate(arn)
    bundle, _ = assert_valid_bundle(aws, arn)
    stored = aws.sm.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"]
    import json

    fields = json.loads(stored)
    assert {k: fields[k] for k in original} == original  # the spec is kept as written
    assert bundle.key_algorithm_label == "RSA_2048"
    (issued,) = [p for p in recorded if p["operation"] == "IssueCertificate" and "EndEntity" in p["TemplateArn"]]
    assert issued["SigningAlgorithm"] == "SHA384WITHRSA"


def test_every_rotation_has_a_fresh_key_and_serial(aws: Any, root_ca: str, make_secret: Any) -> None:
    arn = make_secret(pca_secret(root_ca, KEY_ALGORITHM="EC_prime256v1"))
    seen_keys, seen_serials = set(), set()
    for _ in range(3):
        rotate(arn)
        bundle, _ = assert_valid_bundle(aws, arn)
        seen_keys.add(public_key_der(bundle.private_key))
        seen_serials.add(bundle.serial_hex)
    assert len(seen_keys) == 3 and len(seen_serials) == 3


def test_key_is_reused_only_when_asked(aws: Any, root_ca: str, make_secret: Any) -> None:
    arn = make_secret(pca_secret(root_ca, KEY_ALGORITHM="EC_secp384r1", REUSE_PRIVATE_KEY="true"))
    rotate(arn)
    first, _ = assert_valid_bundle(aws, arn)
    rotate(arn)
    second, _ = assert_valid_bundle(aws, arn)
    assert second.private_key_pem == first.private_key_pem
    assert second.serial_hex != first.serial_hex


def test_subordinate_ca_chain(aws: Any, root_ca: str, make_secret: Any) -> None:
    sub = create_ca(aws.pca, parent=root_ca, name="certrotate Test Issuing CA")
    arn = make_secret(pca_secret(sub))
    rotate(arn)
    bundle, _ = assert_valid_bundle(aws, arn)
    assert "CN=certrotate Test Issuing CA" in bundle.certificate.issuer.rfc4514_string()
    assert len(bundle.chain) == 1  # the issuing CA; the root is the CA certificate's own chain


def test_when_due_keeps_the_current_certificate_until_due(aws: Any, root_ca: str, make_secret: Any) -> None:
    arn = make_secret(pca_secret(root_ca, KEY_ALGORITHM="EC_prime256v1", RENEWAL_POLICY="WHEN_DUE"))
    rotate(arn)
    first, _ = assert_valid_bundle(aws, arn)
    issued = calls_of(aws, "IssueCertificate")
    rotate(arn)  # not due: the current bundle is staged unchanged, nothing is issued
    kept, _ = assert_valid_bundle(aws, arn)
    assert kept.serial_hex == first.serial_hex and calls_of(aws, "IssueCertificate") == issued

    token = stage_pending(arn)
    aws.sm.tag_resource(SecretId=arn, Tags=[{"Key": ROTATE_NOW_TAG, "Value": token}])
    rotate(arn, token)  # rotate now: fresh whatever the policy
    forced, _ = assert_valid_bundle(aws, arn)
    assert forced.serial_hex != first.serial_hex
    rotate(arn)  # the marker named the previous token only: back to keeping
    assert assert_valid_bundle(aws, arn)[0].serial_hex == forced.serial_hex


def test_when_due_renews_inside_the_window(aws: Any, root_ca: str, make_secret: Any) -> None:
    # The default VALIDITY is 365 days (and the CA's 60-minute backdating): a 365-day window makes each one due at once.
    arn = make_secret(
        pca_secret(root_ca, KEY_ALGORITHM="EC_prime256v1", RENEWAL_POLICY="WHEN_DUE", RENEW_BEFORE_DAYS="365")
    )
    rotate(arn)
    first, _ = assert_valid_bundle(aws, arn)
    rotate(arn)
    assert assert_valid_bundle(aws, arn)[0].serial_hex != first.serial_hex


def test_changed_spec_is_issued_even_when_not_due(aws: Any, root_ca: str, make_secret: Any) -> None:
    arn = make_secret(pca_secret(root_ca, KEY_ALGORITHM="EC_prime256v1", RENEWAL_POLICY="WHEN_DUE"))
    rotate(arn)
    import json

    fields = json.loads(aws.sm.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"])
    fields["SUBJECT_ALTERNATIVE_NAMES"] = ["api.example.internal", "new.example.internal"]
    replace_current(aws.sm, arn, json.dumps(fields))
    rotate(arn)
    _bundle, spec = assert_valid_bundle(aws, arn)
    assert "new.example.internal" in spec.names


def test_signing_family_that_contradicts_the_ca_is_refused(aws: Any, root_ca: str, make_secret: Any) -> None:
    arn = make_secret(pca_secret(root_ca, SIGNING_ALGORITHM="ECDSA"))
    before = stages(aws.sm, arn)
    with pytest.raises(SpecError, match=r"SIGNING_ALGORITHM='ECDSA'.*RSA key"):
        rotate(arn)
    assert calls_of(aws, "IssueCertificate") == 0
    current = [v for v, s in stages(aws.sm, arn).items() if "AWSCURRENT" in s]
    assert current == [v for v, s in before.items() if "AWSCURRENT" in s]
