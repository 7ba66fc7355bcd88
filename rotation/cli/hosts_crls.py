"""``certrotate hosts``' CRL table: which CA's CRL (number, thisUpdate, nextUpdate) each mutual-TLS host installed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.table import Table

from rotation.cli.output import columns_that_fit, literal
from rotation.fleet.crl_view import CrlHealth, CrlReport, health

_COLUMNS = ("instance", "ca", "crl number", "this update", "next update", "revoked", "status", "account", "detail")
_FOLDED = ("ca", "detail")
_WORST = tuple(CrlHealth)


def ordered(reports: Sequence[CrlReport], now: datetime) -> list[CrlReport]:
    """Failed refreshes first, then CRLs past their nextUpdate, then by CA, account and instance."""
    return sorted(reports, key=lambda r: (_WORST.index(health(r, now)), r.ca_name, r.account, r.instance_id))


def as_json(reports: Sequence[CrlReport], now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "account": r.account,
            "instance_id": r.instance_id,
            "ca_name": r.ca_name,
            "crl_number": r.crl_number,
            "this_update": r.this_update,
            "next_update": r.next_update,
            "revoked": r.revoked,
            "source": r.source,
            "file": r.file,
            "status": r.status,
            "health": health(r, now).value,
            "exit_code": r.exit_code,
            "message": r.message,
            "recorded_at": r.recorded_at,
        }
        for r in ordered(reports, now)
    ]


def _detail(report: CrlReport, found: CrlHealth) -> str:
    if found is CrlHealth.FAILED:
        return f"exit {report.exit_code}: {report.message}"
    if found is CrlHealth.EXPIRED:
        return "past its nextUpdate: the server refuses this CA's clients"
    return ""


def render(reports: Sequence[CrlReport], now: datetime, width: int = 200) -> Table:
    """One table of every host's CRLs; the status is the latest run's, or ``expired`` past nextUpdate."""
    rows = ordered(reports, now)
    found = [health(r, now) for r in rows]
    cells = [
        {
            "instance": r.instance_id,
            "account": r.account,
            "ca": r.ca_name or "-",
            "crl number": r.crl_number or "-",
            "this update": r.this_update or "-",
            "next update": r.next_update or "-",
            "revoked": r.revoked or "-",
            "status": r.status if state is not CrlHealth.EXPIRED else "expired",
            "detail": _detail(r, state),
        }
        for r, state in zip(rows, found, strict=True)
    ]
    shown = columns_that_fit(cells, _COLUMNS, width, folded=_FOLDED)
    cas = len({r.ca_name for r in rows if r.ca_name})
    table = Table(title=literal(f"CRLs: {cas} CA(s) on {len(rows)} host record(s)"))
    for name in shown:
        table.add_column(literal(name), **({"overflow": "fold"} if name in _FOLDED else {"no_wrap": True}))
    for state, row in zip(found, cells, strict=True):
        table.add_row(*(literal(row[n], "red" if n == "status" and state is not CrlHealth.OK else "") for n in shown))
    return table
