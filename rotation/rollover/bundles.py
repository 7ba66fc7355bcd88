"""Trust bundles as a rollover edits them: a CA certificate added or removed, by its DER. Pure.

A bundle's text is the ``TRUST_BUNDLE_PEM`` field of its secret (``certrotate/trust-bundles/<name>``).
The edited text is canonical PEM (64-column base64, ``\\n`` line ends) in the bundle's order, the new
CA last, as the installer writes the file: the fingerprint a host reports after installing it is
:func:`rotation.fleet.trust_view.bundle_fingerprint` of this text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from rotation.fleet.trust_view import bundle_fingerprint

#: Where a bundle lives (README, "Trust bundles"), and the field that holds it.
BUNDLE_PREFIX = "certrotate/trust-bundles/"
BUNDLE_FIELD = "TRUST_BUNDLE_PEM"
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----\s*[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----")


@dataclass(frozen=True)
class Bundle:
    """One bundle as its secret holds it now."""

    name: str
    arn: str
    pem: str

    @property
    def fingerprint(self) -> str:
        return bundle_fingerprint(self.pem)

    def holds(self, ca: x509.Certificate) -> bool:
        return der(ca) in {der(c) for c in certificates(self.pem)}


def der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def certificates(pem: str) -> list[x509.Certificate]:
    """The bundle's certificates in order (a block that does not parse is kept out: the installer
    refuses such a bundle whole, and the rollover rewrites it from the ones that parse)."""
    found = []
    for block in _PEM.findall(pem):
        try:
            found.append(x509.load_pem_x509_certificate(block.encode()))
        except ValueError:
            continue
    return found


def _text(chain: list[x509.Certificate]) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in chain)


def with_ca(pem: str, ca: x509.Certificate) -> str:
    """The bundle with ``ca`` last (unchanged order and text when it already holds it)."""
    chain = certificates(pem)
    if der(ca) in {der(c) for c in chain}:
        return _text(chain)
    return _text([*chain, ca])


def without_ca(pem: str, ca: x509.Certificate) -> str:
    """The bundle without ``ca``."""
    return _text([c for c in certificates(pem) if der(c) != der(ca)])


def secret_name(bundle: str) -> str:
    return f"{BUNDLE_PREFIX}{bundle}"
