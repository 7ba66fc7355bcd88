"""How ``certrotate status`` draws its tables: the list, one secret in full, its ledger history. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table

from rotation.cli.certificate_health import CertificateStatus
from rotation.cli.output import columns_that_fit, literal


def days_left(days: float | None) -> str:
    """Whole days, hours under a day: ``365``, ``6h``, ``expired``."""
    if days is None:
        return "-"
    if days <= 0:
        return "expired"
    if days < 1:
        return f"{max(int(days * 24), 1)}h"
    return str(int(days))


# Columns in priority order: the first three always; the others while they fit at their natural width.
_COLUMNS: Sequence[str] = (
    "secret",
    "days left",
    "health",
    "type",
    "key",
    "subject",
    "rotation",
    "last rotated",
    "next rotation",
)


_FOLDED = ("secret", "subject", "health")  # may wrap; never cut


def _cells(r: CertificateStatus) -> dict[str, str]:
    return {
        "secret": r.name,
        "type": r.certificate_type.removesuffix("_ISSUED") or "-",
        "key": r.key_algorithm or "-",
        "subject": r.subject or "-",
        "days left": days_left(r.days_to_expiry),
        "last rotated": r.last_rotated[:10] or "-",
        "next rotation": r.next_rotation[:10] or "-",
        "rotation": "on" if r.rotation_enabled else "off",
        "health": ", ".join(r.flags) or "ok",
    }


def columns_for(rows: Sequence[dict[str, str]], width: int) -> list[str]:
    """The columns to show at ``width``: the first three, then each that still fits whole."""
    return columns_that_fit(rows, _COLUMNS, width, folded=_FOLDED)


def render_table(rows: Sequence[CertificateStatus], width: int) -> Table:
    cells = [_cells(r) for r in rows]
    shown = columns_for(cells, width)
    table = Table(title=literal(f"{len(rows)} certificate secret(s)"), expand=False)
    for name in shown:
        if name in _FOLDED:
            table.add_column(literal(name), overflow="fold")
        else:
            table.add_column(literal(name), no_wrap=True, justify="right" if name == "days left" else "left")
    for row in cells:
        table.add_row(*(literal(row[name]) for name in shown))
    hidden = [name for name in _COLUMNS if name not in shown]
    if hidden:
        table.caption = literal(f"wider terminal or status NAME for: {', '.join(hidden)}")
    return table


_DETAIL_LABELS = (
    ("name", "secret"),
    ("arn", "ARN"),
    ("certificate_type", "type"),
    ("ca_arn", "CA"),
    ("subject", "subject"),
    ("subject_alternative_names", "names"),
    ("serial", "serial"),
    ("not_before", "not before"),
    ("not_after", "not after"),
    ("days_to_expiry", "days left"),
    ("key_algorithm", "key"),
    ("renewal_policy", "renewal policy"),
    ("rotation_enabled", "rotation"),
    ("rotation_function", "rotation function"),
    ("rotation_schedule", "schedule"),
    ("last_rotated", "last rotated"),
    ("next_rotation", "next rotation"),
    ("pending_versions", "pending"),
    ("rotation_failure", "why"),
    ("flags", "health"),
    ("problems", "problems"),
)


def detail_table(detail: Mapping[str, Any]) -> Table:
    table = Table.grid(padding=(0, 2, 0, 0))
    table.add_column(no_wrap=True, style="bold")
    table.add_column(overflow="fold")
    for key, label in _DETAIL_LABELS:
        value = detail.get(key, "")
        if key == "rotation_failure" and not value:
            continue
        if key == "days_to_expiry":
            text = days_left(value)
        elif key == "rotation_enabled":
            text = "on" if value else "off"
        elif key == "flags":
            text = ", ".join(value) or "ok"
        elif isinstance(value, list):
            text = ", ".join(value) or "-"
        else:
            text = str(value) or "-"
        table.add_row(literal(label), literal(text))
    table.add_row(literal(""), literal(""))
    return table


_HISTORY_COLUMNS = ("serial", "state", "not_after", "issued", "replaced", "revoked")


def history_table(name: str, history: Sequence[Mapping[str, str]], width: int = 200) -> Table:
    """The ledger's certificates: serial and state whole on one line, then the dates that fit (UTC days)."""
    cells = [
        {c: (row[c][:10] if c not in ("serial", "state") else row[c]) or "-" for c in _HISTORY_COLUMNS}
        for row in history
    ]
    shown = columns_that_fit(cells, _HISTORY_COLUMNS, width, always=2)
    table = Table(title=literal(f"{name}: certificates issued by its rotations"))
    for column in shown:
        table.add_column(literal(column.replace("_", " ")), no_wrap=True)
    for row in cells:
        table.add_row(*(literal(row[c]) for c in shown))
    hidden = [c.replace("_", " ") for c in _HISTORY_COLUMNS if c not in shown]
    if not history:
        table.caption = literal("no entry in the issuance ledger")
    elif hidden:
        table.caption = literal(f"wider terminal or --output json for: {', '.join(hidden)}")
    return table
