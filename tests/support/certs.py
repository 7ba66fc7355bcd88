"""A small local CA for pure tests (no AWS): certificates with every extension spelled out."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rotation.emulation.certificates import ca_certificate, leaf_certificate
from rotation.issuance.bundle import CertBundle, join_pem
from rotation.issuance.keys import generate_key, private_key_pem
from rotation.issuance.spec import CertSpec, KeyAlgorithm, parse_spec

CA_ARN = "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/11111111-2222-3333-4444-555555555555"


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
        self.certificate = ca_certificate(
            subject,
            self.key.public_key(),
            issuer,
            signer.key,
            path_length=None,
            not_before=now - dt.timedelta(days=1),
            not_after=now + dt.timedelta(days=3650),
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
        cert = leaf_certificate(
            names, key.public_key(), self.certificate.subject, self.key, not_before=start, not_after=start + lifetime
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
