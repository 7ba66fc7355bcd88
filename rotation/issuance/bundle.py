"""A certificate bundle (certificate, private key, chain) and its place in the secret.

Pure: no AWS calls. The private key never appears in ``repr`` and never in an error message.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from rotation.errors import VerificationError
from rotation.issuance.keys import PrivateKey, describe_key, load_private_key, private_key_pem
from rotation.issuance.spec import OUTPUT_FIELDS
from rotation.redaction import redact


@dataclass(frozen=True)
class CertBundle:
    """What rotation stages in the secret: leaf certificate, its key and the issuing chain."""

    certificate_pem: str
    private_key_pem: str = field(repr=False)
    chain_pem: str
    certificate_arn: str
    #: The CA that issued it, as the issuer reported it (not stored in the secret; "" when read back).
    issuer_arn: str = field(default="", compare=False)

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> CertBundle | None:
        """The bundle stored in a secret's fields, or None when it holds only a spec."""
        cert = fields.get("CERTIFICATE_PEM")
        key = fields.get("PRIVATE_KEY_PEM")
        if not cert and not key:
            return None
        if not isinstance(cert, str) or not cert.strip():
            raise VerificationError("CERTIFICATE_PEM", "missing or not a string")
        if not isinstance(key, str) or not key.strip():
            raise VerificationError("PRIVATE_KEY_PEM", "missing or not a string")
        chain = fields.get("CERTIFICATE_CHAIN_PEM") or ""
        if not isinstance(chain, str):
            raise VerificationError("CERTIFICATE_CHAIN_PEM", "not a string")
        return cls(
            cert.strip() + "\n",
            key.strip() + "\n",
            chain.strip() + "\n" if chain.strip() else "",
            str(fields.get("CERTIFICATE_ARN") or ""),
        )

    @classmethod
    def with_key(
        cls, certificate_pem: str, key: PrivateKey, chain_pem: str, certificate_arn: str, issuer_arn: str = ""
    ) -> CertBundle:
        """A bundle around a key object already in hand (it is not parsed back from PEM)."""
        bundle = cls(certificate_pem, private_key_pem(key), chain_pem, certificate_arn, issuer_arn)
        bundle.__dict__["private_key"] = key  # seeds the cached_property
        return bundle

    @cached_property
    def certificate(self) -> x509.Certificate:
        if certificate_block_count("CERTIFICATE_PEM", self.certificate_pem) != 1:
            raise VerificationError("CERTIFICATE_PEM", "must hold exactly one CERTIFICATE block")
        try:
            return x509.load_pem_x509_certificate(self.certificate_pem.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise VerificationError("CERTIFICATE_PEM", "not a readable PEM certificate") from None

    @cached_property
    def private_key(self) -> PrivateKey:
        try:
            return load_private_key(self.private_key_pem)
        except ValueError as exc:
            raise VerificationError("PRIVATE_KEY_PEM", str(exc)) from None

    @cached_property
    def chain(self) -> tuple[x509.Certificate, ...]:
        if not self.chain_pem.strip():
            return ()
        certificate_block_count("CERTIFICATE_CHAIN_PEM", self.chain_pem)
        try:
            return tuple(x509.load_pem_x509_certificates(self.chain_pem.encode("ascii")))
        except (ValueError, UnicodeEncodeError):
            raise VerificationError("CERTIFICATE_CHAIN_PEM", "not readable PEM certificates") from None

    @property
    def serial_hex(self) -> str:
        return format(self.certificate.serial_number, "X")

    @property
    def not_before(self) -> datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc

    @property
    def fingerprint_sha256(self) -> str:
        return hashlib.sha256(self.certificate.public_bytes(serialization.Encoding.DER)).hexdigest()

    @property
    def key_algorithm_label(self) -> str:
        return describe_key(self.certificate.public_key())

    def to_fields(self) -> dict[str, str]:
        """The output fields written into the secret, with metadata tools read without PEM parsing."""
        return {
            "CERTIFICATE_PEM": self.certificate_pem,
            "PRIVATE_KEY_PEM": self.private_key_pem,
            "CERTIFICATE_CHAIN_PEM": self.chain_pem,
            "CERTIFICATE_ARN": self.certificate_arn,
            "CERTIFICATE_SERIAL": self.serial_hex,
            "CERTIFICATE_NOT_BEFORE": _iso(self.not_before),
            "CERTIFICATE_NOT_AFTER": _iso(self.not_after),
            "CERTIFICATE_KEY_ALGORITHM": self.key_algorithm_label,
            "CERTIFICATE_FINGERPRINT_SHA256": self.fingerprint_sha256,
        }

    def summary(self) -> dict[str, str]:
        """Safe-to-log facts about the bundle (no key material)."""
        return {
            "serial": self.serial_hex,
            "not_after": _iso(self.not_after),
            "key_algorithm": self.key_algorithm_label,
            "certificate_arn": redact(self.certificate_arn),  # read from the secret: anything may be pasted there
        }


_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]{1,40})-----\r?\n[A-Za-z0-9+/=\r\n]*?-----END \1-----")


def certificate_block_count(field_name: str, text: str) -> int:
    """How many PEM blocks ``text`` holds, all of them ``CERTIFICATE`` with only whitespace around.

    A field the installer writes world-readable must never carry a private key (or anything else).

    Raises:
        VerificationError: another block type, or text outside the blocks; names the field only.
    """
    count, position = 0, 0
    for block in _PEM_BLOCK.finditer(text):
        if text[position : block.start()].strip() or block.group(1) != "CERTIFICATE":
            raise VerificationError(field_name, "may hold only CERTIFICATE PEM blocks")
        count, position = count + 1, block.end()
    if text[position:].strip() or "-----BEGIN" in text[position:]:
        raise VerificationError(field_name, "may hold only CERTIFICATE PEM blocks")
    return count


def merge_into_secret(spec_fields: Mapping[str, Any], bundle: CertBundle) -> dict[str, Any]:
    """The user's specification fields unchanged, with fresh output fields."""
    merged = {k: v for k, v in spec_fields.items() if k not in OUTPUT_FIELDS}
    merged.update(bundle.to_fields())
    return merged


def join_pem(*parts: str) -> str:
    """Normalise PEM blocks into one newline-terminated string."""
    return "".join(p.strip() + "\n" for p in parts if p and p.strip())


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = ["CertBundle", "certificate_block_count", "join_pem", "merge_into_secret"]
