"""The secret's writer and the tag writer, played as attackers (issue 8).

Each test writes only what that actor can write (the secret's value, a version under the pending
token, tags on an ACM certificate) and proves the rotation refuses: it never issues a CA
certificate, never exports or renews a certificate the secret's rotation did not request, never
rotates a secret that is not certrotate's, and never moves AWSCURRENT to an unverified bundle.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from moto.core import DEFAULT_ACCOUNT_ID
from moto.secretsmanager.models import secretsmanager_backends

import rotation.issuance.spec
import rotation.issuance.spec.fields
from rotation.cli import main as certrotate
from rotation.emulation.certificates import key_usage, subject_alternative_names
from rotation.emulation.pki import moto_ca
from rotation.emulation.rotation_service import LAMBDA_ARN, rotation_function_in_moto
from rotation.errors import SpecError, VerificationError
from rotation.event_handlers import acm_certificate_available
from rotation.issuance.issuers.acm import OWNER_TAG
from rotation.issuance.keys import private_key_pem
from tests.functional.helpers import calls_of
from tests.support.driver import replace_current, rotate, run_steps, secret_fields, stage_pending, stages
from tests.support.policy import document, rule, use_policy

NAME = "app.example.internal"
ROOT_TEMPLATE = "arn:aws:acm-pca:::template/RootCACertificate/V1"
CA_TEMPLATES = [
    ROOT_TEMPLATE,
    "arn:aws:acm-pca:::template/SubordinateCACertificate_PathLen0/V1",
    "arn:aws:acm-pca:::template/SubordinateCACertificate_PathLen3_APICSRPassthrough/V1",
    "arn:aws:acm-pca:::template/BlankSubordinateCACertificate_PathLen0_CSRPassthrough/V1",
    "arn:aws:acm-pca:::template/CodeSigningCertificate/V1",
    "arn:aws:acm-pca:::template/EndEntityCertificate/V2",
]


def pca_spec(ca: str, **fields: Any) -> dict[str, Any]:
    return {"CERTIFICATE_TYPE": "PCA_ISSUED", "CA_ARN": ca, "COMMON_NAME": NAME, **fields}


def acm_spec(ca: str, **fields: Any) -> dict[str, Any]:
    return {"CERTIFICATE_TYPE": "ACM_ISSUED", "CA_ARN": ca, "COMMON_NAME": "server1.example", **fields}


def current_version(sm: Any, arn: str) -> str:
    return next(v for v, s in stages(sm, arn).items() if "AWSCURRENT" in s)


def assert_nothing_staged(sm: Any, arn: str, token: str, current_before: str) -> None:
    assert current_version(sm, arn) == current_before
    with pytest.raises(sm.exceptions.ResourceNotFoundException):
        sm.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")


def signed_by_ca(
    ca_arn: str, *, ca: bool = False, cert_sign: bool = False, eku: list[Any] | None = None
) -> tuple[str, str]:
    """A certificate for NAME signed by the moto CA, with the given extensions; (cert PEM, key PEM)."""
    issuer = moto_ca(ca_arn)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    usage = key_usage(ca=cert_sign)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)]))
        .issuer_name(issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(subject_alternative_names([NAME]), critical=False)
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    cert = builder.sign(issuer.key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM).decode(), private_key_pem(key)


def put_pending(sm: Any, arn: str, token: str, value: str) -> None:
    """The secret's writer stores a value under the pending version before (or instead of) createSecret."""
    sm.put_secret_value(SecretId=arn, ClientRequestToken=token, SecretString=value, VersionStages=["AWSPENDING"])


# --- 1. a secret can never ask for a CA certificate -------------------------------------------


@pytest.mark.parametrize("template", CA_TEMPLATES)
def test_a_secret_cannot_ask_for_a_ca_or_non_server_template(
    aws: Any, root_ca: str, make_secret: Any, template: str
) -> None:
    arn = make_secret(pca_spec(root_ca, TEMPLATE_ARN=template, KEY_ALGORITHM="EC_prime256v1"))
    before = current_version(aws.sm, arn)
    token = stage_pending(arn)
    with pytest.raises(SpecError) as caught:
        run_steps(arn, token)
    message = str(caught.value)
    assert message.startswith(f"TEMPLATE_ARN={template!r}")
    assert "EndEntityCertificate/V1" in message and "EndEntityServerAuthCertificate_APICSRPassthrough/V1" in message
    assert calls_of(aws, "IssueCertificate") == 0
    assert_nothing_staged(aws.sm, arn, token, before)


def test_a_ca_certificate_from_the_issuer_is_never_staged(
    aws: Any, root_ca: str, make_secret: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even if a CA template got past the spec and the policy, createSecret's verification refuses the result."""
    monkeypatch.setattr(  # where the TEMPLATE_ARN reader looks the templates up
        rotation.issuance.spec.fields,
        "END_ENTITY_TEMPLATES",
        (*rotation.issuance.spec.END_ENTITY_TEMPLATES, "RootCACertificate/V1"),
    )
    use_policy(document(rule("all", ["*"], [root_ca], dns_names=["."], client_auth=True)))
    arn = make_secret(pca_spec(root_ca, TEMPLATE_ARN=ROOT_TEMPLATE))
    before = current_version(aws.sm, arn)
    token = stage_pending(arn)
    with pytest.raises(VerificationError) as caught:
        run_steps(arn, token, ["createSecret"])
    assert caught.value.check == "end-entity"
    assert_nothing_staged(aws.sm, arn, token, before)


PENDING_LEAVES = {
    "CA:TRUE": {"ca": True},
    "keyCertSign": {"cert_sign": True},
    "clientAuth only": {"eku": [ExtendedKeyUsageOID.CLIENT_AUTH]},
}


@pytest.mark.parametrize("extensions", PENDING_LEAVES.values(), ids=PENDING_LEAVES.keys())
def test_test_and_finish_refuse_a_pending_certificate_that_is_no_tls_server_leaf(
    aws: Any, root_ca: str, make_secret: Any, extensions: dict[str, Any]
) -> None:
    arn = make_secret(pca_spec(root_ca, KEY_ALGORITHM="EC_prime256v1"))
    rotate(arn)
    before = current_version(aws.sm, arn)
    cert, key = signed_by_ca(root_ca, **extensions)
    token = stage_pending(arn)
    forged = {**secret_fields(aws.sm, arn), "CERTIFICATE_PEM": cert, "PRIVATE_KEY_PEM": key}
    put_pending(aws.sm, arn, token, json.dumps(forged))
    for step in ("testSecret", "finishSecret"):
        with pytest.raises(VerificationError) as caught:
            run_steps(arn, token, [step])
        assert caught.value.check == "end-entity"
    assert current_version(aws.sm, arn) == before


def test_create_secret_command_refuses_a_ca_template(aws: Any, root_ca: str, capfd: pytest.CaptureFixture[str]) -> None:
    code = certrotate(
        [
            *("create-secret", "web", "--type", "PCA_ISSUED", "--ca-arn", root_ca),
            *("--common-name", NAME, "--template-arn", ROOT_TEMPLATE),
        ]
    )
    assert code == 3
    assert f"TEMPLATE_ARN={ROOT_TEMPLATE!r}" in capfd.readouterr().err
    assert aws.sm.list_secrets()["SecretList"] == []


# --- 2. CERTIFICATE_ARN is never trusted -----------------------------------------------------


def two_acm_secrets(aws: Any, root_ca: str, make_secret: Any, **fields: str) -> tuple[str, str]:
    victim = make_secret(acm_spec(root_ca), name="team-a/web")
    attacker = make_secret(acm_spec(root_ca, **fields), name="team-b/web")
    rotate(victim)
    rotate(attacker)
    return victim, attacker


@pytest.mark.parametrize("environment", ["DEV", "TEST"])
def test_a_secret_pointing_at_another_secrets_certificate_gets_nothing(
    aws: Any, root_ca: str, acm_chain: Any, make_secret: Any, environment: str
) -> None:
    """ENVIRONMENT DEV: the serial differs, taken for ACM's renewal → export; TEST: a forced renewal."""
    victim, attacker = two_acm_secrets(aws, root_ca, make_secret, ENVIRONMENT=environment)
    victim_arn = secret_fields(aws.sm, victim)["CERTIFICATE_ARN"]
    victim_key = secret_fields(aws.sm, victim)["PRIVATE_KEY_PEM"]
    tags_before = aws.acm.list_tags_for_certificate(CertificateArn=victim_arn)["Tags"]
    replace_current(aws.sm, attacker, json.dumps({**secret_fields(aws.sm, attacker), "CERTIFICATE_ARN": victim_arn}))
    before = current_version(aws.sm, attacker)
    aws.calls.clear()
    acm_chain["count"] = 0
    token = stage_pending(attacker)
    with pytest.raises(SpecError) as caught:
        run_steps(attacker, token)
    assert str(caught.value).startswith(f"CERTIFICATE_ARN={victim_arn!r}")
    assert calls_of(aws, "ExportCertificate") == calls_of(aws, "AddTagsToCertificate") == 0
    assert acm_chain["count"] == 0  # not renewed
    assert aws.acm.list_tags_for_certificate(CertificateArn=victim_arn)["Tags"] == tags_before
    assert_nothing_staged(aws.sm, attacker, token, before)
    assert victim_key not in json.dumps(secret_fields(aws.sm, attacker))


def test_replaying_another_rotations_token_requests_a_certificate_of_ones_own(
    aws: Any, root_ca: str, acm_chain: Any, make_secret: Any
) -> None:
    """RotateSecret lets its caller choose the ClientRequestToken; ACM idempotency must not hand over.

    ACM returns the certificate of an earlier request with the same IdempotencyToken within an hour;
    moto only does so when the tags are equal too, so the token itself is asserted to differ.
    """
    tokens: list[str] = []
    aws.acm.meta.events.register(
        "provide-client-params.acm.RequestCertificate", lambda params, **_: tokens.append(params["IdempotencyToken"])
    )
    victim = make_secret(acm_spec(root_ca), name="team-a/web")
    attacker = make_secret(acm_spec(root_ca), name="team-b/web")
    token = rotate(victim)
    victim_fields = secret_fields(aws.sm, victim)
    stage_pending(attacker, token)
    run_steps(attacker, token)
    stolen = secret_fields(aws.sm, attacker)
    assert len(tokens) == 2 and tokens[0] != tokens[1]
    assert stolen["CERTIFICATE_ARN"] != victim_fields["CERTIFICATE_ARN"]
    assert stolen["PRIVATE_KEY_PEM"] != victim_fields["PRIVATE_KEY_PEM"]


def test_without_certificate_arn_a_secret_requests_its_own_certificate(
    aws: Any, root_ca: str, acm_chain: Any, make_secret: Any
) -> None:
    """The way out the ownership error names: drop CERTIFICATE_ARN and a new certificate is requested."""
    victim, attacker = two_acm_secrets(aws, root_ca, make_secret)
    victim_arn = secret_fields(aws.sm, victim)["CERTIFICATE_ARN"]
    spec_only = {k: v for k, v in secret_fields(aws.sm, attacker).items() if k in acm_spec(root_ca)}
    replace_current(aws.sm, attacker, json.dumps(spec_only))
    rotate(attacker)
    own = secret_fields(aws.sm, attacker)["CERTIFICATE_ARN"]
    assert own != victim_arn
    tags = aws.acm.list_tags_for_certificate(CertificateArn=own)["Tags"]
    assert {"Key": OWNER_TAG, "Value": attacker} in tags


# --- 3. tags on a certificate do not choose which secrets rotate ------------------------------


def tag_as_holder(aws: Any, certificate_arn: str, secret_arn: str) -> None:
    """A tag writer names ``secret_arn`` on the certificate, under every key a holder was ever read from."""
    aws.acm.add_tags_to_certificate(
        CertificateArn=certificate_arn,
        Tags=[
            {"Key": OWNER_TAG, "Value": secret_arn},
            {"Key": "certrotate:secret:0123456789abcdef", "Value": secret_arn},
        ],
    )


def assert_certificate_available_rotates_nothing(aws: Any, certificate_arn: str) -> None:
    """ACM's renewal event for the certificate starts no rotation (RotateSecret is never called)."""
    seen: list[str] = []
    aws.sm.meta.events.register(
        "provide-client-params.secrets-manager.RotateSecret", lambda params, **_: seen.append(params["SecretId"])
    )
    event = {"source": "aws.acm", "detail-type": "ACM Certificate Available", "resources": [certificate_arn]}
    with rotation_function_in_moto() as failures:
        rotated = acm_certificate_available.rotate_holders(event, aws.acm, aws.sm, LAMBDA_ARN)
    assert rotated == [] and seen == [] and failures == []


def test_a_tag_naming_an_unrelated_secret_does_not_rotate_it(
    aws: Any, root_ca: str, acm_chain: Any, make_secret: Any
) -> None:
    owner = make_secret(acm_spec(root_ca))
    rotate(owner)
    certificate_arn = secret_fields(aws.sm, owner)["CERTIFICATE_ARN"]
    database = make_secret({"engine": "postgres", "password": "not-a-certificate"}, name="prod/db")
    # A database secret with its own rotation function (set on moto's backend: moto's RotateSecret
    # wants to find and run the Lambda).
    backend = secretsmanager_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].secrets[database]
    backend.rotation_enabled = True
    backend.rotation_lambda_arn = "arn:aws:lambda:us-east-1:123456789012:function:db-rotation"
    tag_as_holder(aws, certificate_arn, database)
    assert_certificate_available_rotates_nothing(aws, certificate_arn)


def test_a_tag_naming_another_certrotate_secret_does_not_rotate_it(
    aws: Any, root_ca: str, acm_chain: Any, make_secret: Any
) -> None:
    owner, other = (make_secret(acm_spec(root_ca)) for _ in range(2))
    rotate(owner)
    rotate(other)
    certificate_arn = secret_fields(aws.sm, owner)["CERTIFICATE_ARN"]
    tag_as_holder(aws, certificate_arn, other)  # other's CERTIFICATE_ARN is not this certificate
    assert_certificate_available_rotates_nothing(aws, certificate_arn)


# --- 4. finishSecret promotes only a verified bundle -------------------------------------------


def test_finish_refuses_garbage_written_under_the_pending_token(aws: Any, root_ca: str, make_secret: Any) -> None:
    arn = make_secret(pca_spec(root_ca, KEY_ALGORITHM="EC_prime256v1"))
    rotate(arn)
    before = current_version(aws.sm, arn)
    token = stage_pending(arn)
    put_pending(aws.sm, arn, token, '{"CERTIFICATE_PEM": "garbage"')
    run_steps(arn, token, ["createSecret", "setSecret"])  # createSecret keeps what the token already holds
    for step in ("testSecret", "finishSecret"):
        with pytest.raises(SpecError, match="SecretString"):
            run_steps(arn, token, [step])
    assert current_version(aws.sm, arn) == before


def test_finish_before_create_refuses_a_version_without_a_value(aws: Any, root_ca: str, make_secret: Any) -> None:
    arn = make_secret(pca_spec(root_ca, KEY_ALGORITHM="EC_prime256v1"))
    rotate(arn)
    before = current_version(aws.sm, arn)
    token = stage_pending(arn)
    with pytest.raises(VerificationError) as caught:
        run_steps(arn, token, ["finishSecret"])
    assert caught.value.check == "pending"
    assert current_version(aws.sm, arn) == before


@pytest.mark.parametrize("tamper", ["other key", "other CA", "no certificate"])
def test_finish_refuses_a_pending_bundle_that_does_not_hold_together(
    aws: Any, root_ca: str, make_secret: Any, tamper: str
) -> None:
    arn = make_secret(pca_spec(root_ca, KEY_ALGORITHM="EC_prime256v1"))
    rotate(arn)
    before = current_version(aws.sm, arn)
    fields = secret_fields(aws.sm, arn)
    if tamper == "other key":
        fields["PRIVATE_KEY_PEM"] = private_key_pem(ec.generate_private_key(ec.SECP256R1()))
    elif tamper == "other CA":
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)])
        now = dt.datetime.now(dt.UTC)
        self_signed = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(1)
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256())
        )
        fields.update(
            CERTIFICATE_PEM=self_signed.public_bytes(serialization.Encoding.PEM).decode(),
            PRIVATE_KEY_PEM=private_key_pem(key),
            CERTIFICATE_CHAIN_PEM="",
        )
    else:
        fields = {k: v for k, v in fields.items() if k not in ("CERTIFICATE_PEM", "PRIVATE_KEY_PEM")}
    token = stage_pending(arn)
    put_pending(aws.sm, arn, token, json.dumps(fields))
    with pytest.raises(VerificationError):
        run_steps(arn, token, ["finishSecret"])
    assert current_version(aws.sm, arn) == before


# --- 5. certificate fields hold certificates only ---------------------------------------------


@pytest.mark.parametrize("field", ["CERTIFICATE_PEM", "CERTIFICATE_CHAIN_PEM"])
def test_a_private_key_inside_a_certificate_field_is_refused(
    aws: Any, root_ca: str, make_secret: Any, field: str, capfd: pytest.CaptureFixture[str]
) -> None:
    arn = make_secret(pca_spec(root_ca, KEY_ALGORITHM="EC_prime256v1"))
    rotate(arn)
    before = current_version(aws.sm, arn)
    fields = secret_fields(aws.sm, arn)
    fields[field] = fields[field] + fields["PRIVATE_KEY_PEM"]
    token = stage_pending(arn)
    put_pending(aws.sm, arn, token, json.dumps(fields))
    for step in ("testSecret", "finishSecret"):
        with pytest.raises(VerificationError) as caught:
            run_steps(arn, token, [step])
        assert caught.value.check == field
        assert "PRIVATE KEY" not in str(caught.value) and "BEGIN" not in str(caught.value)
    assert current_version(aws.sm, arn) == before
    capfd.readouterr()


# --- 6. names that cannot be served are refused before anything is issued ----------------------

UNSERVABLE: dict[str, dict[str, Any]] = {
    "newline inside a label": {"COMMON_NAME": "app\n.example.internal"},
    "newline after a SAN": {"SUBJECT_ALTERNATIVE_NAMES": ["www.example.internal\n", "x.example\n.internal"]},
    "IPv6 zone": {"SUBJECT_ALTERNATIVE_NAMES": ["fe80::1%eth0"]},
    "bare TLD wildcard": {"SUBJECT_ALTERNATIVE_NAMES": ["*.internal"]},
    "wildcard not leftmost": {"SUBJECT_ALTERNATIVE_NAMES": ["www.*.example.internal"]},
    "10,000 SANs": {"SUBJECT_ALTERNATIVE_NAMES": [f"h{i}.example.internal" for i in range(10_000)]},
    "over 64 KB": {
        "SUBJECT_ALTERNATIVE_NAMES": [f"{'a' * 60}.{'b' * 60}.{'c' * 60}.{'d' * 60}.{i:04d}" for i in range(99)]
    },
}


@pytest.mark.parametrize("fields", UNSERVABLE.values(), ids=UNSERVABLE.keys())
def test_unservable_names_are_refused_before_issuance(
    aws: Any, root_ca: str, make_secret: Any, fields: dict[str, Any]
) -> None:
    arn = make_secret(pca_spec(root_ca, **fields))
    before = current_version(aws.sm, arn)
    token = stage_pending(arn)
    with pytest.raises(SpecError) as caught:
        run_steps(arn, token, ["createSecret"])
    assert caught.value.field in ("COMMON_NAME", "SUBJECT_ALTERNATIVE_NAMES", "SecretString")
    assert calls_of(aws, "IssueCertificate") == 0
    assert_nothing_staged(aws.sm, arn, token, before)


def test_deeply_nested_json_is_a_clear_error(aws: Any, root_ca: str, make_secret: Any) -> None:
    arn = make_secret("[" * 100_000 + "]" * 100_000)
    token = stage_pending(arn)
    with pytest.raises(SpecError, match="SecretString"):
        run_steps(arn, token, ["createSecret"])
    assert calls_of(aws, "IssueCertificate") == 0


def test_renew_before_days_as_a_json_number_rotates(aws: Any, root_ca: str, make_secret: Any) -> None:
    arn = make_secret(
        pca_spec(root_ca, KEY_ALGORITHM="EC_prime256v1", RENEWAL_POLICY="WHEN_DUE", RENEW_BEFORE_DAYS=0.25)
    )
    rotate(arn)
    assert secret_fields(aws.sm, arn)["RENEW_BEFORE_DAYS"] == 0.25


def test_a_wildcard_certificate_passes_the_handshake_with_a_name_under_it(
    aws: Any, root_ca: str, make_secret: Any
) -> None:
    arn = make_secret(pca_spec(root_ca, COMMON_NAME="*.apps.example.internal", KEY_ALGORITHM="EC_prime256v1"))
    rotate(arn)
    assert secret_fields(aws.sm, arn)["CERTIFICATE_SERIAL"]
