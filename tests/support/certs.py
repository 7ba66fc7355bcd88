"""A small local CA for pure tests (no AWS): certificates with every extension spelled out."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from rotation.bundle import CertBundle, join_pem
from rotation.keys import generate_key, private_key_pem
from rotation.spec import CertSpec, KeyAlgorithm, parse_spec

CA_ARN = "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/11111111-2222-3333-4444-555555555555"


def _key_usage(ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass
class LocalCA:
    name: str = "Local Test CA"
    key: Any = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    parent: LocalCA | None = None
    certificate: x509.Certificate = field(init=False)

    def __post_init__(self) -> None:
        now = dt.datetime.now(dt.UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.name)])
        signer = self.parent or self
        issuer = self.parent.certificate.subject if self.parent else subject
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .sign(signer.key, hashes.SHA256())
        )

    def subordinate(self, name: str = "Local Sub CA") -> LocalCA:
        return LocalCA(name=name, parent=self)

    def issue(
        self,
        names: list[str],
        *,
        key_algorithm: KeyAlgorithm = KeyAlgorithm.EC_prime256v1,
        not_before: dt.datetime | None = None,
        lifetime: dt.timedelta = dt.timedelta(days=90),
        key: Any = None,
    ) -> CertBundle:
        key = key or generate_key(key_algorithm)
        start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        sans: list[x509.GeneralName] = []
        for name in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        chain = [self.certificate] + ([self.parent.certificate] if self.parent else [])
        return CertBundle(
            join_pem(cert.public_bytes(serialization.Encoding.PEM).decode()),
            private_key_pem(key),
            join_pem(*(c.public_bytes(serialization.Encoding.PEM).decode() for c in chain)),
            "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/x/certificate/y",
        )


def spec_for(**fields: str) -> CertSpec:
    base = {
        "CERTIFICATE_TYPE": "PCA_ISSUED",
        "CA_ARN": CA_ARN,
        "COMMON_NAME": "app.example.internal",
        "KEY_ALGORITHM": "EC_prime256v1",
    }
    base.update(fields)
    return parse_spec(base)
