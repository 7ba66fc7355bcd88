"""What the issuance policy's post-issue check reads of an issued certificate. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from rotation.issuance.spec import CertificateType


@dataclass(frozen=True)
class IssuedFacts:
    """What the post-issue check needs of a certificate, read from it by :func:`issued_facts`."""

    names: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    issuer_arn: str
    certificate_type: CertificateType


def issued_facts(certificate: x509.Certificate, issuer_arn: str, certificate_type: CertificateType) -> IssuedFacts:
    """The certificate's names (subject CN, DNS and IP SANs; lower-case, no trailing dot) and validity."""
    names: list[str] = [str(a.value) for a in certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += san.get_values_for_type(x509.DNSName)
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    unique = tuple(dict.fromkeys(n.lower().rstrip(".") for n in names))
    return IssuedFacts(
        unique, certificate.not_valid_before_utc, certificate.not_valid_after_utc, issuer_arn, certificate_type
    )
