"""What the installer accepts from a secret: CERTIFICATE blocks only, one key only in the key field,
a matching key and a chain that verifies, proven by an in-memory TLS handshake (no openssl CLI)."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from certrotate_installer import certificate, distro, output, validation
from certrotate_installer.servers import apache

from rotation.issuance.spec import KeyAlgorithm
from tests.support.certs import LocalCA

NAMES = ("CERTIFICATE_PEM", "PRIVATE_KEY_PEM", "CERTIFICATE_CHAIN_PEM")


@pytest.fixture(scope="module")
def ca() -> LocalCA:
    return LocalCA(name="Installer Unit CA")


def parse(cert: str, key: str, chain: str) -> object:
    return validation.parse_bundle(cert, key, chain, NAMES)


@pytest.mark.parametrize(
    "algorithm", [KeyAlgorithm.RSA_2048, KeyAlgorithm.EC_prime256v1, KeyAlgorithm.EC_secp384r1], ids=str
)
def test_a_good_bundle_passes_and_its_facts_are_read_from_der(ca: LocalCA, algorithm: KeyAlgorithm) -> None:
    sub = ca.subordinate()
    bundle = sub.issue(["www.certrotate.test"], key_algorithm=algorithm)
    parsed = parse(bundle.certificate_pem, bundle.private_key_pem, bundle.chain_pem)
    validation.validate_bundle(parsed, time.time())
    facts = parsed.facts  # type: ignore[attr-defined]
    assert facts.serial_hex == bundle.serial_hex
    assert facts.common_name == "www.certrotate.test"
    assert facts.fingerprint == bundle.fingerprint_sha256.upper() or facts.fingerprint.replace(":", "") == (
        bundle.fingerprint_sha256.replace(":", "").upper()
    )
    assert int(facts.not_after) == int(bundle.not_after.timestamp())
    assert parsed.certificate == bundle.certificate_pem.encode()  # type: ignore[attr-defined]  # canonical already


@pytest.mark.parametrize(
    ("field", "text", "message"),
    [
        (0, "{key}", "CERTIFICATE_PEM must hold exactly one CERTIFICATE block"),
        (0, "{cert}{cert}", "CERTIFICATE_PEM must hold exactly one CERTIFICATE block"),
        (0, "{cert}{key}", "CERTIFICATE_PEM must hold exactly one CERTIFICATE block"),
        (2, "{chain}{key}", "CERTIFICATE_CHAIN_PEM must hold CERTIFICATE blocks only"),
        (2, "", "CERTIFICATE_CHAIN_PEM must hold CERTIFICATE blocks only"),
        (1, "{key}{key}", "PRIVATE_KEY_PEM must hold exactly one unencrypted private key"),
        (1, "{cert}", "PRIVATE_KEY_PEM must hold exactly one unencrypted private key"),
        (0, "Bag Attributes\n{cert}", "CERTIFICATE_PEM has text outside its PEM blocks"),
        (0, "{cert}trailing", "CERTIFICATE_PEM has text outside its PEM blocks"),
        (2, "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n", "not base64"),
        (2, "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", "text outside"),
    ],
)
def test_content_rules_refuse_a_key_anywhere_else_and_anything_else(
    ca: LocalCA, field: int, text: str, message: str
) -> None:
    bundle = ca.issue(["www.certrotate.test"])
    values = {"cert": bundle.certificate_pem, "key": bundle.private_key_pem, "chain": bundle.chain_pem}
    texts = [bundle.certificate_pem, bundle.private_key_pem, bundle.chain_pem]
    texts[field] = text.format(**values)
    with pytest.raises(ValueError, match=message) as caught:
        parse(*texts)
    assert "PRIVATE KEY-----" not in str(caught.value)


def invalid(cert: str, key: str, chain: str) -> str:
    with pytest.raises(output.InstallError) as caught:
        validation.validate_bundle(parse(cert, key, chain), time.time())
    assert caught.value.code == output.Exit.BUNDLE_INVALID
    return str(caught.value.message)


def test_a_key_of_another_certificate_is_refused(ca: LocalCA) -> None:
    good, other_ec, other_rsa = (
        ca.issue(["a.test"]),
        ca.issue(["a.test"]),
        ca.issue(["a.test"], key_algorithm=KeyAlgorithm.RSA_2048),
    )
    for other in (other_ec, other_rsa):
        message = invalid(good.certificate_pem, other.private_key_pem, good.chain_pem)
        assert message == "the private key does not match the certificate"
    assert validation.key_matches(good.certificate_pem.encode(), good.private_key_pem.encode())
    assert not validation.key_matches(good.certificate_pem.encode(), other_rsa.private_key_pem.encode())


def test_a_chain_that_does_not_verify_is_refused(ca: LocalCA) -> None:
    foreign = LocalCA(name="Foreign CA").issue(["a.test"])
    good = ca.issue(["a.test"])
    message = invalid(foreign.certificate_pem, foreign.private_key_pem, good.chain_pem)
    assert message.startswith("the chain does not verify the certificate")


def test_an_intermediate_alone_is_enough_as_chain(ca: LocalCA) -> None:
    sub = ca.subordinate()
    bundle = sub.issue(["a.test"])
    intermediate_only = bundle.chain_pem.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    validation.validate_bundle(parse(bundle.certificate_pem, bundle.private_key_pem, intermediate_only), time.time())


def test_an_expired_certificate_is_refused(ca: LocalCA) -> None:
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    expired = ca.issue(["a.test"], not_before=start, lifetime=dt.timedelta(days=1))
    assert "expired" in invalid(expired.certificate_pem, expired.private_key_pem, expired.chain_pem)


def test_der_parsing_refuses_garbage() -> None:
    for der in (b"", b"\x30\x03\x02\x01", b"\x04\x00", b"\x30\x85" + b"\x00" * 8):
        with pytest.raises((ValueError, IndexError)):
            certificate.certificate_facts(der)


@pytest.mark.parametrize(
    ("service", "os_release", "family"),
    [
        ("httpd", "ID=debian", "rhel"),
        ("", 'ID="amzn"\nID_LIKE="centos rhel fedora"', "rhel"),
        ("", "ID=rhel\nID_LIKE=fedora", "rhel"),
        ("", "ID=ubuntu\nID_LIKE=debian", "debian"),
        ("", "ID=linuxmint\nID_LIKE=ubuntu", "debian"),
    ],
)
def test_the_distribution_table(service: str, os_release: str, family: str) -> None:
    assert distro.pick_distro(apache.Apache.distros, service, os_release).family == family


def test_an_unknown_distribution_needs_service_name() -> None:
    with pytest.raises(output.InstallError, match="pass ServiceName"):
        distro.pick_distro(apache.Apache.distros, "", "ID=arch")


# Issue 17 items 5, 9, 13 ------------------------------------------------------------------------------------


def test_17_13_a_mutated_certificate_der_is_not_a_certificate_never_an_index_error() -> None:
    """On the starting code a DER with too few fields raised IndexError ("unexpected", exit 1)."""
    from cryptography.hazmat.primitives import serialization

    der = (
        LocalCA(name="Mutation CA").issue(["www.certrotate.test"]).certificate.public_bytes(serialization.Encoding.DER)
    )
    for mutated in (b"\x30\x05\x30\x03\x02\x01\x01", b"\x30\x03\x30\x01\x02", der[:-40], der[:50]):
        with pytest.raises(ValueError, match=r"certificate|DER"):
            certificate.certificate_facts(mutated)


def test_17_9_printable_escapes_control_and_non_ascii_characters() -> None:
    text = output.printable("www.certrotaté.test\ncertrotate: ok\x1b[2J\\")
    assert text == "www.certrotat\\xe9.test\\ncertrotate: ok\\x1b[2J\\\\"
    assert text.isascii() and "\n" not in text
