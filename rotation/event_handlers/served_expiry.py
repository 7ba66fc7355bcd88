"""Every hour (an EventBridge schedule) → ``ServedDaysToExpiry`` per secret, from what hosts serve.

Reads the fleet view (SSM custom inventory) of this account and of each workload account through
its FleetViewRole, in every region of ``CERTROTATE_FLEET_REGIONS`` (as superseded revocation does),
and emits, per secret name, the fewest days to expiry any host's record reports
(:mod:`rotation.fleet.served_expiry`): only for the secrets of this account (ListSecrets) that the
reporting account may read (``CERTROTATE_SECRET_READERS``), and only for the
:data:`~rotation.fleet.served_expiry.SERIES_LIMIT` soonest; every other record is counted
(``ServedRecordsNotCounted``), never emitted. The event asks nothing: whatever invokes the function only makes
it read and report. An account or region that cannot be read is logged and, after every readable
one is reported, fails the invocation so it lands in the dead-letter queue (its alarm tells the
operator that some hosts went unwatched).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rotation import telemetry
from rotation.aws import aws_call, make_client
from rotation.errors import CertRotateError
from rotation.fleet.inventory import read_records
from rotation.fleet.scope import DEFAULT_SCOPE, FleetScope
from rotation.fleet.served_expiry import served_expiry, soonest_first
from rotation.fleet.view import HostReport
from rotation.telemetry import logger

FLEET_ROLES_ENV = "CERTROTATE_FLEET_ROLE_ARNS"
#: Problem lines logged one by one per run; the rest are summed up in one line (and all counted).
LOGGED_PROBLEMS = 20


class FleetUnreadable(CertRotateError):
    """Some accounts or regions of the fleet view could not be read (their hosts went unreported)."""


def secret_arns(sm: Any) -> dict[str, str]:
    """Every secret of this account, name → ARN (ListSecrets, 100 a page)."""
    found: dict[str, str] = {}
    request: dict[str, Any] = {"MaxResults": 100}
    while True:
        with aws_call("secretsmanager", "ListSecrets"):
            page = sm.list_secrets(**request)
        found.update({str(s["Name"]): str(s["ARN"]) for s in page.get("SecretList", [])})
        if not page.get("NextToken"):
            return found
        request["NextToken"] = page["NextToken"]


def report(
    make_ssm: Callable[[str | None], Any],
    assume: Callable[[str, str | None], Any],
    account: str,
    role_arns: Sequence[str],
    regions: Sequence[str],
    now: datetime,
    secrets: Mapping[str, str],
    scope: FleetScope = DEFAULT_SCOPE,
) -> dict[str, float]:
    """Read every source, emit one ``ServedDaysToExpiry`` per secret (the soonest
    :data:`~rotation.fleet.served_expiry.SERIES_LIMIT`, of ``secrets``, name → ARN, read by an account
    ``scope`` lets read them); returns what was emitted.

    Raises:
        FleetUnreadable: a source could not be read (after the others were emitted).
    """
    sources: list[tuple[str, str | None]] = [(account, None)] + [(role.split(":")[4], role) for role in role_arns]
    reports: list[HostReport] = []
    unreadable: list[str] = []
    unreadable_records: list[str] = []
    every_region: list[str | None] = list(regions) or [None]
    for source_account, role in sources:
        for region in every_region:
            try:
                ssm = make_ssm(region) if role is None else assume(role, region)
                found, bad = read_records(ssm, source_account)
            except CertRotateError as exc:
                unreadable.append(f"{source_account} in {region or 'this region'}: {exc}")
                continue
            reports.extend(found)
            unreadable_records.extend(str(problem) for problem in bad)
    found_soonest, problems = served_expiry(reports, now, account, secrets, scope)
    problems = unreadable_records + problems
    for line in problems[:LOGGED_PROBLEMS]:
        logger.warning("record not counted: %s", line)
    if len(problems) > LOGGED_PROBLEMS:
        logger.warning("%d more records not counted", len(problems) - LOGGED_PROBLEMS)
    telemetry.served_records_not_counted(len(problems))
    soonest, omitted = soonest_first(found_soonest)
    if omitted:
        logger.info("%d secrets further from expiry than the %d emitted are not emitted", omitted, len(soonest))
    for entry in soonest:
        telemetry.served_expiry(entry.secret_name, entry.days)
        logger.info(
            "%s: the soonest-expiring served certificate has %.2f days left (%s/%s %s, serial %s)",
            entry.secret_name,
            entry.days,
            entry.report.account,
            entry.report.instance_id,
            entry.report.certificate_file,
            entry.report.serial,
        )
    if unreadable:
        raise FleetUnreadable("fleet view unreadable, its hosts are not reported: " + "; ".join(unreadable))
    return {entry.secret_name: entry.days for entry in soonest}


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    from rotation.lifecycle.engine import assumed_client

    with aws_call("sts", "GetCallerIdentity"):
        account = str(make_client("sts").get_caller_identity()["Account"])
    scope = FleetScope.from_environment(os.environ)
    roles = [r.strip() for r in os.environ.get(FLEET_ROLES_ENV, "").split(",") if r.strip()]
    emitted = report(
        lambda region: make_client("ssm", region),
        lambda role, region: assumed_client(make_client("sts"), role, "ssm", region),
        account,
        roles,
        scope.regions,
        datetime.now(UTC),
        secret_arns(make_client("secretsmanager")),
        scope,
    )
    return {"secrets": len(emitted)}
