"""The fleet view: which hosts serve which certificate, from what the installer records. Pure.

After every run (installed, unchanged, rolled back or failed) the installer on a host puts one
record per certificate file into SSM custom inventory, type :data:`INVENTORY_TYPE`: the secret
ARN and stage, the three file paths, the served certificate's serial, not-after, SHA-256
fingerprint and subject, the run's status and exit code, and the time. This module turns those
records and each secret's current certificate into per-host states (:class:`HostState`), and
answers "which hosts serve this certificate" (:func:`hosts_serving`) for revocation. No boto3.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

INVENTORY_TYPE = "Custom:CertrotateCertificate"
#: A host is stale when its latest record is older than this many convergence intervals.
STALE_INTERVALS = 2
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
REQUIRED = ("SecretArn", "CertificateFile", "Status", "ExitCode", "RecordedAt", "Serial", "FingerprintSha256")


class HostState(StrEnum):
    CURRENT = "current"  # serves the secret's current certificate
    OLDER = "older"  # serves another certificate of the secret (an older one)
    FAILED = "failed"  # its latest run failed; what it still serves is in the record
    STALE = "stale"  # no record for more than STALE_INTERVALS convergence intervals
    UNKNOWN = "unknown"  # the secret's current certificate is not known here (not readable, no metadata)


class RunStatus(StrEnum):
    """The installer's ``Status`` values."""

    INSTALLED = "installed"
    UNCHANGED = "unchanged"
    ROLLED_BACK = "rolled-back"
    FAILED = "failed"


def normalize_fingerprint(value: str) -> str:
    """``AB:CD:…`` (the installer) and ``abcd…`` (the secret's metadata) alike: lowercase hex."""
    return value.replace(":", "").strip().lower()


def normalize_serial(value: str) -> str:
    """Uppercase hex without colons or leading zeros (``0a:1B`` → ``A1B``)."""
    text = value.replace(":", "").strip().upper().lstrip("0")
    return text or ("0" if value.strip() else "")


@dataclass(frozen=True)
class HostReport:
    """One record: what one certificate file on one instance served at ``recorded_at``."""

    account: str
    instance_id: str
    secret_arn: str
    certificate_file: str
    status: RunStatus
    exit_code: int
    recorded_at: datetime
    serial: str
    fingerprint: str
    not_after: str = ""
    subject: str = ""
    message: str = ""
    version_stage: str = ""
    key_file: str = ""
    chain_file: str = ""
    https_port: str = ""


@dataclass(frozen=True)
class CurrentCertificate:
    """A secret's AWSCURRENT certificate, as the secret says."""

    secret_arn: str
    serial: str
    fingerprint: str


@dataclass(frozen=True)
class HostView:
    report: HostReport
    state: HostState


@dataclass(frozen=True)
class SecretFleet:
    """Every host that reported for one secret, with its state."""

    secret_arn: str
    current: CurrentCertificate | None
    hosts: tuple[HostView, ...]

    def in_state(self, state: HostState) -> list[HostView]:
        return [host for host in self.hosts if host.state is state]


def parse_reports(
    account: str, instance_id: str, content: Iterable[Mapping[str, str]]
) -> tuple[list[HostReport], list[str]]:
    """The records of one instance, and a problem line for each one that is not a record.

    Whoever can call PutInventory for the instance writes these: a bad record is reported, never
    trusted for more than what it claims about that instance.
    """
    reports: list[HostReport] = []
    problems: list[str] = []
    for index, entry in enumerate(content):
        missing = [key for key in REQUIRED if not isinstance(entry.get(key), str)]
        where = f"{account}/{instance_id} {INVENTORY_TYPE}[{index}]"
        if missing:
            problems.append(f"{where}: missing {', '.join(missing)}")
            continue
        try:
            status = RunStatus(entry["Status"])
            code = int(entry["ExitCode"])
            recorded = datetime.strptime(entry["RecordedAt"], TIME_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            problems.append(
                f"{where}: Status {entry['Status']!r} (allowed: {', '.join(RunStatus)}), "
                f"ExitCode {entry['ExitCode']!r} or RecordedAt {entry['RecordedAt']!r} ({TIME_FORMAT}) is not valid"
            )
            continue
        reports.append(
            HostReport(
                account=account,
                instance_id=instance_id,
                secret_arn=entry["SecretArn"],
                certificate_file=entry["CertificateFile"],
                status=status,
                exit_code=code,
                recorded_at=recorded,
                serial=normalize_serial(entry["Serial"]),
                fingerprint=normalize_fingerprint(entry["FingerprintSha256"]),
                not_after=entry.get("NotAfter", ""),
                subject=entry.get("Subject", ""),
                message=entry.get("Message", ""),
                version_stage=entry.get("VersionStage", ""),
                key_file=entry.get("KeyFile", ""),
                chain_file=entry.get("ChainFile", ""),
                https_port=entry.get("HttpsPort", ""),
            )
        )
    return reports, problems


def serves(report: HostReport, fingerprint_or_serial: str) -> bool:
    """Whether the record says the file serves that certificate (a 64-hex-digit value is a
    fingerprint, anything else a serial)."""
    value = normalize_fingerprint(fingerprint_or_serial)
    if len(value) == 64:
        return bool(report.fingerprint) and report.fingerprint == value
    return bool(report.serial) and report.serial == normalize_serial(fingerprint_or_serial)


def classify(report: HostReport, current: CurrentCertificate | None, now: datetime, interval: timedelta) -> HostState:
    """The state of one record: stale first (then nothing it says is known now), then failed,
    then unknown when the secret's current certificate is not known, then whether it serves the
    current certificate (by fingerprint; by serial when the secret carries no fingerprint)."""
    if now - report.recorded_at > STALE_INTERVALS * interval:
        return HostState.STALE
    if report.status is RunStatus.FAILED:
        return HostState.FAILED
    if current is None or not (current.fingerprint or current.serial):
        return HostState.UNKNOWN
    if serves(report, current.fingerprint or current.serial):
        return HostState.CURRENT
    return HostState.OLDER


def fleet_view(
    reports: Iterable[HostReport],
    currents: Mapping[str, CurrentCertificate],
    now: datetime,
    interval: timedelta,
) -> list[SecretFleet]:
    """Per secret (each of ``currents``, then any other secret a host reported), its hosts' states."""
    by_secret: dict[str, list[HostView]] = {arn: [] for arn in currents}
    for report in reports:
        current = currents.get(report.secret_arn)
        by_secret.setdefault(report.secret_arn, []).append(HostView(report, classify(report, current, now, interval)))
    return [
        SecretFleet(
            arn,
            currents.get(arn),
            tuple(sorted(views, key=lambda v: (v.report.account, v.report.instance_id, v.report.certificate_file))),
        )
        for arn, views in by_secret.items()
    ]


def hosts_serving(reports: Sequence[HostReport], fingerprint_or_serial: str) -> list[HostReport]:
    """The records whose file served that certificate when last reported, whatever their state.

    Failed and stale hosts count: a failed run leaves the previous certificate served, and a host
    that stopped reporting may still serve what it last reported. Revocation (issue 12) may revoke
    a superseded certificate only when this is empty.
    """
    return [report for report in reports if serves(report, fingerprint_or_serial)]
