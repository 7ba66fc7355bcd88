"""The specification's closed choices: the enums a secret's fields name, and the tables of their other spellings. Pure.

Each enum's values are what the secret writes (and what ACM and Private CA call them); the tables
map the original sample's spellings (``TYPE_RSA`` + ``KEY_SIZE``, ``TYPE_EC`` + ``EC_CURVE``) and
what Private CA cannot sign (refused with a reason) onto them.
"""

from __future__ import annotations

from enum import StrEnum

DEFAULT_TEMPLATE_ARN = "arn:aws:acm-pca:::template/EndEntityCertificate/V1"

#: The Private CA templates a secret may name: the end-entity TLS server templates of the Private
#: CA template docs ("template varieties": base, CSRPassthrough, APIPassthrough, APICSRPassthrough;
#: each exists only as V1). CA templates (RootCACertificate, SubordinateCACertificate_*) would let a
#: secret's writer obtain a CA; code-signing, OCSP, client-auth-only and Blank templates do not make
#: TLS server certificates. ``cfn/src/central-account.yaml`` grants IssueCertificate on exactly these
#: (a test compares the two lists).
END_ENTITY_TEMPLATES = tuple(
    f"{base}{variety}/V1"
    for base in ("EndEntityCertificate", "EndEntityServerAuthCertificate")
    for variety in ("", "_CSRPassthrough", "_APIPassthrough", "_APICSRPassthrough")
)


class CertificateType(StrEnum):
    """Which service issues the certificate."""

    ACM_ISSUED = "ACM_ISSUED"
    PCA_ISSUED = "PCA_ISSUED"


class KeyFamily(StrEnum):
    """Public-key family, named as the original ``SIGNING_ALGORITHM`` values name it."""

    RSA = "RSA"
    ECDSA = "ECDSA"


class KeyAlgorithm(StrEnum):
    """Key algorithms Private CA can sign, named as ACM and Private CA name them."""

    RSA_2048 = "RSA_2048"
    RSA_3072 = "RSA_3072"
    RSA_4096 = "RSA_4096"
    EC_prime256v1 = "EC_prime256v1"
    EC_secp384r1 = "EC_secp384r1"
    EC_secp521r1 = "EC_secp521r1"

    @property
    def family(self) -> KeyFamily:
        return KeyFamily.RSA if self.value.startswith("RSA_") else KeyFamily.ECDSA


#: ACM requests only these (RequestCertificate KeyAlgorithm for private certificates).
ACM_KEY_ALGORITHMS = (KeyAlgorithm.RSA_2048, KeyAlgorithm.EC_prime256v1, KeyAlgorithm.EC_secp384r1)


class SigningHash(StrEnum):
    SHA256 = "sha256"
    SHA384 = "sha384"
    SHA512 = "sha512"


class RenewalPolicy(StrEnum):
    """When a scheduled rotation issues a new certificate.

    ``ALWAYS``: every rotation issues (Private CA default).
    ``WHEN_DUE``: only when the current certificate is inside its renewal window, no longer
    matches the spec, or does not chain to the CA; otherwise the current bundle is staged
    unchanged (ACM default: ACM renews managed certificates itself).
    """

    ALWAYS = "ALWAYS"
    WHEN_DUE = "WHEN_DUE"


class ValidityUnit(StrEnum):
    DAYS = "DAYS"
    MONTHS = "MONTHS"
    YEARS = "YEARS"


ORIGINAL_KEY_TYPES = ("TYPE_RSA", "TYPE_EC")

UNSIGNABLE = {
    "TYPE_DSA": "AWS Private CA cannot sign DSA keys",
    "DSA": "AWS Private CA cannot sign DSA keys",
    "ED25519": "AWS Private CA cannot sign Ed25519 keys",
    "ED448": "AWS Private CA cannot sign Ed448 keys",
}

CURVE_ALIASES = {
    "prime256v1": KeyAlgorithm.EC_prime256v1,
    "secp256r1": KeyAlgorithm.EC_prime256v1,
    "p-256": KeyAlgorithm.EC_prime256v1,
    "p256": KeyAlgorithm.EC_prime256v1,
    "secp384r1": KeyAlgorithm.EC_secp384r1,
    "p-384": KeyAlgorithm.EC_secp384r1,
    "p384": KeyAlgorithm.EC_secp384r1,
    "secp521r1": KeyAlgorithm.EC_secp521r1,
    "p-521": KeyAlgorithm.EC_secp521r1,
    "p521": KeyAlgorithm.EC_secp521r1,
}

RSA_SIZES = {"2048": KeyAlgorithm.RSA_2048, "3072": KeyAlgorithm.RSA_3072, "4096": KeyAlgorithm.RSA_4096}
