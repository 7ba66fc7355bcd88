"""Assertions shared by the functional tests: the properties a rotated secret must have."""

from __future__ import annotations

from typing import Any

from cryptography import x509

from rotation.issuance.bundle import CertBundle
from rotation.issuance.keys import public_key_der
from rotation.issuance.spec import CertSpec, parse_spec
from rotation.issuance.verification import check_chain, check_handshake, check_key_algorithm, check_names
from tests.support.driver import secret_fields


def ca_certificate(pca: Any, ca_arn: str) -> x509.Certificate:
    pem = pca.get_certificate_authority_certificate(CertificateAuthorityArn=ca_arn)["Certificate"]
    return x509.load_pem_x509_certificate(pem.encode())


def assert_valid_bundle(aws: Any, secret_arn: str, stage: str = "AWSCURRENT") -> tuple[CertBundle, CertSpec]:
    """The staged bundle's key matches, it chains to its CA, names and key type equal the spec."""
    fields = secret_fields(aws.sm, secret_arn, stage)
    spec = parse_spec(fields)
    bundle = CertBundle.from_fields(fields)
    assert bundle is not None
    assert public_key_der(bundle.private_key) == public_key_der(bundle.certificate.public_key())
    ca = ca_certificate(aws.pca, spec.ca_arn)
    check_chain(bundle, ca)
    check_names(bundle, spec)
    check_key_algorithm(bundle, spec)
    check_handshake(bundle, spec, ca)
    assert fields["CERTIFICATE_SERIAL"] == bundle.serial_hex
    assert fields["PRIVATE_KEY_PEM"].startswith("-----BEGIN PRIVATE KEY-----")  # unencrypted PKCS#8
    return bundle, spec


def calls_of(aws: Any, operation: str) -> int:
    return sum(n for name, n in aws.calls.items() if name.endswith(f":{operation}"))
