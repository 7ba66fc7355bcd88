"""What ``certrotate status`` reads of one secret's health beyond expiry: key, notBefore, spec. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def spec_problem(fields: Mapping[str, Any]) -> str:
    """The specification's problems in one line (``validate NAME`` details them); empty when valid."""
    from rotation.issuance.spec import spec_problems

    found = list(spec_problems(fields))
    if not found:
        return ""
    return f"invalid specification ({len(found)} problem(s)): {found[0]}" + ("; …" if len(found) > 1 else "")


def key_algorithm(fields: Mapping[str, Any]) -> str:
    """The key as Private CA names it: the rotation's metadata, else the certificate's key, else the spec's
    (an original-format ``TYPE_RSA`` with ``KEY_SIZE`` reads as ``RSA_2048``)."""
    stored = str(fields.get("CERTIFICATE_KEY_ALGORITHM") or "")
    if stored:
        return stored
    pem = fields.get("CERTIFICATE_PEM")
    if isinstance(pem, str) and pem:
        from cryptography import x509

        from rotation.issuance.keys import key_algorithm_of

        try:
            found = key_algorithm_of(x509.load_pem_x509_certificate(pem.encode()).public_key())
        except ValueError:
            found = None
        if found is not None:
            return found.value
    from rotation.errors import SpecError
    from rotation.issuance.spec import parse_spec

    try:
        return parse_spec(fields).key_algorithm.value
    except SpecError:
        return str(fields.get("KEY_ALGORITHM") or "")


def not_before(fields: Mapping[str, Any]) -> datetime | None:
    """The stored certificate's notBefore (the metadata's when the PEM is missing or unreadable)."""
    pem = fields.get("CERTIFICATE_PEM")
    if isinstance(pem, str) and pem:
        from cryptography import x509

        try:
            return x509.load_pem_x509_certificate(pem.encode()).not_valid_before_utc
        except ValueError:
            pass
    try:
        return datetime.strptime(str(fields.get("CERTIFICATE_NOT_BEFORE") or ""), TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
