"""The trust bundles each host installed, from the installer's ``Custom:CertrotateTrustBundle`` records. Pure.

After every trust run (InstallTrustBundle) the installer puts one record per bundle it takes into SSM
custom inventory: the bundle's name and secret, the SHA-256 of the bundle file as installed, the
files, the latest run's status, exit code and message, and the times. An operator compares the
fingerprint with the bundle secret's (:func:`bundle_fingerprint`): the same CA certificates in the
same order give the same digest on every host. The record's schema is the installer's
(``ssm_documents/certrotate_installer/trust_record.py``); ``tests/installer/test_fleet_schema.py``
pins these names to it.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

TRUST_INVENTORY_TYPE = "Custom:CertrotateTrustBundle"
TRUST_KEYS = (
    "BundleName",
    "BundleArn",
    "FingerprintSha256",
    "Files",
    "InstalledAt",
    "Status",
    "ExitCode",
    "Message",
    "RecordedAt",
)
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----\s*([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----")


@dataclass(frozen=True)
class TrustReport:
    """One host's record of one bundle."""

    account: str
    instance_id: str
    bundle: str
    bundle_arn: str
    fingerprint: str  # "" before any install succeeded
    files: str
    status: str  # installed, unchanged or failed (the latest run)
    exit_code: str
    message: str
    recorded_at: str
    installed_at: str


def parse_trust_records(account: str, instance_id: str, content: Sequence[object]) -> list[TrustReport]:
    """The well-formed records of one instance (a record missing a key, or not all strings, is skipped:
    a host's root writes its own inventory, so a record is a claim, shown, never acted on)."""
    found: list[TrustReport] = []
    for entry in content:
        if not isinstance(entry, Mapping) or not all(isinstance(entry.get(key), str) for key in TRUST_KEYS):
            continue
        found.append(
            TrustReport(
                account,
                instance_id,
                str(entry["BundleName"])[:64],
                str(entry["BundleArn"])[:600],
                str(entry["FingerprintSha256"])[:64].lower(),
                str(entry["Files"])[:1024],
                str(entry["Status"])[:16],
                str(entry["ExitCode"])[:4],
                str(entry["Message"])[:512],
                str(entry["RecordedAt"])[:20],
                str(entry["InstalledAt"])[:20],
            )
        )
    return found


def bundle_fingerprint(pem_text: str) -> str:
    """The fingerprint a host reports for a bundle: SHA-256 of its certificates as canonical PEM
    (64-column base64, ``\\n`` line ends), in the bundle's order, as the installer writes the file."""
    canonical = []
    for match in _PEM.finditer(pem_text):
        body = base64.b64encode(base64.b64decode("".join(match.group(1).split()))).decode()
        lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
        canonical.append(f"-----BEGIN CERTIFICATE-----\n{lines}\n-----END CERTIFICATE-----\n")
    return hashlib.sha256("".join(canonical).encode()).hexdigest()
