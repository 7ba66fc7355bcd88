"""Which of a secret's issued certificates to revoke, and why. Pure: no boto3.

The history comes from the issuance ledger (:mod:`rotation.fleet.ledger`): one entry per certificate the
rotation function itself received from the CA for that secret, written by the function alone. A
secret's writer can put any PEM into the secret, but never an entry into the ledger, so nothing
they write can get a certificate revoked that this secret's rotations did not issue.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from rotation.fleet.scope import DEFAULT_SCOPE, FleetScope
from rotation.fleet.view import (
    HostReport,
    RecordProblem,
    names_secret,
    normalize_fingerprint,
    normalize_serial,
    serves_certificate,
    still_served_by_stale_worker,
)

#: How long a host's word holds a revocation after it was last heard: a record that names the
#: certificate counts only while its ``RecordedAt`` is at most this old (and not in the future by more
#: than :data:`CLOCK_SKEW`), and a past holder (the ledger's ``HeldBy``) or an unreadable record holds
#: only until this long after a host was last seen serving the certificate (the ledger's
#: ``LastServedAt``; the superseding time when none was). Two of the longest State Manager intervals
#: (a "rate" below 31 days), so a live host that converges on any schedule reports well within it;
#: a host that stopped reporting, or was terminated, releases after it, with a "released" log line and
#: ``RevocationHoldersReleased`` (alarmed).
HOLDER_RELEASE_AFTER = timedelta(days=62)
_SERIAL = re.compile(r"[0-9A-F]{1,40}")
#: A record dated further ahead than this is not believed fresh (its host's clock, or a forger's word).
CLOCK_SKEW = timedelta(days=1)


class RevocationReason(StrEnum):
    """Private CA ``RevocationReason`` values certrotate uses."""

    SUPERSEDED = "SUPERSEDED"
    KEY_COMPROMISE = "KEY_COMPROMISE"


class Outcome(StrEnum):
    REVOKE = "revoke"
    SERVED = "served"  # a host still reports serving it: waits, reported
    HELD = "held"  # what could concern it is not known (a record, an account) or not accounted for
    IN_GRACE = "in-grace"  # replaced less than the grace ago
    NOT_SUPERSEDED = "not-superseded"  # never replaced (a pending or the current one)
    CURRENT = "current"  # AWSCURRENT or AWSPENDING holds it now
    ALREADY_REVOKED = "already-revoked"
    EXPIRED = "expired"  # past not-after: revoking adds nothing to a CRL


@dataclass(frozen=True)
class IssuedCertificate:
    """One ledger entry: a certificate the rotation of ``secret_arn`` received from ``ca_arn``."""

    secret_arn: str
    serial: str  # uppercase hex, no colons (rotation.fleet.view.normalize_serial)
    ca_arn: str
    certificate_type: str
    version_id: str
    issued_at: datetime
    not_after: datetime
    fingerprint: str = ""
    current_from: datetime | None = None
    superseded_at: datetime | None = None
    revoked_at: datetime | None = None
    revocation_reason: str = ""
    #: "account/instance" of every host the revoker once saw serving it (the ledger's HeldBy).
    held_by: tuple[str, ...] = ()
    #: Set when the rotation refused the certificate after the CA issued it (outside the policy, a
    #: chain that does not verify, too large a secret): never staged, so never served. Such an entry
    #: is superseded from the start: the revoker revokes it after the grace like any replaced one.
    refused_at: datetime | None = None
    #: Why it was refused (the error, without key material).
    refusal: str = ""
    #: When the revoker last saw a host serving it (the ledger's LastServedAt; None: never, or an
    #: entry older than the attribute).
    last_served_at: datetime | None = None

    @property
    def pca_serial(self) -> str:
        """The serial as Private CA's RevokeCertificate takes it: lowercase colon-separated hex pairs,
        as every example in the API reference writes it (``e8:cb:d2:be:...``)."""
        text = self.serial if len(self.serial) % 2 == 0 else "0" + self.serial
        return ":".join(text[i : i + 2] for i in range(0, len(text), 2)).lower()


@dataclass(frozen=True)
class Decision:
    certificate: IssuedCertificate
    outcome: Outcome
    served_by: tuple[str, ...] = ()  # "account/instance" of the hosts still serving it
    held_for: tuple[str, ...] = ()  # why it is held: each names the instance or the account
    #: holders whose word no longer counts (silent past HOLDER_RELEASE_AFTER, or of an account that
    #: may not read the secret): each names the host and why
    released: tuple[str, ...] = ()
    #: the latest RecordedAt among the records serving it (never later than the decision's time)
    heard_at: datetime | None = None

    @property
    def detail(self) -> str:
        reasons = [f"served by {', '.join(self.served_by)}"] if self.served_by else []
        reasons.extend(self.held_for)
        return "; ".join(reasons) or self.outcome.value


@dataclass(frozen=True)
class FleetEvidence:
    """What the fleet view said about the candidates' serials.

    ``reports``: the readable records of every instance whose records name a candidate's (or the
    current certificate's) serial; ``bad_records``: the unreadable ones among them; ``unreadable``:
    one line per account and region that could not be read and whose hosts may serve the secret
    (:meth:`rotation.fleet.scope.FleetScope.concerns`).
    """

    reports: tuple[HostReport, ...] = ()
    bad_records: tuple[RecordProblem, ...] = ()
    unreadable: tuple[str, ...] = ()
    #: which accounts' records count for which secret (``SecretReaders``; the default: every account)
    scope: FleetScope = DEFAULT_SCOPE


def plan_superseded(
    entries: Iterable[IssuedCertificate],
    in_use: Iterable[str],
    serving: Callable[[str], Sequence[HostReport]],
    now: datetime,
    grace: timedelta,
) -> list[Decision]:
    """One decision per ledger entry, newest first.

    Args:
        entries: the secret's ledger.
        in_use: serials its AWSCURRENT and AWSPENDING versions hold now (never revoked, whatever
            the ledger says).
        serving: the fleet view's hosts serving a serial (:func:`rotation.fleet.view.hosts_serving`).
        now: the time of the decision.
        grace: ``REVOKE_SUPERSEDED_AFTER``.
    """
    keep = {normalize_serial(serial) for serial in in_use if serial}
    decisions: list[Decision] = []
    for entry in sorted(entries, key=lambda e: e.issued_at, reverse=True):
        decisions.append(Decision(entry, _outcome(entry, keep, now, grace)))
    return [_with_hosts(d, serving) if d.outcome is Outcome.REVOKE else d for d in decisions]


def candidates(
    entries: Iterable[IssuedCertificate], in_use: Iterable[str], now: datetime, grace: timedelta
) -> list[Decision]:
    """One decision per ledger entry, newest first, before the fleet is read: an entry is a
    candidate (``REVOKE``) when it is superseded past the grace, not in use, not expired and not
    revoked. Only then is the fleet view worth reading."""
    keep = {normalize_serial(serial) for serial in in_use if serial}
    ordered = sorted(entries, key=lambda e: e.issued_at, reverse=True)
    return [Decision(entry, _outcome(entry, keep, now, grace)) for entry in ordered]


def hold_or_revoke(
    decisions: Sequence[Decision],
    evidence: FleetEvidence,
    now: datetime,
    reported: Sequence[IssuedCertificate] = (),
) -> list[Decision]:
    """Each candidate revoked only when nothing the fleet view says could concern it.

    The secret's history is the decisions' certificates and ``reported``: the other entries of the
    secret (revoked or expired, so not read with the open ones) whose serials the records in
    ``evidence`` report (:meth:`rotation.fleet.ledger.Ledger.entries_by_serial`).

    Only the records of accounts that may read the secret count (``evidence.scope``,
    :meth:`rotation.fleet.scope.FleetScope.concerns`), readable or not, and a past holder of another
    account is released. Among those, a candidate waits (``SERVED``) while a record heard within
    :data:`HOLDER_RELEASE_AFTER` reports its serial or fingerprint, whatever secret ARN the record
    names (full, partial, another one, made up). It is ``HELD`` when a record that names its serial or
    fingerprint cannot be read, or one that names the secret (any form) has no readable serial or
    fingerprint; when an account whose hosts may serve the secret cannot be read; or when a host once
    seen serving it (``held_by``) does not now report a newer certificate of the same secret (one
    that became current after this one was superseded) in a record made after that one became
    current: a record that vanished, or was rewritten to a serial this secret's rotations never
    delivered, proves nothing, so it holds instead of releasing. Host holds end
    :data:`HOLDER_RELEASE_AFTER` after a host was last seen serving the certificate (``released``).
    Other unreadable records and accounts hold nothing.
    """
    history = [d.certificate for d in decisions] + list(reported)
    return [_judge(d, evidence, history, now) if d.outcome is Outcome.REVOKE else d for d in decisions]


def successors(entry: IssuedCertificate, history: Iterable[IssuedCertificate]) -> list[IssuedCertificate]:
    """The entries of the secret that became current after ``entry`` was superseded."""
    if entry.superseded_at is None:
        return []
    return [e for e in history if e.current_from is not None and e.current_from >= entry.superseded_at]


def _judge(
    decision: Decision, evidence: FleetEvidence, history: Sequence[IssuedCertificate], now: datetime
) -> Decision:
    entry = decision.certificate
    serial, fingerprint = normalize_serial(entry.serial), normalize_fingerprint(entry.fingerprint)

    def counts(account: str) -> bool:
        return evidence.scope.concerns(account, entry.secret_arn)

    reports = [r for r in evidence.reports if counts(r.account)]
    naming = [
        r
        for r in reports
        if serves_certificate(r, serial, fingerprint)
        or (serial and still_served_by_stale_worker(r, serial) and _reports_one_of(r, entry.secret_arn, history))
    ]
    serving = [r for r in naming if _heard_lately(r, now)]
    released = [
        f"{r.account}/{r.instance_id}: last reported it {r.recorded_at:%Y-%m-%dT%H:%M:%SZ}, "
        f"not within {HOLDER_RELEASE_AFTER.days} days of now"
        for r in naming
        if r not in serving
    ]
    names = tuple(sorted({f"{h.account}/{h.instance_id}" for h in serving}))
    last_seen = max(d for d in (entry.last_served_at, entry.superseded_at, *(r.recorded_at for r in serving)) if d)
    silent_too_long = now - last_seen > HOLDER_RELEASE_AFTER
    bad_records = [p for p in evidence.bad_records if counts(p.account)]
    held, gone = _unreadable(entry, bad_records, reports, now, silent_too_long)
    released.extend(gone)
    held.extend(f"account {line}" for line in evidence.unreadable)
    for host in entry.held_by:
        if host in names or _moved_on(host, reports, successors(entry, history)):
            continue
        if not counts(host.split("/", 1)[0]):
            released.append(f"{host}: its account may not read this secret (SecretReaders)")
        elif silent_too_long:
            released.append(f"{host} served it and has not been seen serving it for {HOLDER_RELEASE_AFTER.days} days")
        else:
            held.append(f"{host} served it and reports no newer certificate of this secret since")
    if names:
        heard = min(max(r.recorded_at for r in serving), now)
        return Decision(entry, Outcome.SERVED, names, tuple(held), tuple(released), heard)
    if held:
        return Decision(entry, Outcome.HELD, (), tuple(held), tuple(released))
    return Decision(entry, decision.outcome, released=tuple(released))


def _unreadable(
    entry: IssuedCertificate,
    problems: Sequence[RecordProblem],
    reports: Sequence[HostReport],
    now: datetime,
    silent_too_long: bool,
) -> tuple[list[str], list[str]]:
    """What unreadable records say of ``entry`` (those of accounts that may read its secret): held for
    a record not a record that names its serial or fingerprint, or that names its secret (any form)
    with no readable serial; held for a readable record of the secret whose Serial is not a serial
    (an empty one is the installer's word that the file holds no certificate: it holds nothing).
    Each releases once its host has been silent past :data:`HOLDER_RELEASE_AFTER`. (held, released)"""
    serial, fingerprint = normalize_serial(entry.serial), normalize_fingerprint(entry.fingerprint)
    held: list[str] = []
    released: list[str] = []
    for problem in problems:
        by_certificate = (problem.serial and problem.serial == serial) or (
            fingerprint and problem.fingerprint == fingerprint
        )
        by_secret = not readable_serial(problem.serial) and names_secret(problem.secret_arn, entry.secret_arn)
        if not (by_certificate or by_secret):
            continue
        where = f"{problem.account}/{problem.instance_id}: unreadable record"
        what = "" if by_certificate else " names this secret, its serial unreadable"
        if silent_too_long:
            days = HOLDER_RELEASE_AFTER.days
            released.append(f"{where}{what} ({problem.detail}), no host seen serving it for {days} days")
        else:
            held.append(f"{where}{what} ({problem.detail})")
    for report in reports:  # a record of this secret whose Serial is not a serial ('' is the installer's "no file")
        if not report.serial or readable_serial(report.serial):
            continue
        if not names_secret(report.secret_arn, entry.secret_arn):
            continue
        where = f"{report.account}/{report.instance_id}: record names this secret, its serial unreadable"
        if _heard_lately(report, now):
            held.append(f"{where} (Serial {report.serial[:20]!r})")
        else:
            released.append(f"{where}, last reported {report.recorded_at:%Y-%m-%dT%H:%M:%SZ}")
    return held, released


def readable_serial(serial: str) -> bool:
    """Whether a normalized serial is one (hex digits, at most 20 bytes as RFC 5280 allows)."""
    return bool(_SERIAL.fullmatch(serial))


def _heard_lately(report: HostReport, now: datetime) -> bool:
    """Whether a record is recent enough to hold a revocation (:data:`HOLDER_RELEASE_AFTER`)."""
    return now - HOLDER_RELEASE_AFTER <= report.recorded_at <= now + CLOCK_SKEW


def _reports_one_of(report: HostReport, secret_arn: str, history: Sequence[IssuedCertificate]) -> bool:
    """Whether the record's own certificate is one the rotation of ``secret_arn`` received: only then
    is its served check's stale serial about this secret (a host's record of another secret, or of a
    certificate it made up, names any serial it likes there)."""
    return any(e.secret_arn == secret_arn and serves_certificate(report, e.serial, e.fingerprint) for e in history)


def _moved_on(host: str, reports: Sequence[HostReport], newer: Sequence[IssuedCertificate]) -> bool:
    mine = [r for r in reports if f"{r.account}/{r.instance_id}" == host]
    return any(
        serves_certificate(r, e.serial, e.fingerprint)
        and e.current_from is not None
        and r.recorded_at >= e.current_from
        for r in mine
        for e in newer
    )


def _outcome(entry: IssuedCertificate, keep: set[str], now: datetime, grace: timedelta) -> Outcome:
    if entry.revoked_at is not None:
        return Outcome.ALREADY_REVOKED
    if normalize_serial(entry.serial) in keep:
        return Outcome.CURRENT
    if entry.superseded_at is None:
        return Outcome.NOT_SUPERSEDED
    if entry.not_after <= now:
        return Outcome.EXPIRED
    if now - entry.superseded_at < grace:
        return Outcome.IN_GRACE
    return Outcome.REVOKE


def _with_hosts(decision: Decision, serving: Callable[[str], Sequence[HostReport]]) -> Decision:
    hosts = serving(decision.certificate.serial)
    if not hosts:
        return decision
    names = tuple(sorted({f"{h.account}/{h.instance_id}" for h in hosts}))
    return Decision(decision.certificate, Outcome.SERVED, names)


def history_state(entry: IssuedCertificate, now: datetime) -> str:
    """What ``certrotate status NAME`` says of a ledger entry."""
    if entry.revoked_at is not None:
        return f"revoked ({entry.revocation_reason or 'unspecified'})"
    if entry.not_after <= now:
        return "expired"
    if entry.refused_at is not None:
        return "refused, valid"
    if entry.superseded_at is not None:
        return "superseded, valid"
    return "current" if entry.current_from is not None else "issued, never current"


__all__ = [
    "Decision",
    "FleetEvidence",
    "IssuedCertificate",
    "Outcome",
    "RevocationReason",
    "candidates",
    "history_state",
    "hold_or_revoke",
    "plan_superseded",
]
