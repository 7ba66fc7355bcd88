"""The fleet view's records of one account, read from SSM inventory (the adapter beside the pure
:mod:`rotation.fleet`; the client is injected, as everywhere)."""

from __future__ import annotations

from typing import Any

from rotation.aws import aws_call
from rotation.fleet import INVENTORY_TYPE, HostReport, parse_reports


def read_fleet(ssm: Any, account: str) -> tuple[list[HostReport], list[str]]:
    """Every certrotate inventory record of one account (GetInventory, 50 instances a page), and a
    problem line for each record that is not one (then what that host serves is not known)."""
    reports: list[HostReport] = []
    problems: list[str] = []
    request: dict[str, Any] = {"ResultAttributes": [{"TypeName": INVENTORY_TYPE}], "MaxResults": 50}
    while True:
        with aws_call("ssm", "GetInventory"):
            page = ssm.get_inventory(**request)
        for entity in page.get("Entities", []):
            item = (entity.get("Data") or {}).get(INVENTORY_TYPE) or {}
            found, bad = parse_reports(account, str(entity.get("Id", "")), item.get("Content") or [])
            reports.extend(found)
            problems.extend(bad)
        if not page.get("NextToken"):
            return reports, problems
        request["NextToken"] = page["NextToken"]
