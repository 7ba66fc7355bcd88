"""Days to expiry of what hosts serve, per secret, from the fleet view's records. Pure.

``DaysToExpiry`` says what a rotation staged; this says what the hosts still serve (a host that
never converged keeps the old certificate to its end). Each record names the served certificate's
``NotAfter``; per secret (the ``SecretName`` dimension, from the ARN the record names, full or
partial), the least of its hosts' values is the one that matters. Failed and stale hosts count, as
for revocation: a host that stopped reporting may still serve what it last reported.

Records are written by the hosts (the trust unit is the hosts of one account): a forged record can
raise the alarm of a secret it names, never lower another host's value (the least one wins). A
record counts only for a secret that exists (ListSecrets of this account) and that the reporting
account may read (``SecretReaders``, :meth:`rotation.fleet.scope.FleetScope.concerns`); any other record is
a line of the problems (the ``ServedRecordsNotCounted`` metric), never a series: a host cannot invent
series, nor push a real one out of the alarm's reach. Only the :data:`SERIES_LIMIT` soonest secrets
are emitted (:func:`soonest_first`), so the Metrics Insights alarm, which evaluates at most 500
series, sees every secret close to expiry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from rotation.fleet.scope import DEFAULT_SCOPE, FleetScope
from rotation.fleet.view import TIME_FORMAT, HostReport
from rotation.redaction import quote
from rotation.telemetry import secret_name


@dataclass(frozen=True)
class ServedExpiry:
    """The host record that serves a secret's soonest-expiring certificate."""

    secret_name: str
    days: float
    report: HostReport


#: Series emitted per run: the Metrics Insights alarm evaluates at most 500 (CloudWatch User Guide,
#: "Metrics Insights quotas": a query returns at most 500 time series), with room to spare.
SERIES_LIMIT = 400


def served_expiry(
    reports: Iterable[HostReport],
    now: datetime,
    secret_account: str,
    secrets: Mapping[str, str],
    scope: FleetScope = DEFAULT_SCOPE,
) -> tuple[list[ServedExpiry], list[str]]:
    """Per secret of ``secret_account`` (where certrotate's secrets live), the fewest days to expiry
    any host serves (with that host's record), and a line for each record that counts for nothing:
    it names no secret ARN of that account, a secret that is not among ``secrets`` (name → ARN, as
    ListSecrets gave them), one its account may not read (``scope``), or has no readable ``NotAfter``."""
    soonest: dict[str, ServedExpiry] = {}
    problems: list[str] = []
    for report in reports:
        where = f"{report.account}/{report.instance_id} {quote(report.certificate_file)}"
        name = secret_name(report.secret_arn)
        if name is None or report.secret_arn.split(":")[4] != secret_account:
            problems.append(f"{where}: SecretArn {quote(report.secret_arn)} is not a secret ARN of {secret_account}")
            continue
        if name not in secrets:
            problems.append(f"{where}: SecretArn {quote(report.secret_arn)} names no secret of {secret_account}")
            continue
        if not scope.concerns(report.account, secrets[name]):
            problems.append(f"{where}: account {report.account} may not read {quote(name)} (SecretReaders)")
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


def soonest_first(found: Iterable[ServedExpiry], limit: int = SERIES_LIMIT) -> tuple[list[ServedExpiry], int]:
    """The ``limit`` secrets closest to expiry (ties by name), and how many others were left out."""
    ordered = sorted(found, key=lambda s: (s.days, s.secret_name))
    return ordered[:limit], max(len(ordered) - limit, 0)
