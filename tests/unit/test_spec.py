"""Parsing the secret's specification: the original sample's fields, the new names, and refusals."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from rotation.errors import SpecError
from rotation.issuance.spec import (
    DEFAULT_TEMPLATE_ARN,
    END_ENTITY_TEMPLATES,
    MAX_NAMES,
    SECRET_VALUE_LIMIT,
    CertificateType,
    KeyAlgorithm,
    KeyFamily,
    RenewalPolicy,
    SigningHash,
    Validity,
    ValidityUnit,
    load_secret_fields,
    parse_spec,
    spec_problems,
)
from tests.support.certs import CA_ARN

ACM_ORIGINAL = {
    "CERTIFICATE_TYPE": "ACM_ISSUED",
    "CA_ARN": CA_ARN,
    "COMMON_NAME": "server1.example",
    "ENVIRONMENT": "TEST",
}
PCA_ORIGINAL = {
    "CERTIFICATE_TYPE": "PCA_ISSUED",
    "CA_ARN": CA_ARN,
    "COMMON_NAME": "server2.example",
    "TEMPLATE_ARN": DEFAULT_TEMPLATE_ARN,
    "KEY_ALGORITHM": "TYPE_RSA",
    "KEY_SIZE": "2048",
    "SIGNING_ALGORITHM": "RSA",
    "SIGNING_HASH": "sha256",
    "ENVIRONMENT": "TEST",
}


def test_original_acm_secret_parses_with_its_meaning() -> None:
    spec = parse_spec(ACM_ORIGINAL)
    assert spec.certificate_type is CertificateType.ACM_ISSUED
    assert spec.forces_renewal
    assert spec.key_algorithm is KeyAlgorithm.RSA_2048
    assert spec.renewal_policy is RenewalPolicy.WHEN_DUE
    assert spec.names == ("server1.example",)
    assert spec.ca_region == "us-east-1"


@pytest.mark.parametrize(
    ("overrides", "key", "family", "digest"),
    [
        ({}, KeyAlgorithm.RSA_2048, KeyFamily.RSA, SigningHash.SHA256),
        ({"KEY_SIZE": "4096", "SIGNING_HASH": "sha512"}, KeyAlgorithm.RSA_4096, KeyFamily.RSA, SigningHash.SHA512),
        ({"KEY_SIZE": 3072, "SIGNING_HASH": "sha384"}, KeyAlgorithm.RSA_3072, KeyFamily.RSA, SigningHash.SHA384),
        (
            {"KEY_ALGORITHM": "TYPE_EC", "EC_CURVE": "secp384r1", "SIGNING_ALGORITHM": "ECDSA"},
            KeyAlgorithm.EC_secp384r1,
            KeyFamily.ECDSA,
            SigningHash.SHA256,
        ),
        (
            {"KEY_ALGORITHM": "TYPE_EC", "EC_CURVE": "P-521"},
            KeyAlgorithm.EC_secp521r1,
            KeyFamily.RSA,
            SigningHash.SHA256,
        ),
        (
            {"KEY_ALGORITHM": "EC_prime256v1", "SIGNING_ALGORITHM": "SHA384WITHECDSA", "SIGNING_HASH": ""},
            KeyAlgorithm.EC_prime256v1,
            KeyFamily.ECDSA,
            SigningHash.SHA384,
        ),
    ],
)
def test_original_and_new_key_and_signing_names(
    overrides: dict[str, Any], key: KeyAlgorithm, family: KeyFamily, digest: SigningHash
) -> None:
    spec = parse_spec({**PCA_ORIGINAL, **overrides})
    assert (spec.key_algorithm, spec.signing_family, spec.signing_hash) == (key, family, digest)


def test_defaults_for_a_minimal_pca_secret() -> None:
    spec = parse_spec({"CERTIFICATE_TYPE": "PCA_ISSUED", "CA_ARN": CA_ARN, "COMMON_NAME": "a.example"})
    assert spec.template_arn == DEFAULT_TEMPLATE_ARN
    assert spec.signing_family is None  # derived from the CA at issuance
    assert spec.validity == Validity(365, ValidityUnit.DAYS)
    assert spec.renewal_policy is RenewalPolicy.ALWAYS
    assert not spec.reuse_private_key and not spec.forces_renewal


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (["b.example", "10.0.0.5", "A.example"], ("a.example", "b.example", "10.0.0.5")),
        ("b.example, 10.0.0.5", ("a.example", "b.example", "10.0.0.5")),
        ('["*.a.example"]', ("a.example", "*.a.example")),
    ],
)
def test_subject_alternative_names_forms(raw: Any, expected: tuple[str, ...]) -> None:
    spec = parse_spec(
        {
            "CERTIFICATE_TYPE": "PCA_ISSUED",
            "CA_ARN": CA_ARN,
            "COMMON_NAME": "a.example",
            "SUBJECT_ALTERNATIVE_NAMES": raw,
        }
    )
    assert spec.names == expected


@pytest.mark.parametrize(
    ("raw", "value", "unit"),
    [("90", 90, "DAYS"), ("12 MONTHS", 12, "MONTHS"), ("2y", 2, "YEARS"), ("7 days", 7, "DAYS")],
)
def test_validity_forms(raw: str, value: int, unit: str) -> None:
    spec = parse_spec({**PCA_ORIGINAL, "VALIDITY": raw})
    assert spec.validity.as_pca() == {"Value": value, "Type": unit}


def test_renewal_fields() -> None:
    spec = parse_spec(
        {**PCA_ORIGINAL, "RENEWAL_POLICY": "when_due", "RENEW_BEFORE_DAYS": "0.25", "REUSE_PRIVATE_KEY": "true"}
    )
    assert spec.renewal_policy is RenewalPolicy.WHEN_DUE
    assert spec.renew_before == timedelta(hours=6)
    assert spec.reuse_private_key


MALFORMED = [
    # (fields overriding the original PCA secret, field named, words in the message)
    ({"KEY_ALGORITHM": "TYPE_DSA"}, "KEY_ALGORITHM", ["TYPE_DSA", "cannot sign DSA", "RSA_2048"]),
    ({"KEY_ALGORITHM": "Ed25519"}, "KEY_ALGORITHM", ["Ed25519", "cannot sign Ed25519", "EC_prime256v1"]),
    ({"KEY_ALGORITHM": "ED448"}, "KEY_ALGORITHM", ["ED448", "Ed448"]),
    ({"KEY_SIZE": "1024"}, "KEY_SIZE", ["1024", "below 2048", "2048, 3072, 4096"]),
    ({"KEY_ALGORITHM": "RSA_1024"}, "KEY_ALGORITHM", ["RSA_1024", "below 2048"]),
    ({"KEY_ALGORITHM": "TYPE_EC", "EC_CURVE": "secp256k1"}, "EC_CURVE", ["secp256k1", "prime256v1"]),
    ({"SIGNING_HASH": "md5"}, "SIGNING_HASH", ["md5", "sha256, sha384, sha512"]),
    ({"SIGNING_HASH": "sha1"}, "SIGNING_HASH", ["sha1"]),
    ({"SIGNING_ALGORITHM": "DSA"}, "SIGNING_ALGORITHM", ["DSA", "ECDSA"]),
    ({"SIGNING_ALGORITHM": "SHA256WITHRSA", "SIGNING_HASH": "sha512"}, "SIGNING_HASH", ["contradicts"]),
    ({"CERTIFICATE_TYPE": "SELF_SIGNED"}, "CERTIFICATE_TYPE", ["SELF_SIGNED", "ACM_ISSUED, PCA_ISSUED"]),
    ({"CERTIFICATE_TYPE": None}, "CERTIFICATE_TYPE", ["missing"]),
    ({"CA_ARN": None}, "CA_ARN", ["missing"]),
    ({"CA_ARN": "arn:aws:acm:us-east-1:123456789012:certificate/abc"}, "CA_ARN", ["not a Private CA ARN"]),
    ({"COMMON_NAME": ""}, "COMMON_NAME", ["missing"]),
    ({"COMMON_NAME": "bad name!"}, "COMMON_NAME", ["not a DNS name"]),
    ({"COMMON_NAME": "a" * 60 + ".example"}, "COMMON_NAME", ["64"]),
    ({"SUBJECT_ALTERNATIVE_NAMES": ["ok.example", "x;rm -rf"]}, "SUBJECT_ALTERNATIVE_NAMES", ["x;rm -rf"]),
    ({"SUBJECT_ALTERNATIVE_NAMES": {"a": 1}}, "SUBJECT_ALTERNATIVE_NAMES", ["list"]),
    ({"TEMPLATE_ARN": "EndEntity"}, "TEMPLATE_ARN", ["EndEntity"]),
    ({"VALIDITY": "forever"}, "VALIDITY", ["forever", "DAYS"]),
    ({"VALIDITY": "0"}, "VALIDITY", ["0"]),
    ({"RENEWAL_POLICY": "SOMETIMES"}, "RENEWAL_POLICY", ["ALWAYS, WHEN_DUE"]),
    ({"RENEW_BEFORE_DAYS": "-3"}, "RENEW_BEFORE_DAYS", ["-3"]),
    ({"REUSE_PRIVATE_KEY": "maybe"}, "REUSE_PRIVATE_KEY", ["true, false"]),
    ({"COMMON_NAME": {"nested": True}}, "COMMON_NAME", ["must be a string"]),
]


@pytest.mark.parametrize(("overrides", "field", "words"), MALFORMED)
def test_malformed_fields_name_field_value_and_allowed(overrides: dict[str, Any], field: str, words: list[str]) -> None:
    fields = {k: v for k, v in {**PCA_ORIGINAL, **overrides}.items() if v is not None}
    with pytest.raises(SpecError) as caught:
        parse_spec(fields)
    assert caught.value.field == field
    message = str(caught.value)
    assert message.startswith(field)
    for word in words:
        assert word in message


@pytest.mark.parametrize("key", ["RSA_3072", "RSA_4096", "EC_secp521r1"])
def test_acm_refuses_key_types_acm_does_not_issue(key: str) -> None:
    with pytest.raises(SpecError, match=r"KEY_ALGORITHM.*RSA_2048, EC_prime256v1, EC_secp384r1"):
        parse_spec({**ACM_ORIGINAL, "KEY_ALGORITHM": key})


def test_acm_refuses_key_reuse() -> None:
    with pytest.raises(SpecError, match="REUSE_PRIVATE_KEY"):
        parse_spec({**ACM_ORIGINAL, "REUSE_PRIVATE_KEY": "true"})


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"text"'])
def test_secret_string_must_be_a_json_object(raw: str) -> None:
    with pytest.raises(SpecError, match="SecretString"):
        load_secret_fields(raw)


# Issue 8: only end-entity server templates; names a client can be served under; numbers as numbers.

CA_OR_OTHER_TEMPLATES = [
    "RootCACertificate/V1",
    "RootCACertificate_APIPassthrough/V1",
    "SubordinateCACertificate_PathLen0/V1",
    "SubordinateCACertificate_PathLen3_CSRPassthrough/V1",
    "BlankSubordinateCACertificate_PathLen1_APICSRPassthrough/V1",
    "BlankEndEntityCertificate_APICSRPassthrough/V1",
    "CodeSigningCertificate/V1",
    "OCSPSigningCertificate_APIPassthrough/V1",
    "EndEntityClientAuthCertificate/V1",
    "EndEntityCertificate/V2",
]


@pytest.mark.parametrize("template", CA_OR_OTHER_TEMPLATES)
def test_template_arn_must_be_an_end_entity_server_template(template: str) -> None:
    arn = f"arn:aws:acm-pca:::template/{template}"
    with pytest.raises(SpecError) as caught:
        parse_spec({**PCA_ORIGINAL, "TEMPLATE_ARN": arn})
    assert caught.value.field == "TEMPLATE_ARN" and caught.value.value == arn
    assert isinstance(caught.value.allowed, tuple) and len(caught.value.allowed) == len(END_ENTITY_TEMPLATES)


@pytest.mark.parametrize("template", END_ENTITY_TEMPLATES)
def test_every_end_entity_server_template_is_accepted(template: str) -> None:
    for partition in ("aws", "aws-us-gov"):
        arn = f"arn:{partition}:acm-pca:::template/{template}"
        assert parse_spec({**PCA_ORIGINAL, "TEMPLATE_ARN": arn}).template_arn == arn


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("COMMON_NAME", "app\n.example"),
        ("COMMON_NAME", "app.exa\nmple"),
        ("SUBJECT_ALTERNATIVE_NAMES", ["www\n.example"]),
        ("SUBJECT_ALTERNATIVE_NAMES", ["fe80::1%eth0"]),
        ("SUBJECT_ALTERNATIVE_NAMES", ["*.internal"]),
        ("SUBJECT_ALTERNATIVE_NAMES", ["*"]),
        ("SUBJECT_ALTERNATIVE_NAMES", ["www.*.example"]),
        ("SUBJECT_ALTERNATIVE_NAMES", ["w*.example.internal"]),
        ("SUBJECT_ALTERNATIVE_NAMES", ["*.*.example.internal"]),
        ("SUBJECT_ALTERNATIVE_NAMES", [f"h{i}.example" for i in range(10_000)]),
        ("CA_ARN", CA_ARN + "\n\n x"),
        ("TEMPLATE_ARN", DEFAULT_TEMPLATE_ARN + "\nx"),
    ],
)
def test_names_and_arns_that_cannot_be_served_are_refused(field: str, value: Any) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec({**PCA_ORIGINAL, field: value})
    assert caught.value.field == field


def test_wildcards_follow_rfc_6125() -> None:
    spec = parse_spec({**PCA_ORIGINAL, "COMMON_NAME": "*.apps.example", "SUBJECT_ALTERNATIVE_NAMES": ["*.b.example"]})
    assert spec.names == ("*.apps.example", "*.b.example")


def test_the_san_cap_and_the_secret_size_are_checked_before_issuance() -> None:
    ninety_nine = [f"h{i}.example" for i in range(MAX_NAMES - 1)]
    assert len(parse_spec({**PCA_ORIGINAL, "SUBJECT_ALTERNATIVE_NAMES": ninety_nine}).names) == MAX_NAMES
    with pytest.raises(SpecError, match="SUBJECT_ALTERNATIVE_NAMES"):
        parse_spec({**PCA_ORIGINAL, "SUBJECT_ALTERNATIVE_NAMES": [*ninety_nine, "one-more.example"]})
    long_names = [f"{'a' * 60}.{'b' * 60}.{'c' * 60}.{'d' * 60}.{i:04d}" for i in range(MAX_NAMES - 1)]
    with pytest.raises(SpecError) as caught:
        parse_spec({**PCA_ORIGINAL, "SUBJECT_ALTERNATIVE_NAMES": long_names})
    assert caught.value.field == "SecretString" and str(SECRET_VALUE_LIMIT) in str(caught.value)


def test_deeply_nested_json_is_a_spec_error_not_a_recursion_error() -> None:
    with pytest.raises(SpecError, match="SecretString"):
        load_secret_fields("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SpecError, match="SUBJECT_ALTERNATIVE_NAMES"):
        parse_spec({**PCA_ORIGINAL, "SUBJECT_ALTERNATIVE_NAMES": "[" * 100_000 + "]" * 100_000})


@pytest.mark.parametrize(("value", "hours"), [(0.25, 6), (1, 24), ("0.5", 12)])
def test_renew_before_days_accepts_json_numbers(value: Any, hours: int) -> None:
    spec = parse_spec({**PCA_ORIGINAL, "RENEW_BEFORE_DAYS": value})
    assert spec.renew_before == timedelta(hours=hours)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), True, -0.5])
def test_renew_before_days_refuses_other_numbers(value: Any) -> None:
    with pytest.raises(SpecError, match="RENEW_BEFORE_DAYS"):
        parse_spec({**PCA_ORIGINAL, "RENEW_BEFORE_DAYS": value})


@pytest.mark.parametrize(
    ("raw", "grace"),
    [("7 DAYS", timedelta(days=7)), ("7", timedelta(days=7)), ("12 hours", timedelta(hours=12)), ("0", timedelta(0))],
)
def test_revoke_superseded_after_is_a_grace_period(raw: str, grace: timedelta) -> None:
    fields = {"CERTIFICATE_TYPE": "PCA_ISSUED", "CA_ARN": CA_ARN_FOR_GRACE, "COMMON_NAME": "a.example"}
    assert parse_spec({**fields, "REVOKE_SUPERSEDED_AFTER": raw}).revoke_superseded_after == grace
    assert parse_spec(fields).revoke_superseded_after is None


@pytest.mark.parametrize("raw", ["soon", "-1 DAYS", "7 WEEKS", "1.5"])
def test_a_bad_grace_names_the_field_the_value_and_what_is_allowed(raw: str) -> None:
    fields = {"CERTIFICATE_TYPE": "PCA_ISSUED", "CA_ARN": CA_ARN_FOR_GRACE, "COMMON_NAME": "a.example"}
    with pytest.raises(SpecError) as caught:
        parse_spec({**fields, "REVOKE_SUPERSEDED_AFTER": raw})
    assert caught.value.field == "REVOKE_SUPERSEDED_AFTER" and raw in str(caught.value) and "DAYS" in str(caught.value)
    assert [p.field for p in spec_problems({**fields, "REVOKE_SUPERSEDED_AFTER": raw})] == ["REVOKE_SUPERSEDED_AFTER"]


CA_ARN_FOR_GRACE = "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/11111111-2222-3333-4444-555555555555"


def test_the_field_table_fills_every_spec_attribute_once() -> None:
    """A new spec field is an attribute, its reader and its row: a row forgotten or doubled fails here."""
    from dataclasses import fields

    from rotation.issuance.spec import FIELDS, CertSpec

    filled = [attribute for row in FIELDS for attribute in row.attributes]
    assert sorted(filled) == sorted(f.name for f in fields(CertSpec))


def test_every_problem_is_listed_with_the_ones_that_depend_on_the_certificate_type() -> None:
    """ACM's key types and ACM's own keys are checked with the other fields, not only once they all pass."""
    acm = {**ACM_ORIGINAL, "KEY_ALGORITHM": "RSA_4096", "REUSE_PRIVATE_KEY": "true", "VALIDITY": "soon"}
    assert [p.field for p in spec_problems(acm)] == ["KEY_ALGORITHM", "VALIDITY", "REUSE_PRIVATE_KEY"]
    with pytest.raises(SpecError) as caught:
        parse_spec(acm)
    assert caught.value.field == "KEY_ALGORITHM" and "ACM does not issue this key type" in str(caught.value)
