"""The one redaction path: PEM blocks and key bodies never survive into a message."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from rotation.errors import SpecError
from rotation.redaction import BASE64_MARK, PEM_MARK, quote, redact


def _key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def test_a_pem_block_is_replaced_whole() -> None:
    pem = _key_pem()
    body = pem.splitlines()[1]
    out = redact(f"before {pem} after")
    assert PEM_MARK in out and "before" in out and "after" in out
    assert "PRIVATE KEY" not in out and body not in out


def test_an_unarmoured_key_body_is_replaced() -> None:
    lines = _key_pem().splitlines()[1:-1]
    out = redact(" ".join(lines))
    assert all(line not in out for line in lines if len(line) >= 48)
    assert BASE64_MARK in out


@pytest.mark.parametrize(
    "text",
    [
        "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/11111111-2222-3333-4444-555555555555",
        "a" * 80,  # one case only: a long name, not a key
        "0A1B2C3D4E5F60718293A4B5C6D7E8F90A1B2C3D4E5F60718293A4B5C6D7E8F9",  # a SHA-256 fingerprint
        "team-a/web/www.example.com",
    ],
)
def test_identifiers_are_left_alone(text: str) -> None:
    assert redact(text) == text


def test_quote_escapes_newlines_and_names_missing() -> None:
    assert quote("a\nb") == "'a\\nb'"
    assert quote(None) == "<missing>"


@pytest.mark.parametrize("field", ["COMMON_NAME", "SUBJECT_ALTERNATIVE_NAMES", "CA_ARN"])
def test_spec_errors_never_carry_a_pasted_key(field: str) -> None:
    pem = _key_pem()
    error = SpecError(field, [pem] if field == "SUBJECT_ALTERNATIVE_NAMES" else pem, "not a DNS name")
    assert "PRIVATE KEY" not in str(error)
    assert all(line not in str(error) for line in pem.splitlines()[1:-1] if len(line) >= 48)
    assert str(error).startswith(f"{field}=")
