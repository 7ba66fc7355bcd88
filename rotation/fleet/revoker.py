"""Revocation through Private CA: the IO around :mod:`rotation.fleet.revocation`.

Runs in the rotation function after finishSecret (see README, "Revocation") and in ``certrotate
revoke``. The serial and CA always come from the ledger entry; RevokeCertificate is called on the
entry's CA, which the rotation role may call only on the configured CAs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rotation import telemetry
from rotation.aws import aws_call
from rotation.errors import AwsCallError, CertRotateError
from rotation.fleet.inventory import read_records
from rotation.fleet.ledger import Ledger
from rotation.fleet.revocation import (
    Decision,
    FleetEvidence,
    IssuedCertificate,
    Outcome,
    RevocationReason,
    candidates,
    hold_or_revoke,
    readable_serial,
    successors,
)
from rotation.fleet.scope import FleetScope
from rotation.fleet.view import HostReport, RecordProblem, normalize_serial
from rotation.telemetry import logger


def revoke(
    ledger: Ledger,
    pca_for_region: Callable[[str], Any],
    entry: IssuedCertificate,
    reason: RevocationReason,
    now: datetime,
    *,
    in_function: bool = True,
) -> bool:
    """Revoke one ledger entry; False when the CA says it already was (then it is recorded as revoked).

    ``in_function`` off for the command line, which prints its own timeline: the log line and the
    EMF metric are for the function's log stream.

    Raises:
        AwsCallError: RevokeCertificate failed for another reason; the ledger is unchanged.
    """
    region = entry.ca_arn.split(":")[3]
    already = False
    try:
        with aws_call("acm-pca", "RevokeCertificate"):
            pca_for_region(region).revoke_certificate(
                CertificateAuthorityArn=entry.ca_arn, CertificateSerial=entry.pca_serial, RevocationReason=reason.value
            )
    except AwsCallError as exc:
        if exc.code != "RequestAlreadyProcessedException":
            raise
        already = True
    ledger.mark_revoked(entry.secret_arn, entry.serial, reason.value, now)
    if not in_function:
        return not already
    if not already:
        telemetry.certificate_revoked(reason.value)
    logger.info(
        "certificate %s revoked (%s)%s",
        entry.serial,
        reason.value,
        " (the CA had already revoked it)" if already else "",
        extra={"serial": entry.serial, "reason": reason.value, "ca_arn": entry.ca_arn},
    )
    return not already


#: The fleet evidence about some serials of one secret: ``fleet(secret_arn, serials)``.
FleetReader = Callable[[str, Sequence[str]], FleetEvidence]


def revoke_superseded(
    ledger: Ledger,
    pca_for_region: Callable[[str], Any],
    entries: Sequence[IssuedCertificate],
    in_use: Sequence[str],
    fleet: FleetReader,
    now: datetime,
    grace: timedelta,
) -> list[Decision]:
    """Revoke each superseded entry past its grace that nothing in the fleet view holds; the
    decisions, as taken. ``entries`` is what the caller read from the ledger (this reads none); the
    fleet view is read once, only when some entry is past its grace, and only for the instances
    whose records name the serial of an entry in ``entries`` (the candidates, their successors, and
    every other one a host may report while a stale worker still presents a candidate) or the secret.

    Raises:
        AwsCallError: a ledger or RevokeCertificate call failed (entries revoked before it stay so).
        LedgerUnprotected: the ledger table lost its protections; nothing was revoked.
    """
    decisions = candidates(entries, in_use, now, grace)
    due = [d.certificate for d in decisions if d.outcome is Outcome.REVOKE]
    if not due:
        return decisions
    secret_arn = due[0].secret_arn
    wanted = [e.serial for e in due]
    for entry in due:
        wanted.extend(s.serial for s in successors(entry, entries))
    wanted.extend(in_use)
    wanted.extend(e.serial for e in entries)  # a stale worker's host reports one of them (hold_or_revoke)
    evidence = fleet(secret_arn, list(dict.fromkeys(wanted)))
    reported = ledger.entries_by_serial(secret_arn, _reported(evidence, decisions, entries))
    decisions = hold_or_revoke(decisions, evidence, now, reported)
    released = [d for d in decisions if d.released]
    for decision in released:
        logger.warning(
            "superseded certificate %s: holders released: %s",
            decision.certificate.serial,
            "; ".join(decision.released),
            extra={"serial": decision.certificate.serial, "released": list(decision.released)},
        )
    if released:
        telemetry.revocation_holders_released(sum(len(d.released) for d in released))
    waiting = [d for d in decisions if d.outcome in (Outcome.SERVED, Outcome.HELD)]
    for decision in waiting:
        logger.warning(
            "superseded certificate %s not revoked: %s",
            decision.certificate.serial,
            decision.detail,
            extra={
                "serial": decision.certificate.serial,
                "reason": RevocationReason.SUPERSEDED.value,
                "held_for": list(decision.held_for),
                "served_by": list(decision.served_by),
            },
        )
        if decision.served_by:  # every time: LastServedAt dates the holders' latest word
            ledger.add_holders(secret_arn, decision.certificate.serial, decision.served_by, decision.heard_at or now)
    served = [d for d in waiting if d.outcome is Outcome.SERVED]
    if served:
        telemetry.revocation_skipped_served(len(served))
    if waiting:
        longest = max(now - (d.certificate.superseded_at or now) - grace for d in waiting)
        telemetry.revocation_held(len(waiting), max(longest.total_seconds(), 0.0))
    if any(d.outcome is Outcome.REVOKE for d in decisions):
        ledger.require_protected()  # entries of a table that lost its protections revoke nothing
    for decision in decisions:
        if decision.outcome is Outcome.REVOKE:
            revoke(ledger, pca_for_region, decision.certificate, RevocationReason.SUPERSEDED, now)
    return decisions


def _reported(evidence: FleetEvidence, decisions: Sequence[Decision], known: Sequence[IssuedCertificate]) -> list[str]:
    """The serials :func:`hold_or_revoke` may need an entry for beyond ``known`` (the open entries):
    those reported by a candidate's past holder (has it moved on to a newer certificate of the
    secret, revoked since?) or by a host whose stale worker presents another certificate (is its own
    one of the secret's?). Their entries are read by key, as many as the fleet view names, never
    the whole history."""
    holders = {h for d in decisions if d.outcome is Outcome.REVOKE for h in d.certificate.held_by}
    have = {e.serial for e in known}
    found = {
        normalize_serial(r.serial)
        for r in evidence.reports
        if r.stale_serial or f"{r.account}/{r.instance_id}" in holders
    }
    return sorted(s for s in found if s and s not in have and readable_serial(s))


@dataclass(frozen=True)
class Promotion:
    """What finishSecret hands the revoker once AWSCURRENT moved: one object, as Powertools'
    ``IdempotencyConfig`` gathers what its decorator needs."""

    ledger: Ledger
    secret_arn: str
    #: The version now AWSCURRENT (the rotation's token) and its certificate's serial.
    version_id: str
    serial: str
    now: datetime
    #: ``REVOKE_SUPERSEDED_AFTER``; None: the secret asks for no revocation (the ledger is kept).
    grace: timedelta | None = None
    #: Private CA client per region, for RevokeCertificate (None: nothing revoked).
    pca_for_region: Callable[[str], Any] | None = None
    #: The fleet view's evidence (:func:`fleet_reader`; None: nothing revoked).
    fleet: FleetReader | None = None


def after_promotion(promotion: Promotion) -> list[Decision]:
    """finishSecret's bookkeeping: mark the new certificate current in the ledger, reading only the
    secret's open entries (:meth:`Ledger.promote`, one Query whatever the history), then revoke
    superseded entries past their grace (:func:`revoke_superseded`) from what that read returned.

    Raises:
        AwsCallError: a ledger, GetInventory or RevokeCertificate call failed.
    """
    p = promotion
    promoted, entries = p.ledger.promote(p.secret_arn, p.version_id, p.serial, p.now)
    if not promoted:
        logger.info("the new AWSCURRENT certificate is not in the ledger (not issued by this rotation)")
    if p.grace is None or p.pca_for_region is None or p.fleet is None:
        return []
    return revoke_superseded(p.ledger, p.pca_for_region, entries, [p.serial], p.fleet, p.now, p.grace)


def fleet_reader(
    make_ssm: Callable[[str | None], Any],
    assume: Callable[[str, str | None], Any],
    role_arns: Sequence[str],
    scope: FleetScope,
) -> FleetReader:
    """The fleet view the function reads: its own account (``make_ssm(region)``) and each workload
    account through its FleetViewRole (``assume(role, region)`` → an SSM client there), in every
    region of ``scope`` (the function's own when none is configured). Clients are made only when a
    revocation needs the view.

    An account or region that cannot be read holds the revocations of the secrets whose hosts may
    run there (:meth:`FleetScope.concerns`), named in the held reason; it never raises. The records
    of a readable account count for a secret only when that account may read it (the evidence
    carries ``scope``; :func:`rotation.fleet.revocation.hold_or_revoke` applies it).
    """
    regions: list[str | None] = list(scope.regions) or [None]

    def read(secret_arn: str, serials: Sequence[str]) -> FleetEvidence:
        own = secret_arn.split(":")[4]
        sources = [(own, None)] + [(role.split(":")[4], role) for role in role_arns]
        reports: list[HostReport] = []
        problems: list[RecordProblem] = []
        unreadable: list[str] = []
        for account, role in sources:
            for region in regions:
                try:
                    ssm = make_ssm(region) if role is None else assume(role, region)
                    found, bad = read_records(ssm, account, serials, secret_arn, stale_read=False)
                except CertRotateError as exc:
                    if scope.concerns(account, secret_arn):
                        unreadable.append(f"{account} in {region or 'this region'} unreadable: {exc}")
                    else:
                        logger.warning("fleet view of account %s (%s) unreadable: %s", account, region, exc)
                    continue
                reports.extend(found)
                problems.extend(bad)
        return FleetEvidence(tuple(reports), tuple(problems), tuple(unreadable), scope)

    return read
