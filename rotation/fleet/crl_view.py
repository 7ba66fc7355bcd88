"""The CRLs each mutual-TLS host installed, from its ``Custom:CertrotateCrl`` records, and what is wrong. Pure.

After every CRL run (InstallCRL, from the stack's CRL refresh association) the installer puts one
record per CA whose CRL the server's CRL file holds: the CA's name, the CRL number, thisUpdate and
nextUpdate, the revoked count, the source and file, the latest run's status, exit code and message
(one record with no CA when nothing was ever installed). A server refuses every client of a CA whose
CRL is past its nextUpdate, so such a record is a problem, and so is a failed latest run (the host
keeps the CRL it had, which may no longer list the latest revocations). The record's schema is the
installer's (``ssm_documents/certrotate_installer/crl_record.py``); ``tests/installer/test_fleet_schema.py``
pins these names to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

CRL_INVENTORY_TYPE = "Custom:CertrotateCrl"
CRL_KEYS = (
    "CaName",
    "CrlNumber",
    "ThisUpdate",
    "NextUpdate",
    "Revoked",
    "Source",
    "File",
    "Status",
    "ExitCode",
    "Message",
    "RecordedAt",
)
_TIME = "%Y-%m-%dT%H:%M:%SZ"


class CrlHealth(StrEnum):
    """What a record says about the host's CRL, worst first."""

    FAILED = "failed"  # the latest refresh failed (the CRL it had stays installed)
    EXPIRED = "expired"  # past its nextUpdate: the server refuses every client of that CA
    OK = "ok"


@dataclass(frozen=True)
class CrlReport:
    """One host's record of one CA's CRL."""

    account: str
    instance_id: str
    ca_name: str  # "" when no CRL was ever installed
    crl_number: str
    this_update: str
    next_update: str  # "" when the CRL has none
    revoked: str
    source: str
    file: str
    status: str  # installed, unchanged or failed (the latest run)
    exit_code: str
    message: str
    recorded_at: str


def parse_crl_records(account: str, instance_id: str, content: Sequence[object]) -> list[CrlReport]:
    """The well-formed records of one instance (a record missing a key, or not all strings, is skipped:
    a host's root writes its own inventory, so a record is a claim, shown, never acted on)."""
    found: list[CrlReport] = []
    for entry in content:
        if not isinstance(entry, Mapping) or not all(isinstance(entry.get(key), str) for key in CRL_KEYS):
            continue
        found.append(
            CrlReport(
                account,
                instance_id,
                str(entry["CaName"])[:256],
                str(entry["CrlNumber"])[:48],
                str(entry["ThisUpdate"])[:20],
                str(entry["NextUpdate"])[:20],
                str(entry["Revoked"])[:12],
                str(entry["Source"])[:1024],
                str(entry["File"])[:1024],
                str(entry["Status"])[:16],
                str(entry["ExitCode"])[:4],
                str(entry["Message"])[:512],
                str(entry["RecordedAt"])[:20],
            )
        )
    return found


def _when(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, _TIME).replace(tzinfo=UTC)
    except ValueError:
        return None


def health(report: CrlReport, now: datetime) -> CrlHealth:
    """FAILED for a failed latest run; EXPIRED when ``now`` is past the recorded nextUpdate (a
    nextUpdate that is not a time counts as past: the server's CRL cannot be shown current)."""
    if report.status == "failed":
        return CrlHealth.FAILED
    if report.next_update:
        next_update = _when(report.next_update)
        if next_update is None or now > next_update:
            return CrlHealth.EXPIRED
    return CrlHealth.OK


def problems(reports: Sequence[CrlReport], now: datetime) -> list[str]:
    """One line per record that is not OK, naming the host, the CA and why."""
    lines = []
    for report in reports:
        found = health(report, now)
        where = f"{report.account}/{report.instance_id} CRL of {report.ca_name or '(none installed)'}"
        if found is CrlHealth.FAILED:
            lines.append(f"{where}: the latest refresh failed (exit {report.exit_code}: {report.message})")
        elif found is CrlHealth.EXPIRED:
            lines.append(f"{where}: past its nextUpdate {report.next_update}: the server refuses that CA's clients")
    return lines
