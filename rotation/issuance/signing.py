"""The Private CA ``SigningAlgorithm`` for a spec and a CA key family. Pure."""

from __future__ import annotations

from rotation.errors import SpecError
from rotation.issuance.spec import CertSpec, KeyFamily, SigningHash

SIGNING_ALGORITHMS: dict[tuple[KeyFamily, SigningHash], str] = {
    (KeyFamily.RSA, SigningHash.SHA256): "SHA256WITHRSA",
    (KeyFamily.RSA, SigningHash.SHA384): "SHA384WITHRSA",
    (KeyFamily.RSA, SigningHash.SHA512): "SHA512WITHRSA",
    (KeyFamily.ECDSA, SigningHash.SHA256): "SHA256WITHECDSA",
    (KeyFamily.ECDSA, SigningHash.SHA384): "SHA384WITHECDSA",
    (KeyFamily.ECDSA, SigningHash.SHA512): "SHA512WITHECDSA",
}


def signing_algorithm(spec: CertSpec, ca_family: KeyFamily) -> str:
    """The algorithm the CA signs with: its own key family, the spec's hash.

    Raises:
        SpecError: SIGNING_ALGORITHM names a family other than the CA key's.
    """
    if spec.signing_family is not None and spec.signing_family is not ca_family:
        raise SpecError(
            "SIGNING_ALGORITHM",
            spec.signing_family.value,
            f"the CA {spec.ca_arn} has an {ca_family.value} key and can only sign with {ca_family.value}",
            [ca_family.value, *(v for (f, _), v in SIGNING_ALGORITHMS.items() if f is ca_family)],
        )
    return SIGNING_ALGORITHMS[(ca_family, spec.signing_hash)]
