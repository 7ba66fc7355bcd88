"""``doctor``'s CRL refresh check: each mutual-TLS host that installed a CRL is reached by a refresh association.

In this account, in each region doctor's fleet checks read: the instances with ``Custom:CertrotateCrl``
records that name an installed CRL (GetInventory, as ``certrotate hosts`` reads them), their
``certrotate:crl`` tags (EC2 DescribeTags, filtered by key) and the associations whose targets reach
the tag (SSM ListAssociations). GetInventory's failure is a SKIP line: the region's ``fleet view``
line, which doctor always runs there, is its FAIL. :func:`rotation.fleet.crl_refresh.refresh_findings` judges; each
finding is a FAIL line with its fix. A region where no host reports a CRL makes no further call and
no line. The operator's role needs ``ssm:GetInventory``, ``ec2:DescribeTags`` and
``ssm:ListAssociations`` (:data:`ACTIONS`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rotation.aws import aws_call
from rotation.cli.check import UNREACHABLE as _UNREACHABLE
from rotation.cli.check import Check, Outcome
from rotation.cli.session import AwsContext
from rotation.errors import AwsCallError
from rotation.fleet.crl_refresh import (
    EC2_INSTANCE,
    REFRESH_TAG_KEY,
    REFRESH_TAG_VALUE,
    RefreshGap,
    refresh_findings,
    refreshes,
)
from rotation.fleet.inventory import read_crls

ACTIONS = ("ssm:GetInventory", "ec2:DescribeTags", "ssm:ListAssociations")


def check_region(aws: AwsContext, region: str) -> Iterator[Check]:
    """Nothing when no host reports a CRL; else an ``ok`` line, or one FAIL line per finding."""
    name = f"CRL refresh {region}"
    ssm = aws.client("ssm", region)
    try:
        reports = read_crls(ssm, "")
    except AwsCallError as exc:
        if exc.code in _UNREACHABLE:
            raise  # doctor stops: AWS is unreachable (exit 4)
        yield Check(name, Outcome.SKIP, f"the hosts' CRL records are unreadable (its fleet view line fails): {exc}")
        return
    try:
        installed = sorted({r.instance_id for r in reports if r.ca_name})
        if not installed:
            return
        hosts = [i for i in installed if EC2_INSTANCE.match(i)]
        tags = _tags(aws.client("ec2", region), hosts) if hosts else {}
        associations = _associations(ssm)
    except AwsCallError as exc:
        if exc.code in _UNREACHABLE:
            raise  # doctor stops: AWS is unreachable (exit 4)
        yield Check(name, Outcome.FAIL, f"could not be checked: {exc}")
        return
    for other in installed:
        if other not in hosts:
            yield Check(
                f"{name} {other}",
                Outcome.SKIP,
                f"a hybrid node: its SSM tags are not read; `aws ssm list-tags-for-resource --resource-type "
                f"ManagedInstance --resource-id {other}` must show {REFRESH_TAG_KEY}={REFRESH_TAG_VALUE}",
            )
    found = refresh_findings(region, hosts, tags, associations)
    for finding in found:
        where = name if finding.gap is RefreshGap.NO_ASSOCIATION else f"{name} {finding.instance_id}"
        yield Check(where, Outcome.FAIL, f"{finding.problem}; fix: {finding.fix}")
    if not found and hosts:
        yield Check(
            name,
            Outcome.OK,
            f"{len(hosts)} host(s) with an installed CRL, each tagged {REFRESH_TAG_KEY}={REFRESH_TAG_VALUE}; "
            f"refreshed by association {', '.join(associations)}",
        )


def _tags(ec2: Any, hosts: list[str]) -> dict[str, str]:
    """Each instance's ``certrotate:crl`` value, 200 instance ids a request (DescribeTags' filter values)."""
    found: dict[str, str] = {}
    for start in range(0, len(hosts), 200):
        request: dict[str, Any] = {
            "Filters": [
                {"Name": "resource-type", "Values": ["instance"]},
                {"Name": "key", "Values": [REFRESH_TAG_KEY]},
                {"Name": "resource-id", "Values": hosts[start : start + 200]},
            ]
        }
        while True:
            with aws_call("ec2", "DescribeTags"):
                page = ec2.describe_tags(**request)
            for tag in page.get("Tags", []):
                if tag.get("Key") == REFRESH_TAG_KEY:
                    found[str(tag.get("ResourceId"))] = str(tag.get("Value", ""))
            if not page.get("NextToken"):
                break
            request["NextToken"] = page["NextToken"]
    return found


def _associations(ssm: Any) -> list[str]:
    """The ids of the region's associations whose targets reach the refresh tag (every page)."""
    found: list[str] = []
    request: dict[str, Any] = {"MaxResults": 50}
    while True:
        with aws_call("ssm", "ListAssociations"):
            page = ssm.list_associations(**request)
        for association in page.get("Associations", []):
            if refreshes(association.get("Targets")):
                found.append(str(association.get("AssociationName") or association.get("AssociationId")))
        if not page.get("NextToken"):
            return found
        request["NextToken"] = page["NextToken"]
