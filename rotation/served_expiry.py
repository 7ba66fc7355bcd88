"""Days to expiry of what hosts serve, per secret, from the fleet view's records. Pure.

``DaysToExpiry`` says what a rotation staged; this says what the hosts still serve (a host that
never converged keeps the old certificate to its end). Each record names the served certificate's
``NotAfter``; per secret (the ``SecretName`` dimension, from the ARN the record names, full or
partial), the least of its hosts' values is the one that matters. Failed and stale hosts count, as
for revocation: a host that stopped reporting may still serve what it last reported.

Records are written by the hosts (the trust unit is the hosts of one account): a forged record can
raise the alarm of a secret it names, never lower another host's value (the least one wins).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from rotation.fleet import TIME_FORMAT, HostReport
from rotation.redaction import quote
from rotation.telemetry import secret_name


@dataclass(frozen=True)
class ServedExpiry:
    """The host record that serves a secret's soonest-expiring certificate."""

    secret_name: str
    days: float
    report: HostReport


def served_expiry(
    reports: Iterable[HostReport], now: datetime, secret_account: str
) -> tuple[list[ServedExpiry], list[str]]:
    """Per secret of ``secret_account`` (where certrotate's secrets live), the fewest days to expiry
    any host serves (with that host's record), and a line for each record that names no secret ARN
    of that account or no readable ``NotAfter`` (it counts for nothing: a host cannot invent series
    for secrets that are not there)."""
    soonest: dict[str, ServedExpiry] = {}
    problems: list[str] = []
    for report in reports:
        where = f"{report.account}/{report.instance_id} {quote(report.certificate_file)}"
        name = secret_name(report.secret_arn)
        if name is None or report.secret_arn.split(":")[4] != secret_account:
            problems.append(f"{where}: SecretArn {quote(report.secret_arn)} is not a secret ARN of {secret_account}")
            continue
        try:
            not_after = datetime.strptime(report.not_after, TIME_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            problems.append(f"{where}: NotAfter {quote(report.not_after)} is not {TIME_FORMAT}")
            continue
        days = round((not_after - now).total_seconds() / 86400, 2)
        if name not in soonest or days < soonest[name].days:
            soonest[name] = ServedExpiry(name, days, report)
    return sorted(soonest.values(), key=lambda s: s.secret_name), problems
