"""Revocation through Private CA: the IO around :mod:`rotation.revocation`.

Runs in the rotation function after finishSecret (see README, "Revocation") and in ``certrotate
revoke``. The serial and CA always come from the ledger entry; RevokeCertificate is called on the
entry's CA, which the rotation role may call only on the configured CAs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from rotation import telemetry
from rotation.aws import aws_call
from rotation.errors import AwsCallError
from rotation.fleet import HostReport, hosts_serving
from rotation.fleet_inventory import read_fleet
from rotation.ledger import Ledger
from rotation.revocation import Decision, IssuedCertificate, Outcome, RevocationReason, plan_superseded
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


def revoke_superseded(
    ledger: Ledger,
    pca_for_region: Callable[[str], Any],
    secret_arn: str,
    in_use: Sequence[str],
    reports: Sequence[HostReport],
    now: datetime,
    grace: timedelta,
) -> list[Decision]:
    """Revoke each superseded entry past its grace that no host serves; the decisions, as taken.

    Raises:
        AwsCallError: a ledger or RevokeCertificate call failed (entries revoked before it stay so).
    """
    mine = [r for r in reports if r.secret_arn == secret_arn]
    decisions = plan_superseded(ledger.entries(secret_arn), in_use, lambda s: hosts_serving(mine, s), now, grace)
    served = [d for d in decisions if d.outcome is Outcome.SERVED]
    for decision in served:
        logger.warning(
            "superseded certificate %s not revoked: %s",
            decision.certificate.serial,
            decision.detail,
            extra={"serial": decision.certificate.serial, "reason": RevocationReason.SUPERSEDED.value},
        )
    if served:
        telemetry.revocation_skipped_served(len(served))
    for decision in decisions:
        if decision.outcome is Outcome.REVOKE:
            revoke(ledger, pca_for_region, decision.certificate, RevocationReason.SUPERSEDED, now)
    return decisions


def fleet_reader(
    make_ssm: Callable[[], Any], assume: Callable[[str], Any], role_arns: Sequence[str]
) -> Callable[[str], tuple[list[HostReport], list[str]]]:
    """The fleet view the function reads: its own account (``make_ssm()``, called only when a
    revocation needs the view), then each workload account through its FleetViewRole
    (``assume(role)`` → an SSM client there). A role that cannot be read raises, so nothing is
    revoked while a workload account's hosts are unknown.
    """

    def read(account: str) -> tuple[list[HostReport], list[str]]:
        reports, problems = read_fleet(make_ssm(), account)
        for role in role_arns:
            found, bad = read_fleet(assume(role), role.split(":")[4])
            reports.extend(found)
            problems.extend(bad)
        return reports, problems

    return read
