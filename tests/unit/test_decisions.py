"""Pure decisions: the step guard, the renewal plan, the signing algorithm, event parsing."""

from __future__ import annotations

import datetime as dt

import pytest
from freezegun import freeze_time

from rotation.errors import EventError, NotPendingError, RotationDisabledError, SpecError, UnknownVersionError
from rotation.issuance.issuers.base import idempotency_token
from rotation.issuance.plan import Plan, is_due, renewal_window
from rotation.issuance.signing import signing_algorithm
from rotation.issuance.spec import KeyFamily
from rotation.lifecycle.guard import ROTATE_NOW_TAG, SecretMetadata, Verdict, check_step
from rotation.lifecycle.renewal import decide
from rotation.lifecycle.rotation_event import Step, parse_event
from tests.support.certs import LocalCA, spec_for

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:s-AbCdEf"


def metadata(enabled: bool = True, **versions: tuple[str, ...]) -> SecretMetadata:
    return SecretMetadata(arn=ARN, name="s", rotation_enabled=enabled, versions=versions)


def test_guard_follows_the_rotation_contract() -> None:
    assert check_step(metadata(v1=("AWSCURRENT",), t=("AWSPENDING",)), "t") is Verdict.PROCEED
    assert check_step(metadata(t=("AWSCURRENT", "AWSPENDING")), "t") is Verdict.ALREADY_CURRENT
    with pytest.raises(RotationDisabledError):
        check_step(metadata(False, t=("AWSPENDING",)), "t")
    with pytest.raises(UnknownVersionError, match="not a version"):
        check_step(metadata(v1=("AWSCURRENT",)), "t")
    with pytest.raises(NotPendingError, match="AWSPENDING"):
        check_step(metadata(v1=("AWSCURRENT",), t=("AWSPREVIOUS",)), "t")


def test_rotate_now_marker_is_one_shot_by_token() -> None:
    meta = SecretMetadata(ARN, "s", True, {}, tags={ROTATE_NOW_TAG: "token-1"})
    assert meta.rotate_now_requested("token-1")
    assert not meta.rotate_now_requested("token-2")


@pytest.mark.parametrize(
    ("family", "digest", "expected"),
    [
        (KeyFamily.RSA, "sha256", "SHA256WITHRSA"),
        (KeyFamily.RSA, "sha384", "SHA384WITHRSA"),
        (KeyFamily.RSA, "sha512", "SHA512WITHRSA"),
        (KeyFamily.ECDSA, "sha256", "SHA256WITHECDSA"),
        (KeyFamily.ECDSA, "sha384", "SHA384WITHECDSA"),
        (KeyFamily.ECDSA, "sha512", "SHA512WITHECDSA"),
    ],
)
def test_signing_algorithm_takes_the_ca_family_and_the_spec_hash(family: KeyFamily, digest: str, expected: str) -> None:
    assert signing_algorithm(spec_for(SIGNING_HASH=digest), family) == expected


def test_signing_family_must_match_the_ca_key() -> None:
    with pytest.raises(SpecError) as caught:
        signing_algorithm(spec_for(SIGNING_ALGORITHM="ECDSA"), KeyFamily.RSA)
    assert caught.value.field == "SIGNING_ALGORITHM"
    assert "RSA key" in str(caught.value) and "SHA256WITHRSA" in str(caught.value)


def test_idempotency_tokens_fit_both_services() -> None:
    token = "7f3c0e5e-8a0e-4b1a-9d5e-0123456789ab"
    acm = idempotency_token(token, "ca", length=32)
    pca = idempotency_token(token, "key", "0", length=36)
    assert acm.isalnum() and len(acm) == 32
    assert len(pca) == 36
    assert idempotency_token(token, "key", "0", length=36) == pca
    assert idempotency_token(token, "other-key", "0", length=36) != pca


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({}, "lacks Step, SecretId, ClientRequestToken"),
        ({"Step": "rotateSecret", "SecretId": "s", "ClientRequestToken": "t"}, "createSecret, setSecret"),
        ({"Step": "createSecret", "SecretId": "", "ClientRequestToken": "t"}, "lacks SecretId"),
    ],
)
def test_malformed_events_are_refused(event: dict[str, str], message: str) -> None:
    with pytest.raises(EventError, match=message):
        parse_event(event)


def test_events_parse() -> None:
    parsed = parse_event({"Step": "testSecret", "SecretId": "s", "ClientRequestToken": "t"})
    assert (parsed.step, parsed.secret_id, parsed.token) == (Step.TEST, "s", "t")


START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
CA = LocalCA()
BUNDLE = CA.issue(["app.example.internal"], not_before=START, lifetime=dt.timedelta(days=90))


def test_renewal_window_defaults_to_a_third_of_the_lifetime() -> None:
    assert renewal_window(BUNDLE, spec_for()) == dt.timedelta(days=30)
    assert renewal_window(BUNDLE, spec_for(RENEW_BEFORE_DAYS="10")) == dt.timedelta(days=10)


@pytest.mark.parametrize(
    ("moment", "due"), [("2026-03-01", False), ("2026-03-02T00:00:01", True), ("2026-05-01", True)]
)
def test_due_inside_the_window(moment: str, due: bool) -> None:
    with freeze_time(moment):
        assert is_due(BUNDLE, spec_for(), dt.datetime.now(dt.UTC)) is due


PCA_WHEN_DUE = {"RENEWAL_POLICY": "WHEN_DUE"}


@pytest.mark.parametrize(
    ("fields", "current", "fits", "rotate_now", "moment", "plan"),
    [
        ({}, None, False, False, "2026-01-02", Plan.ISSUE),
        ({}, BUNDLE, True, False, "2026-01-02", Plan.ISSUE),  # PCA default: ALWAYS
        (PCA_WHEN_DUE, BUNDLE, True, False, "2026-01-02", Plan.KEEP),
        (PCA_WHEN_DUE, BUNDLE, True, False, "2026-03-15", Plan.ISSUE),  # inside window
        (PCA_WHEN_DUE, BUNDLE, True, True, "2026-01-02", Plan.ISSUE),  # rotate now
        (PCA_WHEN_DUE, BUNDLE, False, False, "2026-01-02", Plan.ISSUE),  # spec drift
        ({**PCA_WHEN_DUE, "ENVIRONMENT": "test"}, BUNDLE, True, False, "2026-01-02", Plan.ISSUE),
        ({"CERTIFICATE_TYPE": "ACM_ISSUED"}, BUNDLE, True, False, "2026-01-02", Plan.REFRESH),
        ({"CERTIFICATE_TYPE": "ACM_ISSUED"}, BUNDLE, True, True, "2026-01-02", Plan.RENEW),
        ({"CERTIFICATE_TYPE": "ACM_ISSUED", "ENVIRONMENT": "TEST"}, BUNDLE, True, False, "2026-01-02", Plan.RENEW),
        ({"CERTIFICATE_TYPE": "ACM_ISSUED"}, None, False, False, "2026-01-02", Plan.ISSUE),
    ],
)
def test_renewal_plan(
    fields: dict[str, str], current: object, fits: bool, rotate_now: bool, moment: str, plan: Plan
) -> None:
    current_bundle = current
    if current is BUNDLE and fields.get("CERTIFICATE_TYPE") == "ACM_ISSUED":
        current_bundle = BUNDLE.__class__(
            BUNDLE.certificate_pem,
            BUNDLE.private_key_pem,
            BUNDLE.chain_pem,
            "arn:aws:acm:us-east-1:123456789012:certificate/abc",
        )
    with freeze_time(moment):
        decision = decide(
            spec_for(**fields),
            current_bundle,
            current_fits=lambda: fits,
            rotate_now=rotate_now,
            now=dt.datetime.now(dt.UTC),
        )
    assert decision.plan is plan, decision.reason


def test_a_forced_pca_issuance_does_not_parse_the_current_key() -> None:
    def must_not_run() -> bool:
        raise AssertionError("current_fits evaluated although the plan does not depend on it")

    decision = decide(spec_for(), BUNDLE, current_fits=must_not_run, rotate_now=False, now=START)
    assert decision.plan is Plan.ISSUE


def test_a_forced_acm_rotation_with_a_changed_spec_requests_anew() -> None:
    acm_current = BUNDLE.__class__(
        BUNDLE.certificate_pem, BUNDLE.private_key_pem, BUNDLE.chain_pem, "arn:aws:acm:us-east-1:1:certificate/a"
    )
    spec = spec_for(CERTIFICATE_TYPE="ACM_ISSUED", ENVIRONMENT="TEST")
    assert decide(spec, acm_current, current_fits=lambda: False, rotate_now=False, now=START).plan is Plan.ISSUE
    assert decide(spec, acm_current, current_fits=lambda: True, rotate_now=False, now=START).plan is Plan.RENEW
