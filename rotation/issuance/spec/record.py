"""The parsed specification, a frozen :class:`CertSpec`, and the limits a secret's size imposes on it. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from rotation.issuance.spec.choices import (
    CertificateType,
    KeyAlgorithm,
    KeyFamily,
    RenewalPolicy,
    SigningHash,
    ValidityUnit,
)

#: At most this many names (COMMON_NAME + SUBJECT_ALTERNATIVE_NAMES): ACM's default quota of
#: domain names per certificate, and a bound that keeps the secret under Secrets Manager's limit.
MAX_NAMES = 100

#: Secrets Manager's limit on a SecretString, in bytes.
SECRET_VALUE_LIMIT = 65536

#: Room a bundle needs in the secret besides its names: an RSA-4096 PKCS#8 key (~3.3 KB), a leaf
#: certificate's fixed part and a chain of up to four CA certificates, with metadata.
BUNDLE_ALLOWANCE = 16 * 1024

#: Keys written by rotation; everything else in the secret is the user's specification.
OUTPUT_FIELDS = (
    "CERTIFICATE_PEM",
    "PRIVATE_KEY_PEM",
    "CERTIFICATE_CHAIN_PEM",
    "CERTIFICATE_ARN",
    "CERTIFICATE_SERIAL",
    "CERTIFICATE_NOT_BEFORE",
    "CERTIFICATE_NOT_AFTER",
    "CERTIFICATE_KEY_ALGORITHM",
    "CERTIFICATE_FINGERPRINT_SHA256",
)


@dataclass(frozen=True)
class Validity:
    """A requested validity period, as Private CA's IssueCertificate ``Validity`` takes it."""

    value: int
    unit: ValidityUnit

    def as_pca(self) -> dict[str, Any]:
        return {"Value": self.value, "Type": self.unit.value}


@dataclass(frozen=True)
class CertSpec:
    """A parsed, validated certificate specification.

    Each attribute is filled from the secret's field named beside it by that field's reader in
    :data:`rotation.issuance.spec.fields.FIELDS` (a test pins the table to these attributes).
    """

    #: ``CERTIFICATE_TYPE``: which service issues the certificate.
    certificate_type: CertificateType
    #: ``CA_ARN``: the Private CA that signs it (ACM_ISSUED too: ACM issues from that CA).
    ca_arn: str
    #: ``COMMON_NAME``: a DNS name or IP address, at most 64 characters.
    common_name: str
    #: ``SUBJECT_ALTERNATIVE_NAMES``: the other names (a JSON list or a comma-separated string).
    subject_alternative_names: tuple[str, ...]
    #: ``ENVIRONMENT``: free text; ``TEST`` makes every rotation renew.
    environment: str
    #: ``KEY_ALGORITHM`` (or ``TYPE_RSA`` + ``KEY_SIZE``, ``TYPE_EC`` + ``EC_CURVE``); default RSA_2048.
    key_algorithm: KeyAlgorithm
    #: ``SIGNING_ALGORITHM``'s key family, when the secret names one (checked against the CA's).
    signing_family: KeyFamily | None
    #: ``SIGNING_HASH`` (or the hash in ``SHA256WITHRSA``…); default sha256.
    signing_hash: SigningHash
    #: ``TEMPLATE_ARN``: an end-entity TLS server template; default EndEntityCertificate/V1.
    template_arn: str
    #: ``VALIDITY``: ``90``, ``90 DAYS``, ``12 MONTHS``, ``1 YEARS``; default 365 days.
    validity: Validity
    #: ``RENEWAL_POLICY``; default ALWAYS for Private CA, WHEN_DUE for ACM.
    renewal_policy: RenewalPolicy
    #: ``RENEW_BEFORE_DAYS``: the renewal window before expiry; None = a third of the certificate's lifetime.
    renew_before: timedelta | None
    #: ``REUSE_PRIVATE_KEY``: keep the current key across rotations (never for ACM_ISSUED).
    reuse_private_key: bool
    #: ``REVOKE_SUPERSEDED_AFTER``: revoke a certificate this long after it was replaced, once no
    #: host serves it; None = never.
    revoke_superseded_after: timedelta | None = None

    @property
    def ca_region(self) -> str:
        return self.ca_arn.split(":")[3]

    @property
    def forces_renewal(self) -> bool:
        """``ENVIRONMENT`` = ``TEST`` keeps the original meaning: every rotation renews."""
        return self.environment.upper() == "TEST"

    @property
    def names(self) -> tuple[str, ...]:
        """CN first, then the extra SANs, without duplicates: the certificate's SAN list."""
        seen: dict[str, None] = {self.common_name.lower(): None}
        for name in self.subject_alternative_names:
            seen.setdefault(name.lower(), None)
        return tuple(seen)
