"""ACM_ISSUED rotations: request, export, forced renewal, ACM's own renewal, the renewal window.

moto's ACM is completed by ``real_acm_chain`` (tests/support/pki.py): certificates signed by the
requested Private CA with the requested key type, and a RenewCertificate moto lacks.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from freezegun import freeze_time

from rotation.errors import VerificationError
from rotation.issuance.issuers.acm import owner_tag
from rotation.lifecycle.guard import ROTATE_NOW_TAG
from tests.functional.helpers import assert_valid_bundle, calls_of
from tests.support.driver import rotate, run_steps, secret_fields, stage_pending, stages

ACM_KEYS = ["RSA_2048", "EC_prime256v1", "EC_secp384r1"]


def acm_secret(ca_arn: str, **fields: str) -> dict[str, str]:
    return {
        "CERTIFICATE_TYPE": "ACM_ISSUED",
        "CA_ARN": ca_arn,
        "COMMON_NAME": "server1.example",
        "SUBJECT_ALTERNATIVE_NAMES": "www.server1.example",
        **fields,
    }


@pytest.fixture
def requests(aws: Any) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    aws.acm.meta.events.register(
        "provide-client-params.acm.RequestCertificate", lambda params, **_: seen.append(dict(params))
    )
    return seen


@pytest.mark.parametrize("key", ACM_KEYS)
def test_first_issuance_requests_and_exports(
    aws: Any, root_ca: str, acm_chain: Any, make_secret: Any, requests: list[dict[str, Any]], key: str
) -> None:
    arn = make_secret(acm_secret(root_ca, KEY_ALGORITHM=key))
    rotate(arn)
    bundle, _ = assert_valid_bundle(aws, arn)
    assert bundle.certificate_arn.startswith("arn:aws:acm:us-east-1:")
    (request,) = requests
    assert request["KeyAlgorithm"] == key
    assert request["CertificateAuthorityArn"] == root_ca
    assert request["SubjectAlternativeNames"] == ["server1.example", "www.server1.example"]
    assert request["IdempotencyToken"].isalnum() and len(request["IdempotencyToken"]) <= 32
    assert request["Tags"] == [owner_tag(arn)]


@pytest.mark.parametrize("key", ACM_KEYS)
def test_environment_test_renews_every_rotation(
    aws: Any, root_ca: str, acm_chain: Any, make_secret: Any, key: str
) -> None:
    arn = make_secret(acm_secret(root_ca, KEY_ALGORITHM=key, ENVIRONMENT="TEST"))
    rotate(arn)
    first, _ = assert_valid_bundle(aws, arn)
    rotate(arn)
    renewed, _ = assert_valid_bundle(aws, arn)
    assert renewed.certificate_arn == first.certificate_arn
    assert renewed.serial_hex != first.serial_hex
    assert renewed.private_key_pem != first.private_key_pem
    assert acm_chain["count"] == 1 and calls_of(aws, "RequestCertificate") == 1


def test_scheduled_rotation_keeps_an_acm_certificate_that_is_not_due(
    aws: Any, root_ca: str, acm_chain: Any, make_secret: Any
) -> None:
    arn = make_secret(acm_secret(root_ca))
    rotate(arn)
    first, _ = assert_valid_bundle(aws, arn)
    exports = calls_of(aws, "ExportCertificate")
    rotate(arn)
    kept, _ = assert_valid_bundle(aws, arn)
    assert kept.serial_hex == first.serial_hex
    assert calls_of(aws, "ExportCertificate") == exports and acm_chain["count"] == 0


def test_scheduled_rotation_picks_up_acms_own_renewal(aws: Any, root_ca: str, acm_chain: Any, make_secret: Any) -> None:
    arn = make_secret(acm_secret(root_ca))
    rotate(arn)
    first, _ = assert_valid_bundle(aws, arn)
    aws.acm.renew_certificate(CertificateArn=first.certificate_arn)  # ACM's managed renewal
    acm_chain["count"] = 0
    rotate(arn)
    picked, _ = assert_valid_bundle(aws, arn)
    assert picked.serial_hex != first.serial_hex
    assert acm_chain["count"] == 0  # exported, not renewed by us


def test_rotate_now_renews(aws: Any, root_ca: str, acm_chain: Any, make_secret: Any) -> None:
    arn = make_secret(acm_secret(root_ca))
    rotate(arn)
    first, _ = assert_valid_bundle(aws, arn)
    token = stage_pending(arn)
    aws.sm.tag_resource(SecretId=arn, Tags=[{"Key": ROTATE_NOW_TAG, "Value": token}])
    rotate(arn, token)
    assert assert_valid_bundle(aws, arn)[0].serial_hex != first.serial_hex
    assert acm_chain["count"] == 1


def test_we_renew_inside_the_window_when_acm_has_not(aws: Any, root_ca: str, acm_chain: Any, make_secret: Any) -> None:
    arn = make_secret(acm_secret(root_ca))
    rotate(arn)
    first, _ = assert_valid_bundle(aws, arn)
    token = stage_pending(arn)
    # 300 days on, inside the default window (a third of 395 days); OpenSSL's clock is not frozen,
    # so only createSecret runs under the frozen clock.
    with freeze_time(dt.datetime.now(dt.UTC) + dt.timedelta(days=300)):
        run_steps(arn, token, ["createSecret"])
    pending = secret_fields(aws.sm, arn, "AWSPENDING")
    assert pending["CERTIFICATE_SERIAL"] != first.serial_hex
    assert acm_chain["count"] == 1


def test_a_chain_that_does_not_verify_is_refused(aws: Any, root_ca: str, make_secret: Any) -> None:
    """Without the fixture, moto's ACM signs with a fake issuer: nothing may be staged."""
    arn = make_secret(acm_secret(root_ca))
    before = stages(aws.sm, arn)
    token = stage_pending(arn)
    with pytest.raises(VerificationError) as caught:
        run_steps(arn, token, ["createSecret"])
    assert caught.value.check == "chain"
    with pytest.raises(aws.sm.exceptions.ResourceNotFoundException):
        aws.sm.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")
    current = next(v for v, s in stages(aws.sm, arn).items() if "AWSCURRENT" in s)
    assert "AWSCURRENT" in before[current]
    assert json.loads(aws.sm.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"]) == acm_secret(
        root_ca
    )
