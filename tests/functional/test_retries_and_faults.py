"""Secrets Manager retries: every step run twice, crashes mid-step, each AWS call failing once."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

import rotation.handler
from rotation.errors import AwsCallError, CertificateAuthorityError, CertRotateError
from rotation.lifecycle.secrets_store import SecretStore
from tests.functional.helpers import assert_valid_bundle, calls_of
from tests.support.driver import STEPS, rotate, run_steps, secret_fields, stage_pending, stages
from tests.support.faults import KINDS, inject


def pca_secret(ca: str) -> dict[str, str]:
    return {
        "CERTIFICATE_TYPE": "PCA_ISSUED",
        "CA_ARN": ca,
        "COMMON_NAME": "app.example.internal",
        "KEY_ALGORITHM": "EC_prime256v1",
    }


def acm_secret(ca: str) -> dict[str, str]:
    return {
        "CERTIFICATE_TYPE": "ACM_ISSUED",
        "CA_ARN": ca,
        "COMMON_NAME": "app.example.internal",
        "ENVIRONMENT": "TEST",
    }


def current_version(aws: Any, arn: str) -> str:
    return next(v for v, s in stages(aws.sm, arn).items() if "AWSCURRENT" in s)


def pending_has_value(aws: Any, arn: str, token: str) -> bool:
    try:
        aws.sm.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")
    except aws.sm.exceptions.ResourceNotFoundException:
        return False
    return True


@pytest.mark.parametrize("make_fields", [pca_secret, acm_secret], ids=["pca", "acm"])
def test_every_step_twice_gives_the_same_result(
    aws: Any, root_ca: str, acm_chain: Any, make_secret: Any, make_fields: Any
) -> None:
    arn = make_secret(make_fields(root_ca))
    token = stage_pending(arn)
    for step in STEPS:
        run_steps(arn, token, [step])
        snapshot = (stages(aws.sm, arn), secret_fields(aws.sm, arn, "AWSPENDING"))
        run_steps(arn, token, [step])
        assert (stages(aws.sm, arn), secret_fields(aws.sm, arn, "AWSPENDING")) == snapshot, step
    assert calls_of(aws, "PutSecretValue") == 1
    run_steps(arn, token)  # the whole rotation replayed after finishing: nothing changes
    assert current_version(aws, arn) == token
    assert_valid_bundle(aws, arn)


def test_crash_after_issuing_never_stores_a_mismatched_pair(aws: Any, root_ca: str, make_secret: Any) -> None:
    arn = make_secret(pca_secret(root_ca))
    before = current_version(aws, arn)
    token = stage_pending(arn)
    inject(aws.sm, "PutSecretValue", "5xx")  # the certificate is issued, then the step dies
    with pytest.raises(AwsCallError, match="PutSecretValue"):
        run_steps(arn, token, ["createSecret"])
    assert current_version(aws, arn) == before and not pending_has_value(aws, arn, token)
    run_steps(arn, token)
    assert_valid_bundle(aws, arn)  # key matches certificate
    assert calls_of(aws, "IssueCertificate") == 2


def test_a_stale_idempotent_issuance_is_issued_again(aws: Any, root_ca: str, make_secret: Any) -> None:
    """Private CA answers a reused idempotency token with the first certificate. moto ignores the
    token, so an after-call hook stands in for that service behaviour (a stub where moto cannot go)."""
    arn = make_secret(pca_secret(root_ca))
    rotate(arn)
    stale_arn = secret_fields(aws.sm, arn)["CERTIFICATE_ARN"]
    swapped = {"done": False}

    def answer_with_stale(parsed: dict[str, Any], **_: Any) -> None:
        if not swapped["done"]:
            parsed["CertificateArn"] = stale_arn
            swapped["done"] = True

    aws.pca.meta.events.register("after-call.acm-pca.IssueCertificate", answer_with_stale)
    issued_before = calls_of(aws, "IssueCertificate")
    rotate(arn)
    bundle, _ = assert_valid_bundle(aws, arn)
    assert bundle.certificate_arn != stale_arn
    assert calls_of(aws, "IssueCertificate") == issued_before + 2


def test_acm_crash_and_retry_reuses_the_requested_certificate(
    aws: Any, root_ca: str, acm_chain: Any, make_secret: Any
) -> None:
    arn = make_secret({**acm_secret(root_ca), "ENVIRONMENT": "PROD"})
    token = stage_pending(arn)
    inject(aws.sm, "PutSecretValue", "throttling")
    with pytest.raises(AwsCallError):
        run_steps(arn, token, ["createSecret"])
    run_steps(arn, token)
    assert_valid_bundle(aws, arn)
    assert len(aws.acm.list_certificates()["CertificateSummaryList"]) == 1  # idempotency token honoured


# (step, client attribute, operation, nth call of it within the step)
PCA_CALLS = [
    ("createSecret", "sm", "DescribeSecret", 1),
    ("createSecret", "sm", "GetSecretValue", 1),
    ("createSecret", "sm", "GetSecretValue", 2),
    ("createSecret", "pca", "GetCertificateAuthorityCertificate", 1),
    ("createSecret", "pca", "IssueCertificate", 1),
    ("createSecret", "pca", "GetCertificate", 1),
    ("createSecret", "sm", "PutSecretValue", 1),
    ("testSecret", "sm", "DescribeSecret", 1),
    ("testSecret", "sm", "GetSecretValue", 1),  # in another container than createSecret's
    ("testSecret", "pca", "GetCertificateAuthorityCertificate", 1),
    ("finishSecret", "sm", "DescribeSecret", 1),
    ("finishSecret", "sm", "GetSecretValue", 1),  # in another container than createSecret's
    ("finishSecret", "sm", "UpdateSecretVersionStage", 1),
]
#: Steps that read the pending value only when another container staged it (issue 8: a container
#: remembers the immutable version it put, and testSecret/finishSecret then need no GetSecretValue).
READ_ONLY_IN_ANOTHER_CONTAINER = {("testSecret", "GetSecretValue"), ("finishSecret", "GetSecretValue")}
#: Calls whose lost answer (timeout after the service acted) leaves a completed write behind.
COMMITTING = {("PutSecretValue", "createSecret"), ("UpdateSecretVersionStage", "finishSecret")}
#: Issuer calls retried on throttling, 5xx and timeouts (rotation.throttling; CA facts are read outside).
ISSUER_CALLS_RETRIED = {
    "IssueCertificate",
    "GetCertificate",
    "RequestCertificate",
    "DescribeCertificate",
    "ExportCertificate",
}
ACM_CALLS = [
    ("createSecret", "acm", "RequestCertificate", 1),
    ("createSecret", "acm", "DescribeCertificate", 1),
    ("createSecret", "acm", "ExportCertificate", 1),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("step", "client", "operation", "nth", "issuer"),
    [(*c, "pca") for c in PCA_CALLS] + [(*c, "acm") for c in ACM_CALLS],
    ids=str,
)
def test_each_call_failing_once(
    aws: Any,
    root_ca: str,
    acm_chain: Any,
    make_secret: Any,
    step: str,
    client: str,
    operation: str,
    nth: int,
    issuer: str,
    kind: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    arn = make_secret(pca_secret(root_ca) if issuer == "pca" else acm_secret(root_ca))
    before = current_version(aws, arn)
    token = stage_pending(arn)
    earlier = list(STEPS[: STEPS.index(step)])
    run_steps(arn, token, earlier)
    pending_before = pending_has_value(aws, arn, token)
    rotation.handler.services().authorities.forget(root_ca)  # make the CA read happen in this step
    if (step, operation) in READ_ONLY_IN_ANOTHER_CONTAINER:
        services = rotation.handler.services()
        monkeypatch.setattr(rotation.handler, "_services", dataclasses.replace(services, store=SecretStore(aws.sm)))
    hits = inject(getattr(aws, client), operation, kind, nth=nth)
    if client in {"pca", "acm"} and operation in ISSUER_CALLS_RETRIED:
        # issue 18: the issuer rides out throttling within the step's time, and (botocore's own
        # retries being off on the issuer clients) retries a 5xx or a timeout itself, same token.
        run_steps(arn, token, [step])
        assert hits["failed"] == 1 and pending_has_value(aws, arn, token)
        run_steps(arn, token, STEPS[STEPS.index(step) + 1 :])
        assert current_version(aws, arn) == token
        assert_valid_bundle(aws, arn)
        return

    with pytest.raises(CertRotateError) as caught:
        run_steps(arn, token, [step])
    assert hits["failed"] == 1
    assert isinstance(caught.value, (AwsCallError, CertificateAuthorityError))
    if kind == "timeout" and (operation, step) in COMMITTING:
        # The service did the work and the answer was lost: what it holds is complete.
        assert current_version(aws, arn) in {before, token}
    else:
        assert current_version(aws, arn) == before  # AWSCURRENT unchanged
        assert pending_has_value(aws, arn, token) == pending_before  # nothing half-made was put

    run_steps(arn, token, STEPS[STEPS.index(step) :])  # Secrets Manager retries
    assert current_version(aws, arn) == token
    bundle, _ = assert_valid_bundle(aws, arn)
    assert (
        json.loads(aws.sm.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"])[
            "CERTIFICATE_SERIAL"
        ]
        == bundle.serial_hex
    )


def test_standard_retries_absorb_a_single_throttle(
    aws: Any, root_ca: str, make_secret: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the Lambda's own clients (standard retry mode), one throttle does not fail the step."""
    from rotation.aws import make_client
    from rotation.lifecycle.engine import build_services

    sm, pca, acm = make_client("secretsmanager"), make_client("acm-pca"), make_client("acm")
    monkeypatch.setattr(rotation.handler, "_services", build_services(sm, lambda r: pca, lambda r: acm))
    arn = make_secret(pca_secret(root_ca))
    hits = inject(pca, "IssueCertificate", "throttling")
    rotate(arn)
    assert hits["failed"] == 1 and hits["seen"] == 2
    assert_valid_bundle(aws, arn)
