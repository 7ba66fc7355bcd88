"""``certrotate hosts``' trust-bundle table: which bundle (by SHA-256 fingerprint) each host installed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table

from rotation.cli.output import columns_that_fit, literal
from rotation.fleet.trust_view import TrustReport

_COLUMNS = ("instance", "bundle", "fingerprint", "status", "installed", "account", "files", "detail")
_FOLDED = ("files", "detail")
FINGERPRINT_SHOWN = 16  # hex digits shown in the table; --output json has all 64


def ordered(reports: Sequence[TrustReport]) -> list[TrustReport]:
    """Failed runs first, then by bundle, account and instance."""
    return sorted(reports, key=lambda r: (r.status != "failed", r.bundle, r.account, r.instance_id))


def as_json(reports: Sequence[TrustReport]) -> list[dict[str, Any]]:
    return [
        {
            "account": r.account,
            "instance_id": r.instance_id,
            "bundle": r.bundle,
            "bundle_arn": r.bundle_arn,
            "fingerprint_sha256": r.fingerprint,
            "files": r.files,
            "status": r.status,
            "exit_code": r.exit_code,
            "message": r.message,
            "installed_at": r.installed_at,
            "recorded_at": r.recorded_at,
        }
        for r in ordered(reports)
    ]


def render(reports: Sequence[TrustReport], width: int = 200) -> Table:
    """One table of every host's bundles; the fingerprint is the installed file's SHA-256."""
    rows = ordered(reports)
    cells = [
        {
            "instance": r.instance_id,
            "account": r.account,
            "bundle": r.bundle,
            "fingerprint": r.fingerprint[:FINGERPRINT_SHOWN] or "-",
            "status": r.status,
            "installed": r.installed_at or "-",
            "files": r.files,
            "detail": f"exit {r.exit_code}: {r.message}" if r.status == "failed" else "",
        }
        for r in rows
    ]
    shown = columns_that_fit(cells, _COLUMNS, width, folded=_FOLDED)
    table = Table(
        title=literal(f"trust bundles: {len({r.bundle for r in rows})} bundle(s) on {len(rows)} host record(s)")
    )
    for name in shown:
        table.add_column(literal(name), **({"overflow": "fold"} if name in _FOLDED else {"no_wrap": True}))
    for report, row in zip(rows, cells, strict=True):
        table.add_row(*(literal(row[n], "red" if n == "status" and report.status == "failed" else "") for n in shown))
    return table
