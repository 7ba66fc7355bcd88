"""Which of a secret's issued certificates to revoke, and why. Pure: no boto3.

The history comes from the issuance ledger (:mod:`rotation.ledger`): one entry per certificate the
rotation function itself received from the CA for that secret, written by the function alone. A
secret's writer can put any PEM into the secret, but never an entry into the ledger, so nothing
they write can get a certificate revoked that this secret's rotations did not issue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from rotation.fleet import HostReport, normalize_serial


class RevocationReason(StrEnum):
    """Private CA ``RevocationReason`` values certrotate uses."""

    SUPERSEDED = "SUPERSEDED"
    KEY_COMPROMISE = "KEY_COMPROMISE"


class Outcome(StrEnum):
    REVOKE = "revoke"
    SERVED = "served"  # a host still reports serving it: waits, reported
    IN_GRACE = "in-grace"  # replaced less than the grace ago
    NOT_SUPERSEDED = "not-superseded"  # never replaced (a pending or the current one)
    CURRENT = "current"  # AWSCURRENT or AWSPENDING holds it now
    ALREADY_REVOKED = "already-revoked"
    EXPIRED = "expired"  # past not-after: revoking adds nothing to a CRL


@dataclass(frozen=True)
class IssuedCertificate:
    """One ledger entry: a certificate the rotation of ``secret_arn`` received from ``ca_arn``."""

    secret_arn: str
    serial: str  # uppercase hex, no colons (rotation.fleet.normalize_serial)
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

    @property
    def pca_serial(self) -> str:
        """The serial as Private CA's RevokeCertificate takes it: colon-separated hex pairs."""
        text = self.serial if len(self.serial) % 2 == 0 else "0" + self.serial
        return ":".join(text[i : i + 2] for i in range(0, len(text), 2))


@dataclass(frozen=True)
class Decision:
    certificate: IssuedCertificate
    outcome: Outcome
    served_by: tuple[str, ...] = ()  # "account/instance" of the hosts still serving it

    @property
    def detail(self) -> str:
        if self.served_by:
            return f"served by {', '.join(self.served_by)}"
        return self.outcome.value


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
        serving: the fleet view's hosts serving a serial (:func:`rotation.fleet.hosts_serving`).
        now: the time of the decision.
        grace: ``REVOKE_SUPERSEDED_AFTER``.
    """
    keep = {normalize_serial(serial) for serial in in_use if serial}
    decisions: list[Decision] = []
    for entry in sorted(entries, key=lambda e: e.issued_at, reverse=True):
        decisions.append(Decision(entry, _outcome(entry, keep, now, grace)))
    return [_with_hosts(d, serving) if d.outcome is Outcome.REVOKE else d for d in decisions]


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
    if entry.superseded_at is not None:
        return "superseded, valid"
    return "current" if entry.current_from is not None else "issued, never current"


__all__ = ["Decision", "IssuedCertificate", "Outcome", "RevocationReason", "history_state", "plan_superseded"]
