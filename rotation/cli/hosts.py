"""``certrotate hosts``: per certificate secret, which instances serve the current certificate.

The installer records what each host serves as SSM custom inventory (``Custom:CertrotateCertificate``)
after every run. This command reads the secrets (ListSecrets and the issuance ledger with
``--ledger-table``, no value and so no key: :mod:`rotation.cli.keyless`; else BatchGetSecretValue; the caller's
account) and the records with GetInventory in each account named by ``--role-arn`` (assumed, as
``deploy`` does), or in the caller's own account when no role is given, and shows each instance
as current, older, failed or stale (:mod:`rotation.fleet.view`). An SSM resource data sync is not
read: GetInventory per account needs no bucket or Athena, and the workload stacks' FleetViewRole
grants exactly it.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.table import Table

from rotation.aws import aws_call
from rotation.cli import bulk_reads, hosts_bundles, hosts_crls, keyless, options
from rotation.cli.inventory import SecretRecord, certificate_secrets
from rotation.cli.output import Output, columns_that_fit, literal
from rotation.cli.session import AwsContext, UsageError
from rotation.fleet import crl_view
from rotation.fleet.inventory import read_crls, read_fleet, read_trust_bundles
from rotation.fleet.ledger import LEDGER_TABLE_ENV
from rotation.fleet.trust_view import TrustReport
from rotation.fleet.view import (
    STALE_INTERVALS,
    CurrentCertificate,
    HostReport,
    HostState,
    HostView,
    SecretFleet,
    fleet_view,
    normalize_fingerprint,
    normalize_serial,
)

#: The heading of files that report no secret: certrotate read them but never installed them.
UNMANAGED = "(files certrotate never installed)"

_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::([0-9]{12}):role/[\w+=,.@/-]{1,512}$")


def role_arn(value: str) -> str:
    if not _ROLE_ARN.match(value):
        raise argparse.ArgumentTypeError(f"--role-arn {value!r}: expected arn:aws:iam::ACCOUNT:role/NAME")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME", help="only these certificate secrets")
    options.secret_selection(parser)
    parser.add_argument(
        "--role-arn",
        type=role_arn,
        action="append",
        default=[],
        metavar="ARN",
        help="read the hosts of this account through this role (repeat for each account; default: your own account)",
    )
    parser.add_argument(
        "--interval",
        type=options.positive_number("--interval", unit="minutes"),
        default=30.0,
        metavar="MINUTES",
        help=f"the convergence schedule; a host silent for {STALE_INTERVALS} intervals is stale (30)",
    )
    parser.add_argument(
        "--state",
        type=host_states,
        default=None,
        metavar="STATE[,STATE]",
        help="only hosts in these states: failed, stale, older, unknown, current",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when any host is not on the current certificate everywhere (a stale worker counts), "
        "or, with no secret selected, a host's CRL is past its nextUpdate or its latest refresh failed",
    )
    bulk_reads.add_max_rate_argument(parser)
    parser.add_argument(
        "--ledger-table",
        default=os.environ.get(LEDGER_TABLE_ENV, ""),
        help="read each secret's current certificate from the issuance ledger, no secret value (no key) is read "
        f"(default ${LEDGER_TABLE_ENV})",
    )
    keyless.add_read_values_argument(parser)


def host_states(value: str) -> frozenset[HostState]:
    states = options.comma_list(value)
    allowed = [s.value for s in HostState]
    unknown = [s for s in states if s not in allowed]
    if unknown or not states:
        raise argparse.ArgumentTypeError(f"--state {value!r}: expected one or more of {', '.join(allowed)}")
    return frozenset(HostState(s) for s in states)


#: Problems first: the order hosts are listed in, and secrets (by their worst host).
_ORDER = (HostState.FAILED, HostState.STALE, HostState.OLDER, HostState.UNKNOWN, HostState.CURRENT)


def ordered(
    fleets: Sequence[SecretFleet], names: Mapping[str, str], states: frozenset[HostState] | None
) -> list[SecretFleet]:
    """Hosts problems first (then account, instance), only ``states`` if given; secrets with problems first."""

    def host_key(view: HostView) -> tuple[int, str, str, str]:
        r = view.report
        return _ORDER.index(view.state), r.account, r.instance_id, r.certificate_file

    kept = []
    for fleet in fleets:
        hosts = sorted((h for h in fleet.hosts if states is None or h.state in states), key=host_key)
        if hosts or states is None:
            kept.append(replace(fleet, hosts=tuple(hosts)))
    worst = {f.secret_arn: min((_ORDER.index(h.state) for h in f.hosts), default=len(_ORDER)) for f in kept}
    return sorted(kept, key=lambda f: (worst[f.secret_arn], names.get(f.secret_arn) or f.secret_arn))


@dataclass(frozen=True)
class AccountInventory:
    account: str
    reports: list[HostReport]
    problems: list[str]
    bundles: list[TrustReport] = field(default_factory=list)  # the trust bundles its hosts installed
    crls: list[crl_view.CrlReport] = field(default_factory=list)  # the CRLs its mutual-TLS hosts installed


def run(aws: AwsContext, args: argparse.Namespace, out: Output) -> int:
    if args.names and (args.prefix or args.tag):
        raise UsageError("name secrets, or select them with --prefix / --tag, not both")
    records = _records(aws, args)
    currents = {r.arn: current_of(r) for r in records if r.is_certificate}
    opened = [open_account(aws, role) for role in args.role_arn or [None]]  # clients made here, not in threads
    accounts = bulk_reads.in_parallel(lambda o: read_opened(*o, max_rate=args.max_rate), opened)
    reports = [report for account in accounts for report in account.reports]
    selected = bool(args.names or args.prefix or args.tag)
    if selected:
        reports = [r for r in reports if r.secret_arn in currents]
    now = datetime.now(UTC)
    names = {r.arn: r.name for r in records}
    every = fleet_view(reports, currents, now, timedelta(minutes=args.interval))
    # The counts are the secret's whole fleet: --state chooses the rows shown, not what is counted.
    counts = {f.secret_arn: {state: len(f.in_state(state)) for state in HostState} for f in every}
    fleets = ordered(every, names, args.state)
    problems = [problem for account in accounts for problem in account.problems]
    silent = [f for f in fleets if not f.hosts and args.state is None]
    bundles = [] if selected else [bundle for account in accounts for bundle in account.bundles]
    crls = [] if selected else [crl for account in accounts for crl in account.crls]
    if out.json_mode:
        secrets = [as_json(f, names, counts[f.secret_arn]) for f in fleets]
        listed = {"trust_bundles": hosts_bundles.as_json(bundles), "crls": hosts_crls.as_json(crls, now)}
        out.emit_json({"secrets": secrets, **listed, "problems": problems})
    else:
        show_host_tables(out, bundles, crls, now)
        for fleet in fleets:
            if fleet.hosts or args.state is not None:
                out.show(render(fleet, names, now, out.stdout.width, counts[fleet.secret_arn]))
        if silent:  # one line for them all, not an empty table each
            shown = [names.get(f.secret_arn) or f.secret_arn for f in silent]
            out.say(f"no host has reported {len(silent)} secret(s): {', '.join(shown)}")
        if not fleets:
            out.say("no certificate secrets and no host records")
        for problem in problems:
            out.note(f"certrotate: warning: {problem}")
    crl_problems = crl_view.problems(crls, now) if args.check else []
    for line in crl_problems:
        out.note(f"certrotate: {line}")
    if args.check and not reports:
        out.note("no host has reported any of these secrets: nothing is known to serve them")
        return 1
    # a current host whose served check saw a worker present another certificate is not on it everywhere
    behind = [h for f in fleets for h in f.hosts if h.state is not HostState.CURRENT or h.report.stale_serial]
    if args.check and behind:
        stale = sum(1 for h in behind if h.state is HostState.CURRENT)
        note = f" ({stale} current but with a worker serving another certificate)" if stale else ""
        out.note(f"{len(behind)} host record(s) not on the current certificate{note}")
        return 1
    return 1 if crl_problems else 0


def show_host_tables(
    out: Output, bundles: Sequence[TrustReport], crls: Sequence[crl_view.CrlReport], now: datetime
) -> None:
    """The per-host tables that are not about one secret: trust bundles, then CRLs (each when any)."""
    if bundles:
        out.show(hosts_bundles.render(bundles, out.stdout.width))
    if crls:
        out.show(hosts_crls.render(crls, now, out.stdout.width))


def _records(aws: AwsContext, args: argparse.Namespace) -> list[SecretRecord]:
    """The selected secrets: from the issuance ledger with ``--ledger-table`` (no value read), else their values."""
    selection = {"names": args.names, "prefix": args.prefix, "tags": args.tag, "max_rate": args.max_rate}
    if args.ledger_table:
        return keyless.certificate_secrets(aws, args.ledger_table, read_values=args.read_values, **selection).records
    return certificate_secrets(aws, **selection)


def current_of(record: SecretRecord) -> CurrentCertificate:
    """The secret's current certificate: from its (public) PEM, else from its metadata fields."""
    fields: Mapping[str, Any] = record.fields or {}
    pem = fields.get("CERTIFICATE_PEM")
    if isinstance(pem, str) and pem:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes

        try:
            certificate = x509.load_pem_x509_certificate(pem.encode())
            return CurrentCertificate(
                record.arn, format(certificate.serial_number, "X"), certificate.fingerprint(hashes.SHA256()).hex()
            )
        except ValueError:
            pass
    return CurrentCertificate(
        record.arn,
        normalize_serial(str(fields.get("CERTIFICATE_SERIAL") or "")),
        normalize_fingerprint(str(fields.get("CERTIFICATE_FINGERPRINT_SHA256") or "")),
    )


def open_account(aws: AwsContext, role: str | None, session_name: str = "certrotate-hosts") -> tuple[Any, str]:
    """An SSM client for one account (through ``role``, else the caller's own) and the account id."""
    if role is None:
        session = None
        with aws_call("sts", "GetCallerIdentity"):
            account = str(aws.client("sts").get_caller_identity()["Account"])
    else:
        session = aws.assumed(role, session_name=session_name)
        account = role.split(":")[4]
    return aws.client("ssm", session=session), account


def read_account(aws: AwsContext, role: str | None) -> AccountInventory:
    """Every instance's records in one account (GetInventory, 50 instances a page)."""
    return read_opened(*open_account(aws, role))


def read_opened(ssm: Any, account: str, *, max_rate: float = bulk_reads.DEFAULT_MAX_RATE) -> AccountInventory:
    """Every instance's records in one account, at most ``max_rate`` GetInventory pages a second."""
    limited = bulk_reads.rate_limited(ssm, max_rate)
    reports, problems = bulk_reads.partitioned_fleet(lambda client: read_fleet(client, account), limited)
    bundles, crls = read_trust_bundles(limited, account), read_crls(limited, account)
    return AccountInventory(account, reports, problems, bundles, crls)


def as_json(
    fleet: SecretFleet, names: Mapping[str, str], totals: Mapping[HostState, int] | None = None
) -> dict[str, Any]:
    """One secret's fleet; ``totals``: its whole fleet's counts when ``fleet`` shows some states only."""
    counts = {state.value: (totals or {}).get(state, len(fleet.in_state(state))) for state in HostState}
    return {
        "secret": names.get(fleet.secret_arn, ""),
        "arn": fleet.secret_arn,
        "current_serial": fleet.current.serial if fleet.current else "",
        "current_fingerprint_sha256": fleet.current.fingerprint if fleet.current else "",
        "counts": counts,
        "hosts": [
            {
                "account": v.report.account,
                "instance_id": v.report.instance_id,
                "state": v.state.value,
                "status": v.report.status.value,
                "exit_code": v.report.exit_code,
                "serial": v.report.serial,
                "fingerprint_sha256": v.report.fingerprint,
                "not_after": v.report.not_after,
                "certificate_file": v.report.certificate_file,
                "server": v.report.server,
                "recorded_at": v.report.recorded_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "message": v.report.message,
                "served_check": v.report.served_check,
            }
            for v in fleet.hosts
        ],
    }


_STYLE = {
    HostState.CURRENT: "green",
    HostState.OLDER: "yellow",
    HostState.FAILED: "red",
    HostState.STALE: "magenta",
    HostState.UNKNOWN: "",
}


def _cell_style(view: HostView, column: str) -> str:
    if column == "state":
        return _STYLE[view.state]
    if column == "served" and view.report.served_check.startswith("stale:"):
        return "red"
    return ""


def _ago(moment: datetime, now: datetime) -> str:
    minutes = int((now - moment).total_seconds() // 60)
    return f"{minutes}m ago" if minutes < 120 else f"{minutes // 60}h ago"


#: Columns in priority order: instance, state and serial always (serials never wrap), then what fits.
#: ``served``: the latest run's served-truth check (16/16, or how many connections got which serial).
#: ``server``: the TLS server the host says the file is for (apache, nginx, haproxy).
_HOST_COLUMNS = ("instance", "state", "serial", "served", "server", "reported", "detail", "account", "file")
_HOST_FOLDED = ("served", "detail", "file")


def render(
    fleet: SecretFleet,
    names: Mapping[str, str],
    now: datetime,
    width: int = 200,
    totals: Mapping[HostState, int] | None = None,
) -> Table:
    """One secret's table; its title counts ``totals`` (the whole fleet) when the rows are some states only."""
    counts = ", ".join(f"{(totals or {}).get(s, len(fleet.in_state(s)))} {s.value}" for s in HostState)
    current = (
        f"current serial {fleet.current.serial or '-'}"
        if fleet.current
        else "current certificate unknown (not a certificate secret these credentials read)"
    )
    title = f"{names.get(fleet.secret_arn) or fleet.secret_arn or UNMANAGED}: {current}; {counts}"
    cells = []
    for view in fleet.hosts:
        r = view.report
        cells.append(
            {
                "instance": r.instance_id,
                "account": r.account,
                "state": view.state.value,
                "serial": r.serial or "-",
                "served": r.served_check or "-",
                "server": r.server or "-",
                "file": r.certificate_file,
                "reported": _ago(r.recorded_at, now),
                "detail": f"exit {r.exit_code}: {r.message}" if view.state is HostState.FAILED else r.status.value,
            }
        )
    shown = columns_that_fit(cells, _HOST_COLUMNS, width, folded=_HOST_FOLDED)
    table = Table(title=literal(title), expand=False)
    for name in shown:
        table.add_column(literal(name), **({"overflow": "fold"} if name in _HOST_FOLDED else {"no_wrap": True}))
    for view, row in zip(fleet.hosts, cells, strict=True):
        table.add_row(*(literal(row[n], _cell_style(view, n)) for n in shown))
    hidden = [name for name in _HOST_COLUMNS if name not in shown]
    if not fleet.hosts:
        table.caption = literal("no host has reported this secret")
    elif hidden:
        table.caption = literal(f"wider terminal or --output json for: {', '.join(hidden)}")
    return table
