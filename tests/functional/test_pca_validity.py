"""Issue 24 item 2: a policy ceiling on a Private CA that backdates, as AWS's does.

The emulated Private CA (:mod:`rotation.emulation.pca_issuance`) issues from ``Validity`` with each
unit's documented meaning and notBefore 60 minutes before the issue time; these tests prove it does,
that it refuses what the service refuses, and that the rotation then lives with it: a secret at its
rule's ceiling rotates, a request over it is refused before any IssueCertificate, and a certificate
refused after issuance is kept in the ledger (and revoked after the grace).
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from freezegun import freeze_time

import rotation.emulation.pca_issuance
from rotation.cli.status import certificate_history
from rotation.emulation.pki import create_ca
from rotation.errors import SpecError
from rotation.fleet.ledger import Ledger
from rotation.fleet.revocation import history_state
from tests.functional.helpers import assert_valid_bundle, calls_of
from tests.functional.test_issuance_authority import refused
from tests.functional.test_revocation import ledger, revoked, serial_of  # noqa: F401 - the ledger fixture
from tests.functional.test_trust_boundaries import acm_spec, current_version, pca_spec
from tests.support.driver import rotate, run_steps, stage_pending
from tests.support.policy import document, rule, use_policy

BACKDATE = timedelta(minutes=60)


def csr() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "a.example")]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("a.example")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM).decode()


def issue(aws: Any, ca: str, validity: dict[str, Any], **extra: Any) -> x509.Certificate:
    arn = aws.pca.issue_certificate(
        CertificateAuthorityArn=ca,
        Csr=csr().encode(),
        SigningAlgorithm=extra.pop("SigningAlgorithm", "SHA256WITHRSA"),
        TemplateArn="arn:aws:acm-pca:::template/EndEntityServerAuthCertificate/V1",
        Validity=validity,
        **extra,
    )["CertificateArn"]
    pem = aws.pca.get_certificate(CertificateAuthorityArn=ca, CertificateArn=arn)["Certificate"]
    return x509.load_pem_x509_certificate(pem.encode())


def error_code(caught: pytest.ExceptionInfo[ClientError]) -> str:
    return str(caught.value.response["Error"]["Code"])


ISSUED_AT = datetime(2027, 1, 31, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("validity", "not_after"),
    [
        ({"Type": "DAYS", "Value": 90}, datetime(2027, 5, 1, 10, 30, tzinfo=UTC)),
        ({"Type": "MONTHS", "Value": 1}, datetime(2027, 2, 28, 10, 30, tzinfo=UTC)),  # clamped to February's end
        ({"Type": "MONTHS", "Value": 13}, datetime(2028, 2, 29, 10, 30, tzinfo=UTC)),
        ({"Type": "YEARS", "Value": 2}, datetime(2029, 1, 31, 10, 30, tzinfo=UTC)),
        ({"Type": "ABSOLUTE", "Value": 1830297600}, datetime(2028, 1, 1, tzinfo=UTC)),
        ({"Type": "END_DATE", "Value": 280630235959}, datetime(2028, 6, 30, 23, 59, 59, tzinfo=UTC)),  # UTCTime
        ({"Type": "END_DATE", "Value": 20280630235959}, datetime(2028, 6, 30, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_the_emulated_ca_backdates_60_minutes_and_honours_each_validity_unit(
    aws: Any, root_ca: str, validity: dict[str, Any], not_after: datetime
) -> None:
    with freeze_time(ISSUED_AT):
        certificate = issue(aws, root_ca, validity)
    assert certificate.not_valid_before_utc == ISSUED_AT - BACKDATE
    assert certificate.not_valid_after_utc == not_after
    assert isinstance(certificate.signature_hash_algorithm, hashes.SHA256)  # as asked, not moto's SHA-512


def test_validity_not_before_replaces_the_backdating_and_must_be_absolute(aws: Any, root_ca: str) -> None:
    start = int(datetime(2027, 1, 1, tzinfo=UTC).timestamp())
    with freeze_time(ISSUED_AT):
        certificate = issue(
            aws, root_ca, {"Type": "DAYS", "Value": 10}, ValidityNotBefore={"Type": "ABSOLUTE", "Value": start}
        )
        assert certificate.not_valid_before_utc == datetime(2027, 1, 1, tzinfo=UTC)
        assert certificate.not_valid_after_utc == ISSUED_AT + timedelta(days=10)  # Validity is unaffected
        with pytest.raises(ClientError) as caught:
            issue(aws, root_ca, {"Type": "DAYS", "Value": 10}, ValidityNotBefore={"Type": "DAYS", "Value": 1})
    assert error_code(caught) == "ValidationException"


def test_validity_beyond_the_cas_own_not_after_is_refused(aws: Any, root_ca: str) -> None:
    issuing = create_ca(aws.pca, parent=root_ca, name="issuing CA")  # its certificate lives 1800 days
    issued_before = calls_of(aws, "IssueCertificate")
    for ca, too_long in ((root_ca, {"Type": "YEARS", "Value": 11}), (issuing, {"Type": "DAYS", "Value": 1801})):
        with pytest.raises(ClientError) as caught:
            issue(aws, ca, too_long)
        assert error_code(caught) == "ValidationException" and "after the issuing CA certificate" in str(caught.value)
    assert calls_of(aws, "IssueCertificate") == issued_before + 2
    assert issue(aws, issuing, {"Type": "DAYS", "Value": 1790}).not_valid_after_utc is not None


def test_a_signing_algorithm_of_the_other_family_is_refused_and_the_named_hash_is_used(aws: Any, root_ca: str) -> None:
    with pytest.raises(ClientError) as caught:
        issue(aws, root_ca, {"Type": "DAYS", "Value": 1}, SigningAlgorithm="SHA256WITHECDSA")
    assert error_code(caught) == "InvalidArgsException"
    certificate = issue(aws, root_ca, {"Type": "DAYS", "Value": 1}, SigningAlgorithm="SHA384WITHRSA")
    assert isinstance(certificate.signature_hash_algorithm, hashes.SHA384)
    ec_ca = create_ca(aws.pca, key="EC", name="EC CA")
    signed = issue(aws, ec_ca, {"Type": "DAYS", "Value": 1}, SigningAlgorithm="SHA512WITHECDSA")
    assert isinstance(signed.signature_hash_algorithm, hashes.SHA512)


def test_the_same_idempotency_token_within_five_minutes_returns_the_same_certificate(aws: Any, root_ca: str) -> None:
    def arn(token: str) -> str:
        return str(
            aws.pca.issue_certificate(
                CertificateAuthorityArn=root_ca,
                Csr=csr().encode(),
                SigningAlgorithm="SHA256WITHRSA",
                Validity={"Type": "DAYS", "Value": 1},
                IdempotencyToken=token,
            )["CertificateArn"]
        )

    with freeze_time(ISSUED_AT) as clock:
        first = arn("token-1")
        clock.tick(timedelta(minutes=4))
        assert arn("token-1") == first
        assert arn("token-2") != first
        clock.tick(timedelta(minutes=2))  # six minutes after the first: the token has timed out
        assert arn("token-1") != first


def test_a_disabled_ca_issues_nothing_and_a_bad_csr_is_malformed(aws: Any, root_ca: str) -> None:
    bad = base64.b64encode(b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")
    with pytest.raises(ClientError) as caught:
        aws.pca.issue_certificate(
            CertificateAuthorityArn=root_ca,
            Csr=bad,
            SigningAlgorithm="SHA256WITHRSA",
            Validity={"Type": "DAYS", "Value": 1},
        )
    assert error_code(caught) == "MalformedCSRException"
    aws.pca.update_certificate_authority(CertificateAuthorityArn=root_ca, Status="DISABLED")
    with pytest.raises(ClientError) as caught:
        issue(aws, root_ca, {"Type": "DAYS", "Value": 1})
    assert error_code(caught) == "InvalidStateException"


# --- the rotation at its ceiling ----------------------------------------------------------------


def ceiling(root_ca: str, days: int) -> None:
    use_policy(document(rule("ceiling", ["*"], [root_ca], dns_names=["."], max_validity_days=days)))


@pytest.mark.parametrize(
    ("validity", "days", "at"),
    [
        ("90", 90, None),  # a realistic 90-day rule: moto's 365 days used to break every rotation under it
        ("", 365, None),  # the default VALIDITY under a 365-day rule
        ("365 DAYS", 365, None),
        ("12 MONTHS", 365, datetime(2026, 3, 15, 9, tzinfo=UTC)),  # March 2026 to March 2027: 365 days
    ],
)
def test_a_secret_at_its_policy_ceiling_rotates_on_a_ca_that_backdates(
    aws: Any, root_ca: str, make_secret: Any, validity: str, days: int, at: datetime | None
) -> None:
    ceiling(root_ca, days)
    fields = {"VALIDITY": validity} if validity else {}
    arn = make_secret(pca_spec(root_ca, **fields))
    with freeze_time(at or datetime.now(UTC)):
        rotate(arn)
        bundle, _ = assert_valid_bundle(aws, arn)
    assert bundle.not_after - bundle.not_before == timedelta(days=days) + BACKDATE
    assert calls_of(aws, "IssueCertificate") == 1


@pytest.mark.parametrize(
    ("validity", "days", "at"),
    [
        ("91", 90, None),
        ("4 MONTHS", 90, None),
        ("12 MONTHS", 365, datetime(2027, 6, 15, 9, tzinfo=UTC)),  # 366 days: crosses 29 February 2028
        ("1 YEAR", 364, None),
    ],
)
def test_a_validity_over_the_ceiling_is_refused_before_any_issue_certificate(
    aws: Any, root_ca: str, make_secret: Any, validity: str, days: int, at: datetime | None
) -> None:
    ceiling(root_ca, days)
    arn = make_secret(pca_spec(root_ca, VALIDITY=validity))
    with freeze_time(at or datetime.now(UTC)):
        caught = refused(arn, aws)
    assert caught.field == "VALIDITY" and f"at most {days} days" in str(caught)  # type: ignore[attr-defined]
    assert calls_of(aws, "IssueCertificate") == 0


#: In the past: the TLS handshake of testSecret checks the certificate against the real clock.
START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=10)


def test_a_certificate_refused_after_issuance_is_in_the_ledger_and_revoked_after_the_grace(
    aws: Any,
    root_ca: str,
    make_secret: Any,
    ledger: Ledger,  # noqa: F811 - the fixture imported above
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ceiling(root_ca, 90)
    arn = make_secret(pca_spec(root_ca, VALIDITY="90", REVOKE_SUPERSEDED_AFTER="7 DAYS"))
    with freeze_time(START):
        rotate(arn)
    first = serial_of(aws, arn)
    before = current_version(aws.sm, arn)
    # A CA that backdates two hours instead of the documented one: the pre-check cannot know, the
    # certificate comes back 90 days and 2 hours long and the check after issuance refuses it.
    monkeypatch.setattr(rotation.emulation.pca_issuance, "BACKDATE", timedelta(hours=2))
    with freeze_time(START + timedelta(days=1)):
        token = stage_pending(arn)
        with pytest.raises(SpecError, match="lives longer than the rule allows"):
            run_steps(arn, token)
    assert current_version(aws.sm, arn) == before and serial_of(aws, arn) == first
    (refused_entry,) = [e for e in ledger.entries(arn) if e.serial != first]
    assert refused_entry.refused_at == START + timedelta(days=1) and refused_entry.version_id == token
    assert "lives longer than the rule allows" in refused_entry.refusal and "PolicyError" in refused_entry.refusal
    assert refused_entry.superseded_at == refused_entry.refused_at  # never current, never staged
    assert history_state(refused_entry, START + timedelta(days=1)) == "refused, valid"
    (shown,) = [r for r in certificate_history(ledger, arn, START) if r["serial"] == refused_entry.serial]
    assert shown["state"] == "refused, valid" and "lives longer" in shown["reason"]  # certrotate status NAME
    monkeypatch.setattr(rotation.emulation.pca_issuance, "BACKDATE", BACKDATE)
    with freeze_time(START + timedelta(days=9)):  # the next successful rotation, past the 7-day grace
        rotate(arn)
    assert refused_entry.serial in revoked(root_ca)
    assert revoked(root_ca)[refused_entry.serial] == "SUPERSEDED"


def test_a_90_day_rule_rotates_in_the_sandbox(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox as ``certrotate sandbox`` provisions it; the operator stores a 90-day policy in the
    parameter it exports and RotateSecret (moto's server, our rotation function) issues under it."""
    from rotation.cli.sandbox import provision
    from tests.support.cli import client, rotated

    exports = provision(endpoint, "us-east-1", ledger=False, workload_role="arn:aws:iam::444455556666:role/w")
    parameter = exports["CERTROTATE_POLICY_PARAMETER"]
    monkeypatch.setenv("CERTROTATE_POLICY_PARAMETER", parameter)
    ca = exports["CA_ARN"]
    policy = document(rule("short-lived", ["team/*"], [ca], dns_names=[".example.internal"], max_validity_days=90))
    client(endpoint, "ssm").put_parameter(Name=parameter, Type="String", Value=policy)
    arn = rotated(endpoint, "team/web", ca, VALIDITY="90")
    fields = json.loads(
        client(endpoint, "secretsmanager").get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"]
    )
    certificate = x509.load_pem_x509_certificate(fields["CERTIFICATE_PEM"].encode())
    assert certificate.not_valid_after_utc - certificate.not_valid_before_utc == timedelta(days=90) + BACKDATE


def test_a_validity_past_the_issuing_cas_end_is_refused_before_issue_certificate(
    aws: Any, root_ca: str, make_secret: Any
) -> None:
    issuing = create_ca(aws.pca, parent=root_ca, name="issuing CA")  # its certificate lives 1800 days
    use_policy(document(rule("long", ["*"], [issuing], dns_names=["."], max_validity_days=3650)))
    arn = make_secret(pca_spec(issuing, VALIDITY="1801"))
    caught = refused(arn, aws)
    assert caught.field == "VALIDITY" and "after the issuing CA certificate" in str(caught)  # type: ignore[attr-defined]
    assert calls_of(aws, "IssueCertificate") == 0
    fits = make_secret(pca_spec(issuing, VALIDITY="1790"))
    rotate(fits)
    assert assert_valid_bundle(aws, fits)[0].serial_hex


def test_acm_issued_under_a_rule_shorter_than_acms_395_days_is_refused_before_request_certificate(
    aws: Any, root_ca: str, acm_chain: Any, make_secret: Any
) -> None:
    use_policy(document(rule("short", ["*"], [root_ca], dns_names=["."], acm_issued=True, max_validity_days=90)))
    arn = make_secret(acm_spec(root_ca))
    caught = refused(arn, aws)
    assert caught.field == "CERTIFICATE_TYPE" and "395 days" in str(caught)  # type: ignore[attr-defined]
    assert calls_of(aws, "RequestCertificate") == calls_of(aws, "IssueCertificate") == 0
