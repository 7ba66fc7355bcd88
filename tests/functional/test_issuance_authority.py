"""Issue 15, played as attackers: who may obtain which certificate, and on whose word.

Two teams (``team-a/*``, ``team-b/*``), two CAs, the operator's issuance policy; a writer of one
secret who may also tag ACM certificates. Each test writes only what that actor can write and
proves the rotation refuses, before anything is issued where it can, with AWSCURRENT unchanged.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from rotation.emulation.pki import create_ca
from rotation.errors import CertRotateError, SpecError, VerificationError
from rotation.fleet.ledger import Ledger
from rotation.issuance.issuers.acm import OWNER_TAG
from rotation.issuance.keys import private_key_pem
from tests.conftest import LEDGER_TABLE
from tests.functional.helpers import calls_of
from tests.functional.test_trust_boundaries import (
    acm_spec,
    assert_nothing_staged,
    current_version,
    pca_spec,
    put_pending,
    signed_by_ca,
)
from tests.support.driver import replace_current, rotate, run_steps, secret_fields, stage_pending

#: A private key as a writer might paste it into any field.
PASTED_KEY = private_key_pem(ec.generate_private_key(ec.SECP256R1()))


def two_teams(aws: Any, root_ca: str) -> tuple[str, str]:
    """Team A's CA (the fixture's) and team B's production CA, with the policy that separates them."""
    from tests.support.policy import document, rule, use_policy

    team_b_ca = create_ca(aws.pca, name="team B production CA")
    use_policy(
        document(
            rule("team-a", ["team-a/*"], [root_ca], dns_names=["*.a.example.internal", "server1.example"]),
            rule("team-b", ["team-b/*"], [team_b_ca], dns_names=[".b.example.internal"], acm_issued=True),
        )
    )
    return root_ca, team_b_ca


def refused(arn: str, aws: Any, expected: type[CertRotateError] = SpecError) -> CertRotateError:
    before = current_version(aws.sm, arn)
    aws.calls.clear()
    token = stage_pending(arn)
    with pytest.raises(expected) as caught:
        run_steps(arn, token)
    assert_nothing_staged(aws.sm, arn, token, before)
    return caught.value


# --- 1. ownership of an ACM certificate comes from the ledger, never from a tag -----------------


def test_a_retagged_acm_certificate_is_never_exported_into_the_tag_writers_secret(
    aws: Any, root_ca: str, acm_chain: Any, make_secret: Any
) -> None:
    victim = make_secret(acm_spec(root_ca), name="team-a/web")
    attacker = make_secret(acm_spec(root_ca), name="team-b/web")
    rotate(victim)
    rotate(attacker)
    victim_fields = secret_fields(aws.sm, victim)
    victim_arn = victim_fields["CERTIFICATE_ARN"]
    # The attacker may tag ACM certificates: the victim's now names the attacker's secret.
    aws.acm.remove_tags_from_certificate(CertificateArn=victim_arn, Tags=[{"Key": OWNER_TAG, "Value": victim}])
    aws.acm.add_tags_to_certificate(CertificateArn=victim_arn, Tags=[{"Key": OWNER_TAG, "Value": attacker}])
    replace_current(aws.sm, attacker, json.dumps({**secret_fields(aws.sm, attacker), "CERTIFICATE_ARN": victim_arn}))
    caught = refused(attacker, aws)
    assert str(caught).startswith(f"CERTIFICATE_ARN={victim_arn!r}") and "ledger" in str(caught)
    assert calls_of(aws, "ExportCertificate") == calls_of(aws, "RenewCertificate") == 0
    assert victim_fields["PRIVATE_KEY_PEM"] not in json.dumps(secret_fields(aws.sm, attacker))
    ledger = Ledger(aws.dynamodb, LEDGER_TABLE)
    assert victim_fields["CERTIFICATE_SERIAL"] not in {e.serial for e in ledger.entries(attacker)}
    # The victim's own rotation is not broken by the tag writer: the ledger, not the tag, says it is theirs.
    rotate(victim)
    assert secret_fields(aws.sm, victim)["CERTIFICATE_ARN"] == victim_arn


def test_the_ledger_records_the_certificate_arn_this_secrets_request_returned(
    aws: Any, root_ca: str, acm_chain: Any, make_secret: Any
) -> None:
    arn = make_secret(acm_spec(root_ca), name="team-a/web")
    rotate(arn)
    certificate_arn = secret_fields(aws.sm, arn)["CERTIFICATE_ARN"]
    items = aws.dynamodb.query(
        TableName=LEDGER_TABLE,
        KeyConditionExpression="SecretArn = :a",
        ExpressionAttributeValues={":a": {"S": arn}},
    )["Items"]
    assert [i["CertificateArn"]["S"] for i in items] == [certificate_arn]


def test_an_entry_older_than_certificate_arns_migrates_by_its_serial(
    aws: Any, root_ca: str, acm_chain: Any, make_secret: Any
) -> None:
    """The one-time migration: an entry without CertificateArn proves ownership by ACM's current serial."""
    arn = make_secret(acm_spec(root_ca), name="team-a/web")
    rotate(arn)
    for item in aws.dynamodb.scan(TableName=LEDGER_TABLE)["Items"]:
        aws.dynamodb.update_item(
            TableName=LEDGER_TABLE,
            Key={"SecretArn": item["SecretArn"], "Serial": item["Serial"]},
            UpdateExpression="REMOVE CertificateArn",
        )
    before = secret_fields(aws.sm, arn)["CERTIFICATE_ARN"]
    replace_current(aws.sm, arn, json.dumps({**secret_fields(aws.sm, arn), "ENVIRONMENT": "TEST"}))
    rotate(arn)  # a forced renewal of the certificate the legacy entry proves is this secret's
    assert secret_fields(aws.sm, arn)["CERTIFICATE_ARN"] == before


def test_without_a_ledger_acm_issued_is_refused_before_any_request(
    aws: Any, root_ca: str, acm_chain: Any, make_secret: Any
) -> None:
    import dataclasses

    import rotation.handler
    from rotation.issuance.issuers import AcmIssuer
    from rotation.issuance.spec import CertificateType

    services = rotation.handler.services()
    issuers = {**services.issuers, CertificateType.ACM_ISSUED: AcmIssuer(lambda region: aws.acm, None)}
    rotation.handler._services = dataclasses.replace(services, ledger=None, issuers=issuers)
    arn = make_secret(acm_spec(root_ca))
    caught = refused(arn, aws)
    assert caught.field == "CERTIFICATE_TYPE" and "ledger" in str(caught)  # type: ignore[attr-defined]
    assert calls_of(aws, "RequestCertificate") == 0


# --- 2. a team gets only its CAs, names and lifetimes ---------------------------------------


def test_a_team_cannot_use_another_teams_ca(aws: Any, root_ca: str, make_secret: Any) -> None:
    _team_a_ca, team_b_ca = two_teams(aws, root_ca)
    arn = make_secret(pca_spec(team_b_ca, COMMON_NAME="web.a.example.internal"), name="team-a/web")
    caught = refused(arn, aws)
    text = str(caught)
    assert text.startswith(f"CA_ARN={team_b_ca!r}") and "'team-a'" in text and root_ca in text
    assert calls_of(aws, "IssueCertificate") == 0


def test_a_team_cannot_obtain_a_name_outside_its_rule(aws: Any, root_ca: str, make_secret: Any) -> None:
    two_teams(aws, root_ca)
    arn = make_secret(
        pca_spec(root_ca, COMMON_NAME="web.a.example.internal", SUBJECT_ALTERNATIVE_NAMES="pay.b.example.internal"),
        name="team-a/web",
    )
    caught = refused(arn, aws)
    assert str(caught).startswith("SUBJECT_ALTERNATIVE_NAMES='pay.b.example.internal'")
    assert "*.a.example.internal" in str(caught)
    assert calls_of(aws, "IssueCertificate") == 0


REFUSED_FIELDS = {
    "key algorithm": ({"KEY_ALGORITHM": "RSA_4096"}, "KEY_ALGORITHM", "EC_prime256v1"),
    "key reuse": ({"REUSE_PRIVATE_KEY": "true"}, "REUSE_PRIVATE_KEY", "false"),
    "too many names": (
        {"SUBJECT_ALTERNATIVE_NAMES": "x.c.example,y.c.example"},
        "SUBJECT_ALTERNATIVE_NAMES",
        "at most 2",
    ),
    "IPv6 outside the range": ({"SUBJECT_ALTERNATIVE_NAMES": "fd01::1"}, "SUBJECT_ALTERNATIVE_NAMES", "fd00::/16"),
    "IPv4-mapped address": (
        {"SUBJECT_ALTERNATIVE_NAMES": "::ffff:10.0.0.1"},
        "SUBJECT_ALTERNATIVE_NAMES",
        "10.0.0.0/8",
    ),
    "validity": ({"VALIDITY": "91"}, "VALIDITY", "at most 90 days"),
}


@pytest.mark.parametrize(("fields", "field", "allowed"), REFUSED_FIELDS.values(), ids=REFUSED_FIELDS.keys())
def test_every_field_outside_the_rule_is_refused_before_issuance(
    aws: Any, root_ca: str, make_secret: Any, fields: dict[str, str], field: str, allowed: str
) -> None:
    from tests.support.policy import document, rule, use_policy

    use_policy(
        document(
            rule(
                "team-c",
                ["team-c/*"],
                [root_ca],
                dns_names=[".c.example"],
                ip_ranges=["fd00::/16", "10.0.0.0/8"],
                key_algorithms=["EC_prime256v1", "RSA_2048"],
                max_names=2,
                max_validity_days=90,
            )
        )
    )
    arn = make_secret(pca_spec(root_ca, COMMON_NAME="web.c.example", **fields), name="team-c/web")
    caught = refused(arn, aws)
    assert caught.field == field and "'team-c'" in str(caught) and allowed in str(caught)  # type: ignore[attr-defined]
    assert calls_of(aws, "IssueCertificate") == 0


def test_client_auth_where_the_rule_allows_it(aws: Any, root_ca: str, make_secret: Any) -> None:
    from cryptography import x509

    from rotation.issuance.bundle import CertBundle
    from tests.support.policy import document, rule, use_policy

    use_policy(document(rule("mtls", ["mtls/*"], [root_ca], dns_names=["."], client_auth=True)))
    arn = make_secret(pca_spec(root_ca), name="mtls/client")
    rotate(arn)
    bundle = CertBundle.from_fields(secret_fields(aws.sm, arn))
    assert bundle is not None
    purposes = set(bundle.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert purposes == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}


def test_a_secret_no_rule_governs_gets_nothing(aws: Any, root_ca: str, make_secret: Any) -> None:
    two_teams(aws, root_ca)
    arn = make_secret(pca_spec(root_ca, COMMON_NAME="web.a.example.internal"), name="team-c/web")
    caught = refused(arn, aws)
    assert "no rule" in str(caught)
    assert calls_of(aws, "IssueCertificate") == 0


def test_inside_its_rule_a_team_gets_its_certificate(aws: Any, root_ca: str, make_secret: Any) -> None:
    two_teams(aws, root_ca)
    arn = make_secret(pca_spec(root_ca, COMMON_NAME="WEB.A.Example.Internal."), name="team-a/web")
    rotate(arn)
    assert secret_fields(aws.sm, arn)["CERTIFICATE_SERIAL"]


@pytest.mark.parametrize("validity", ["10 YEARS", "99999 YEARS", "398 DAYS", "14 MONTHS"])
def test_the_default_policy_caps_validity(aws: Any, root_ca: str, make_secret: Any, validity: str) -> None:
    arn = make_secret(pca_spec(root_ca, VALIDITY=validity))
    caught = refused(arn, aws)
    assert caught.field == "VALIDITY" and "397 days" in str(caught)  # type: ignore[attr-defined]
    assert calls_of(aws, "IssueCertificate") == 0


def test_the_default_policy_refuses_every_issuance_of_a_multi_ca_stack(
    aws: Any, root_ca: str, make_secret: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    import rotation.handler
    from rotation.issuance.policy import default_policy

    other = create_ca(aws.pca, name="other CA")
    services = rotation.handler.services()
    rotation.handler._services = dataclasses.replace(services, policy=lambda: default_policy((root_ca, other)))
    arn = make_secret(pca_spec(root_ca))
    assert "no rule" in str(refused(arn, aws))


# --- 3. purposes: no code signing, no any-purpose, clientAuth only where allowed ----------------


LEAVES = {
    "codeSigning beside serverAuth": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CODE_SIGNING],
    "anyExtendedKeyUsage": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE],
    "no extended key usage": None,
    "clientAuth where the policy allows none": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
}


@pytest.mark.parametrize("eku", LEAVES.values(), ids=LEAVES.keys())
def test_a_pending_leaf_with_other_purposes_is_never_promoted(
    aws: Any, root_ca: str, make_secret: Any, eku: Any
) -> None:
    arn = make_secret(pca_spec(root_ca, KEY_ALGORITHM="EC_prime256v1"))
    rotate(arn)
    before = current_version(aws.sm, arn)
    cert, key = signed_by_ca(root_ca, eku=eku)
    token = stage_pending(arn)
    put_pending(
        aws.sm, arn, token, json.dumps({**secret_fields(aws.sm, arn), "CERTIFICATE_PEM": cert, "PRIVATE_KEY_PEM": key})
    )
    for step in ("testSecret", "finishSecret"):
        with pytest.raises(VerificationError) as caught:
            run_steps(arn, token, [step])
        assert caught.value.check == "end-entity"
    assert current_version(aws.sm, arn) == before


def test_the_default_policy_issues_server_only_certificates(aws: Any, root_ca: str, make_secret: Any) -> None:
    from cryptography import x509

    from rotation.issuance.bundle import CertBundle

    arn = make_secret(pca_spec(root_ca, TEMPLATE_ARN="arn:aws:acm-pca:::template/EndEntityCertificate/V1"))
    rotate(arn)
    bundle = CertBundle.from_fields(secret_fields(aws.sm, arn))
    assert bundle is not None
    purposes = list(bundle.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert purposes == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_acm_issued_is_refused_where_the_rule_does_not_allow_it(
    aws: Any, root_ca: str, acm_chain: Any, make_secret: Any
) -> None:
    two_teams(aws, root_ca)
    arn = make_secret(acm_spec(root_ca), name="team-a/web")
    caught = refused(arn, aws)
    assert caught.field == "CERTIFICATE_TYPE"  # type: ignore[attr-defined]
    assert calls_of(aws, "RequestCertificate") == 0


# --- 5. the ledger records the CA that issued the certificate --------------------------------


def test_the_ledger_records_the_issuing_ca_not_ca_arn(aws: Any, root_ca: str, acm_chain: Any, make_secret: Any) -> None:
    issuing = create_ca(aws.pca, parent=root_ca, name="issuing CA")
    arn = make_secret(acm_spec(issuing), name="team-a/web")
    rotate(arn)
    # The writer switches CA_ARN to the issuer's parent and forces a renewal.
    replace_current(aws.sm, arn, json.dumps({**secret_fields(aws.sm, arn), "CA_ARN": root_ca, "ENVIRONMENT": "TEST"}))
    rotate(arn)
    entries = Ledger(aws.dynamodb, LEDGER_TABLE).entries(arn)
    assert len(entries) == 2
    assert {e.ca_arn for e in entries} == {issuing}


# --- 6. key material is never echoed --------------------------------------------------------


@pytest.mark.parametrize("field", ["COMMON_NAME", "SUBJECT_ALTERNATIVE_NAMES", "CA_ARN", "CERTIFICATE_ARN"])
def test_a_key_pasted_into_a_field_never_reaches_logs_or_errors(
    aws: Any, root_ca: str, make_secret: Any, field: str, capfd: pytest.CaptureFixture[str], caplog: Any
) -> None:
    fields = pca_spec(root_ca, **{field: PASTED_KEY})
    arn = make_secret(fields)
    token = stage_pending(arn)
    error = ""
    try:
        run_steps(arn, token)
    except CertRotateError as exc:
        error = str(exc)
    assert error or field == "CERTIFICATE_ARN"  # an output field: overwritten by the rotation
    shown = error + capfd.readouterr().out + caplog.text
    assert PASTED_KEY.splitlines()[1] not in shown
    assert "PRIVATE KEY" not in shown


@pytest.mark.parametrize("field", ["COMMON_NAME", "SUBJECT_ALTERNATIVE_NAMES", "CA_ARN"])
def test_a_key_pasted_into_a_field_never_reaches_the_command_line(
    tmp_path: Any, field: str, capfd: pytest.CaptureFixture[str]
) -> None:
    from rotation.cli import main as certrotate

    path = tmp_path / "spec.json"
    path.write_text(
        json.dumps(
            {**pca_spec("arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/" + "0" * 36), field: PASTED_KEY}
        )
    )
    for output in ("table", "json"):
        assert certrotate(["validate", str(path), "--offline", "--output", output]) == 3
        captured = capfd.readouterr()
        assert field in captured.err + captured.out
        assert "PRIVATE KEY" not in captured.err + captured.out
        assert PASTED_KEY.splitlines()[1] not in captured.err + captured.out
