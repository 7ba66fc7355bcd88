"""``status``'s rows at fleet scale: each PEM parsed once per row, no specification parsed for a ledger row,
and the JSON document of a row the same as ``dataclasses.asdict`` gives."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography import x509

from rotation.cli import certificate_health
from rotation.cli.certificate_health import row_document, status_of
from rotation.cli.inventory import SecretRecord, Source
from rotation.issuance import spec as spec_package
from tests.support.certs import LocalCA

CA_ARN = "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/00000000-0000-0000-0000-000000000000"
METADATA = {"RotationEnabled": True, "VersionIdsToStages": {"v1": ["AWSCURRENT"]}}


def counted(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    calls = [0]
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


def test_a_value_row_parses_its_certificate_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Expiry and serial, notBefore and the key each loaded the PEM: three parses a row."""
    rows = []
    fields = []
    issuer = LocalCA(name="Rows CA")
    for n in range(3):
        bundle = issuer.issue([f"host{n}.example.internal"])
        written = bundle.to_fields()
        written.pop("CERTIFICATE_KEY_ALGORITHM", None)  # the original sample's format: the key from the PEM
        fields.append({"CERTIFICATE_TYPE": "PCA_ISSUED", "CA_ARN": CA_ARN, "COMMON_NAME": f"host{n}", **written})
    loads = counted(monkeypatch, x509, "load_pem_x509_certificate")
    certificate_health._loaded.cache_clear()
    now = datetime.now(UTC)
    for n, value in enumerate(fields):
        rows.append(status_of(SecretRecord(f"s{n}", f"arn:s{n}", METADATA, value), now, 30))
    assert loads[0] == 3
    assert all(r.key_algorithm == "EC_prime256v1" and r.not_before and r.serial for r in rows)


def test_a_ledger_row_parses_no_specification(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = {
        "CERTIFICATE_TYPE": "PCA_ISSUED",
        "CA_ARN": CA_ARN,
        "CERTIFICATE_SERIAL": "0A",
        "CERTIFICATE_NOT_AFTER": "2099-12-01T00:00:00Z",
        "CERTIFICATE_FINGERPRINT_SHA256": "ab" * 32,
    }
    parses = counted(monkeypatch, spec_package, "parse_spec")
    row = status_of(SecretRecord("s", "arn:s", METADATA, entry, source=Source.LEDGER), datetime.now(UTC), 30)
    assert parses[0] == 0
    assert (row.key_algorithm, row.serial, row.not_after, row.not_before) == ("", "0A", "2099-12-01T00:00:00Z", "")
    value_row = status_of(SecretRecord("s", "arn:s", METADATA, entry), datetime.now(UTC), 30)
    assert value_row.key_algorithm == row.key_algorithm  # what a value read of the same fields shows
    assert parses[0] >= 1


def test_a_rows_json_document_is_what_asdict_gives_with_its_lists_copied() -> None:
    row = status_of(SecretRecord("s", "arn:s", {}, None, "unreadable: x"), datetime.now(UTC), 30)
    document = row_document(row)
    assert document == asdict(row) and list(document) == list(asdict(row))
    assert document["flags"] is not row.flags and document["problems"] is not row.problems
