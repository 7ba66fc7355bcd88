"""The fleet view: which hosts serve which certificate, from what the installer records. Pure.

After every run (installed, unchanged, rolled back or failed) the installer on a host puts one
record per certificate file into SSM custom inventory, type :data:`INVENTORY_TYPE`: the secret
ARN and stage, the three file paths, the served certificate's serial, not-after, SHA-256
fingerprint and subject, the run's status and exit code, the time, and (newer installers) the
run's served-truth check, ``ServedCheck``: ``16/16`` when 16 fresh connections all presented the
certificate the run expected, ``stale: 3/16 serial AB…, new: 13/16`` when some presented another
(a worker left from an earlier reload), empty when no check ran. This module turns those
records and each secret's current certificate into per-host states (:class:`HostState`), and
answers "which hosts serve this certificate" (:func:`hosts_serving`) for revocation. No boto3.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

INVENTORY_TYPE = "Custom:CertrotateCertificate"
#: The instance tag a secret's State Manager association targets (value: the secret's name).
INSTANCE_TAG = "certrotate:secret"
#: A host is stale when its latest record is older than this many convergence intervals.
STALE_INTERVALS = 2
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
REQUIRED = ("SecretArn", "CertificateFile", "Status", "ExitCode", "RecordedAt", "Serial", "FingerprintSha256")
# The record's schema is the installer's (ssm_documents/certrotate_installer/fleet_record.py and
# served_check.py, shipped alone in the documents); tests/installer/test_fleet_schema.py pins these
# names and bounds to it.
#: The installer bounds ServedCheck to this many characters (its ``SUMMARY_LIMIT``); a longer value is cut.
SERVED_CHECK_LIMIT = 128
#: How the installer's ServedCheck starts when a worker presented another certificate (its ``STALE_PREFIX``).
STALE_PREFIX = "stale:"
SERVER_LIMIT = 16  # a record's Server is a host's word: shown, cut, never acted on
_STALE = re.compile("^" + STALE_PREFIX + r" [0-9]{1,3}/[0-9]{1,3} serial ([0-9A-Fa-f:]{1,64})(,|$)")


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
    server: str = ""  # the server the file is for, as the host says (empty: an older installer)
    served_check: str = ""  # the run's served-truth check (empty: none ran, or an older installer)

    @property
    def stale_serial(self) -> str:
        """The serial the served check saw a worker present instead (its most frequent), normalized; ''."""
        match = _STALE.match(self.served_check)
        return normalize_serial(match.group(1)) if match else ""


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


@dataclass(frozen=True)
class RecordProblem:
    """A record that is not one: what it names of a certificate (for revocation to hold just that)."""

    account: str
    instance_id: str
    where: str
    detail: str
    serial: str = ""  # normalized, when the record carries a Serial string
    fingerprint: str = ""
    secret_arn: str = ""  # the SecretArn string it carries, as written (any form, or anything)

    def __str__(self) -> str:
        return f"{self.where}: {self.detail}"


def parse_records(
    account: str, instance_id: str, content: Iterable[Mapping[str, str]]
) -> tuple[list[HostReport], list[RecordProblem]]:
    """The records of one instance, and a :class:`RecordProblem` for each one that is not a record.

    Whoever can call PutInventory for the instance writes these: a bad record is reported, never
    trusted for more than what it claims about that instance.
    """
    reports: list[HostReport] = []
    problems: list[RecordProblem] = []
    for index, entry in enumerate(content):
        where = f"{account}/{instance_id} {INVENTORY_TYPE}[{index}]"
        if not isinstance(entry, Mapping):
            problems.append(RecordProblem(account, instance_id, where, "not a map"))
            continue
        serial = entry.get("Serial")
        fingerprint = entry.get("FingerprintSha256")
        named = {
            "serial": normalize_serial(serial) if isinstance(serial, str) else "",
            "fingerprint": normalize_fingerprint(fingerprint) if isinstance(fingerprint, str) else "",
            "secret_arn": entry["SecretArn"] if isinstance(entry.get("SecretArn"), str) else "",
        }
        missing = [key for key in REQUIRED if not isinstance(entry.get(key), str)]
        if missing:
            problems.append(RecordProblem(account, instance_id, where, f"missing {', '.join(missing)}", **named))
            continue
        try:
            status = RunStatus(entry["Status"])
            code = int(entry["ExitCode"])
            recorded = datetime.strptime(entry["RecordedAt"], TIME_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            detail = (
                f"Status {entry['Status']!r} (allowed: {', '.join(RunStatus)}), "
                f"ExitCode {entry['ExitCode']!r} or RecordedAt {entry['RecordedAt']!r} ({TIME_FORMAT}) is not valid"
            )
            problems.append(RecordProblem(account, instance_id, where, detail, **named))
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
                server=_host_text(entry.get("Server"), SERVER_LIMIT),
                served_check=_host_text(entry.get("ServedCheck"), SERVED_CHECK_LIMIT),
            )
        )
    return reports, problems


def _host_text(value: object, limit: int) -> str:
    """A host-written field (ServedCheck, Server): any string, cut to ``limit``; anything else, or none, is ''."""
    return value[:limit] if isinstance(value, str) else ""


def parse_reports(
    account: str, instance_id: str, content: Iterable[Mapping[str, str]]
) -> tuple[list[HostReport], list[str]]:
    """:func:`parse_records` with each problem as its line."""
    reports, problems = parse_records(account, instance_id, content)
    return reports, [str(problem) for problem in problems]


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


#: The random suffix Secrets Manager appends to a secret's name in its ARN ("-" and six characters).
_ARN_SUFFIX = re.compile(r"-[A-Za-z0-9]{6}")


def secret_forms(secret_arn: str) -> list[str]:
    """Every way a record may name one secret: its full ARN, its partial ARN (no random suffix;
    RunUpdateTLS accepts it), and its name with and without the suffix (Secrets Manager takes a
    name or an ARN wherever it takes a SecretId)."""
    parts = secret_arn.split(":")
    if len(parts) < 7:
        return [secret_arn] if secret_arn else []
    name = ":".join(parts[6:])
    forms = [secret_arn, name]
    if _ARN_SUFFIX.fullmatch(secret_arn[-7:]):
        forms += [secret_arn[:-7], name[:-7]]
    return list(dict.fromkeys(f for f in forms if f))


def names_secret(value: str, secret_arn: str) -> bool:
    """Whether a record's ``SecretArn`` string names ``secret_arn`` in any of :func:`secret_forms`."""
    return bool(value) and value in secret_forms(secret_arn)


def fleet_view(
    reports: Iterable[HostReport],
    currents: Mapping[str, CurrentCertificate],
    now: datetime,
    interval: timedelta,
) -> list[SecretFleet]:
    """Per secret (each of ``currents``, then any other secret a host reported), its hosts' states."""
    by_secret: dict[str, list[HostView]] = {arn: [] for arn in currents}
    # A host installed through a secret's partial ARN (no random suffix; RunUpdateTLS accepts it)
    # belongs to that secret: without this it would show as a secret of its own, never current.
    partial = {arn[:-7]: arn for arn in currents if _ARN_SUFFIX.fullmatch(arn[-7:])}
    for report in reports:
        arn = report.secret_arn if report.secret_arn in currents else partial.get(report.secret_arn, report.secret_arn)
        by_secret.setdefault(arn, []).append(HostView(report, classify(report, currents.get(arn), now, interval)))
    return [
        SecretFleet(
            arn,
            currents.get(arn),
            tuple(sorted(views, key=lambda v: (v.report.account, v.report.instance_id, v.report.certificate_file))),
        )
        for arn, views in by_secret.items()
    ]


def serial_forms(serial: str) -> list[str]:
    """The spellings of one serial a record may carry, for an exact-match GetInventory filter: the
    installer's (uppercase hex, no colons) first, then lowercase and colon-separated bytes."""
    plain = normalize_serial(serial)
    if not plain:
        return []
    padded = plain if len(plain) % 2 == 0 else "0" + plain
    pairs = ":".join(padded[i : i + 2] for i in range(0, len(padded), 2))
    forms = [plain, plain.lower(), padded, padded.lower(), pairs, pairs.lower()]
    return list(dict.fromkeys(forms))


def serves_certificate(report: HostReport, serial: str, fingerprint: str) -> bool:
    """Whether the record reports this certificate by serial or by fingerprint, whatever secret ARN
    (full, partial or made up) it names: a host serves a certificate, not an ARN."""
    if serial and serves(report, serial):
        return True
    return bool(fingerprint) and len(normalize_fingerprint(fingerprint)) == 64 and serves(report, fingerprint)


def hosts_serving(reports: Sequence[HostReport], fingerprint_or_serial: str) -> list[HostReport]:
    """The records whose file served that certificate when last reported, whatever their state.

    Failed and stale hosts count: a failed run leaves the previous certificate served, and a host
    that stopped reporting may still serve what it last reported. Revocation (issue 12) may revoke
    a superseded certificate only when this is empty.
    """
    return [
        report
        for report in reports
        if serves(report, fingerprint_or_serial) or still_served_by_stale_worker(report, fingerprint_or_serial)
    ]


def still_served_by_stale_worker(report: HostReport, serial: str) -> bool:
    """Whether the record's served check saw a worker present this serial (not the record's own
    certificate): the host still hands it to some connections, so it must not be revoked."""
    stale = report.stale_serial
    return bool(stale) and len(normalize_fingerprint(serial)) != 64 and stale == normalize_serial(serial)
