"""Bundle verification, each property failing on its own, and a real in-memory TLS handshake."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from freezegun import freeze_time

from rotation.errors import VerificationError
from rotation.issuance.bundle import CertBundle, merge_into_secret
from rotation.issuance.keys import key_algorithm_of, load_private_key, private_key_pem
from rotation.issuance.spec import KeyAlgorithm
from rotation.issuance.verification import check_handshake, verify_bundle
from tests.support.certs import LocalCA, spec_for

CA = LocalCA()
NAMES = ["app.example.internal", "10.1.2.3"]
SPEC = spec_for(SUBJECT_ALTERNATIVE_NAMES="10.1.2.3")


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_a_good_bundle_passes_every_check(algorithm: KeyAlgorithm) -> None:
    bundle = CA.issue(NAMES, key_algorithm=algorithm)
    verify_bundle(
        bundle, spec_for(SUBJECT_ALTERNATIVE_NAMES="10.1.2.3", KEY_ALGORITHM=algorithm.value), CA.certificate, now()
    )
    assert key_algorithm_of(bundle.private_key) is algorithm


def test_a_subordinate_ca_is_the_anchor() -> None:
    sub = CA.subordinate()
    verify_bundle(sub.issue(NAMES), SPEC, sub.certificate, now())


def test_chain_from_another_ca_is_refused() -> None:
    with pytest.raises(VerificationError) as caught:
        verify_bundle(LocalCA("Other CA").issue(NAMES), SPEC, CA.certificate, now())
    assert caught.value.check == "chain"


def test_key_that_does_not_match_is_refused() -> None:
    good, other = CA.issue(NAMES), CA.issue(NAMES)
    mixed = dataclasses.replace(good, private_key_pem=other.private_key_pem)
    with pytest.raises(VerificationError) as caught:
        verify_bundle(mixed, SPEC, CA.certificate, now())
    assert caught.value.check == "key-match"
    assert "PRIVATE KEY" not in str(caught.value)


def test_san_that_differs_is_refused() -> None:
    with pytest.raises(VerificationError, match="SANs") as caught:
        verify_bundle(CA.issue(["app.example.internal", "evil.example"]), SPEC, CA.certificate, now())
    assert caught.value.check == "names"


def test_cn_that_differs_is_refused() -> None:
    with pytest.raises(VerificationError, match="COMMON_NAME"):
        verify_bundle(
            CA.issue(["other.example.internal", "app.example.internal", "10.1.2.3"]), SPEC, CA.certificate, now()
        )


def test_expired_certificate_is_refused() -> None:
    bundle = CA.issue(NAMES, lifetime=dt.timedelta(days=30))
    with freeze_time(now() + dt.timedelta(days=31)), pytest.raises(VerificationError) as caught:
        verify_bundle(bundle, SPEC, CA.certificate, dt.datetime.now(dt.UTC))
    assert caught.value.check == "validity"


def test_not_yet_valid_certificate_is_refused() -> None:
    bundle = CA.issue(NAMES, not_before=now() + dt.timedelta(hours=1))
    with pytest.raises(VerificationError, match="not valid before"):
        verify_bundle(bundle, SPEC, CA.certificate, now())


def test_key_algorithm_must_equal_the_spec() -> None:
    with pytest.raises(VerificationError) as caught:
        verify_bundle(CA.issue(NAMES, key_algorithm=KeyAlgorithm.RSA_2048), SPEC, CA.certificate, now())
    assert caught.value.check == "key-algorithm"


def test_handshake_checks_the_host_name() -> None:
    bundle = CA.issue(["app.example.internal", "other.example.internal"])
    wrong_host = spec_for(COMMON_NAME="other.example.internal")
    check_handshake(bundle, wrong_host, CA.certificate)  # SAN covers it
    with pytest.raises(VerificationError, match="handshake"):
        check_handshake(bundle, spec_for(COMMON_NAME="third.example.internal"), CA.certificate)


def test_handshake_refuses_a_certificate_the_ca_did_not_sign() -> None:
    with pytest.raises(VerificationError, match="client rejected"):
        check_handshake(LocalCA("Other").issue(NAMES), SPEC, CA.certificate)


def test_wildcard_names_are_dialled_through_a_label() -> None:
    check_handshake(
        CA.issue(["*.apps.example.internal"]), spec_for(COMMON_NAME="*.apps.example.internal"), CA.certificate
    )


def test_unreadable_pem_is_named_without_its_content() -> None:
    bundle = CertBundle(
        "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n",
        "-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n",
        "",
        "",
    )
    with pytest.raises(VerificationError) as caught:
        verify_bundle(bundle, SPEC, CA.certificate, now())
    assert caught.value.check in {"CERTIFICATE_PEM", "PRIVATE_KEY_PEM"}
    assert "secret" not in str(caught.value) and "BEGIN" not in str(caught.value)


def test_repr_never_shows_the_key() -> None:
    bundle = CA.issue(NAMES)
    assert "PRIVATE" not in repr(bundle)


def test_outputs_merge_into_the_spec_unchanged() -> None:
    bundle = CA.issue(NAMES)
    merged = merge_into_secret({"COMMON_NAME": "app.example.internal", "CERTIFICATE_PEM": "old", "X": "kept"}, bundle)
    assert merged["X"] == "kept" and merged["CERTIFICATE_PEM"] == bundle.certificate_pem
    assert merged["CERTIFICATE_SERIAL"] == format(bundle.certificate.serial_number, "X")
    assert merged["CERTIFICATE_KEY_ALGORITHM"] == "EC_prime256v1"
    assert merged["CERTIFICATE_NOT_AFTER"].endswith("Z")


# Issue 8: certificate fields hold certificates only; the checked-key cache never skips an outside key.


@pytest.mark.parametrize("field", ["CERTIFICATE_PEM", "CERTIFICATE_CHAIN_PEM"])
@pytest.mark.parametrize("extra", ["key", "text", "other block"])
def test_certificate_fields_hold_certificate_blocks_only(field: str, extra: str) -> None:
    bundle = CA.issue(NAMES)
    chain = bundle.chain_pem or CA.certificate_pem
    added = {
        "key": bundle.private_key_pem,
        "text": "Bag Attributes: friendlyName\n",
        "other block": "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    }[extra]
    pems = {"CERTIFICATE_PEM": bundle.certificate_pem, "CERTIFICATE_CHAIN_PEM": chain}
    pems[field] = pems[field] + added
    tampered = CertBundle(pems["CERTIFICATE_PEM"], bundle.private_key_pem, pems["CERTIFICATE_CHAIN_PEM"], "")
    with pytest.raises(VerificationError) as caught:
        verify_bundle(tampered, SPEC, CA.certificate, now(), handshake=False)
    assert caught.value.check == field
    assert "BEGIN" not in str(caught.value) and "friendlyName" not in str(caught.value)


def test_two_certificates_in_certificate_pem_are_refused() -> None:
    bundle = CA.issue(NAMES)
    doubled = dataclasses.replace(bundle, certificate_pem=bundle.certificate_pem + bundle.certificate_pem)
    with pytest.raises(VerificationError, match="exactly one") as caught:
        verify_bundle(doubled, SPEC, CA.certificate, now(), handshake=False)
    assert caught.value.check == "CERTIFICATE_PEM"


def test_checked_keys_are_reused_by_exact_text_and_outside_keys_are_checked_in_full() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key_pem(key)
    assert load_private_key(pem) is key  # produced here: no second full check
    assert load_private_key(pem.replace("\n", "\r\n")) is not key  # other bytes: parsed and checked
    numbers = key.private_numbers()
    broken = rsa.RSAPrivateNumbers(
        numbers.p, numbers.q, numbers.d + 2, numbers.dmp1, numbers.dmq1, numbers.iqmp, numbers.public_numbers
    ).private_key(unsafe_skip_rsa_key_validation=True)
    broken_pem = broken.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    with pytest.raises(ValueError, match="not a readable PEM private key"):
        load_private_key(broken_pem)  # an inconsistent key from outside is refused by the full check
