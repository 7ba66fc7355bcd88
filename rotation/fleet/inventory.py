"""The fleet view's records of one account, read from SSM inventory (the adapter beside the pure
:mod:`rotation.fleet.view`; the client is injected, as everywhere)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from rotation.aws import aws_call
from rotation.fleet.crl_view import CRL_INVENTORY_TYPE, CrlReport, parse_crl_records
from rotation.fleet.trust_view import TRUST_INVENTORY_TYPE, TrustReport, parse_trust_records
from rotation.fleet.view import (
    INVENTORY_TYPE,
    STALE_PREFIX,
    HostReport,
    RecordProblem,
    parse_records,
    secret_forms,
    serial_forms,
)

#: GetInventory's InventoryFilter.Values holds at most 40 values (botocore's ssm model,
#: ``InventoryFilterValueList``: max 40); several values of one Equal filter match any of them.
FILTER_VALUES = 40


def read_fleet(ssm: Any, account: str) -> tuple[list[HostReport], list[str]]:
    """Every certrotate inventory record of one account (GetInventory, 50 instances a page), and a
    problem line for each record that is not one (then what that host serves is not known)."""
    reports, problems = read_records(ssm, account)
    return reports, [str(problem) for problem in problems]


def read_records(
    ssm: Any, account: str, serials: Sequence[str] | None = None, secret_arn: str = "", *, stale_read: bool = True
) -> tuple[list[HostReport], list[RecordProblem]]:
    """The records of one account; with ``serials``, only the instances whose records name one of
    them (a ``Custom:CertrotateCertificate.Serial`` Equal filter over each serial's spellings, 40
    values a call), so hosts that serve other certificates cost nothing to read.

    A filter matches an instance when any of its records names the serial; every record of that
    instance comes back, and each is matched again by :func:`rotation.fleet.view.serves_certificate`.
    One more read (``ServedCheck`` BeginWith ``stale:``) brings the instances whose served check saw
    a worker present another certificate: that one is named only there
    (:func:`rotation.fleet.view.still_served_by_stale_worker`). The revoker turns it off
    (``stale_read``): a stale worker counts only on a host whose own record reports one of the
    secret's ledger entries (:func:`rotation.fleet.revocation.hold_or_revoke`), and it passes every
    open entry's serial, so the Serial read already brings those hosts. With ``secret_arn``, one more read brings
    the instances whose records name that secret in any form (:func:`rotation.fleet.view.secret_forms`):
    a record among them whose serial cannot be read holds that secret's revocations.
    """
    if serials is None:
        return _read(ssm, account, [])
    values = list(dict.fromkeys(form for serial in serials for form in serial_forms(serial)))
    reports: list[HostReport] = []
    problems: list[RecordProblem] = []
    seen: set[str] = set()
    filters = [
        {"Key": f"{INVENTORY_TYPE}.Serial", "Values": values[start : start + FILTER_VALUES], "Type": "Equal"}
        for start in range(0, len(values), FILTER_VALUES)
    ]
    if values and stale_read:
        filters.append({"Key": f"{INVENTORY_TYPE}.ServedCheck", "Values": [STALE_PREFIX], "Type": "BeginWith"})
    if secret_arn:
        filters.append({"Key": f"{INVENTORY_TYPE}.SecretArn", "Values": secret_forms(secret_arn), "Type": "Equal"})
    for selection in filters:
        found, bad = _read(ssm, account, [selection])
        fresh = {r.instance_id for r in found} | {p.instance_id for p in bad}
        reports.extend(r for r in found if r.instance_id not in seen)
        problems.extend(p for p in bad if p.instance_id not in seen)
        seen |= fresh
    return reports, problems


def _read(ssm: Any, account: str, filters: list[dict[str, Any]]) -> tuple[list[HostReport], list[RecordProblem]]:
    reports: list[HostReport] = []
    problems: list[RecordProblem] = []
    request: dict[str, Any] = {"ResultAttributes": [{"TypeName": INVENTORY_TYPE}], "MaxResults": 50}
    if filters:
        request["Filters"] = filters
    while True:
        with aws_call("ssm", "GetInventory"):
            page = ssm.get_inventory(**request)
        for entity in page.get("Entities", []):
            item = (entity.get("Data") or {}).get(INVENTORY_TYPE) or {}
            found, bad = parse_records(account, str(entity.get("Id", "")), item.get("Content") or [])
            reports.extend(found)
            problems.extend(bad)
        if not page.get("NextToken"):
            return reports, problems
        request["NextToken"] = page["NextToken"]


def _custom_contents(ssm: Any, type_name: str) -> Iterator[tuple[str, list[Any]]]:
    """(instance id, records) of one custom inventory type for every instance of the account
    (GetInventory of that type, 50 instances a page)."""
    request: dict[str, Any] = {"ResultAttributes": [{"TypeName": type_name}], "MaxResults": 50}
    while True:
        with aws_call("ssm", "GetInventory"):
            page = ssm.get_inventory(**request)
        for entity in page.get("Entities", []):
            item = (entity.get("Data") or {}).get(type_name) or {}
            yield str(entity.get("Id", "")), list(item.get("Content") or [])
        if not page.get("NextToken"):
            return
        request["NextToken"] = page["NextToken"]


def read_trust_bundles(ssm: Any, account: str) -> list[TrustReport]:
    """Every host's trust-bundle records of one account."""
    return [
        report
        for instance, content in _custom_contents(ssm, TRUST_INVENTORY_TYPE)
        for report in parse_trust_records(account, instance, content)
    ]


def read_crls(ssm: Any, account: str) -> list[CrlReport]:
    """Every mutual-TLS host's CRL records of one account."""
    return [
        report
        for instance, content in _custom_contents(ssm, CRL_INVENTORY_TYPE)
        for report in parse_crl_records(account, instance, content)
    ]
