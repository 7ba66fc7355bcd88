"""Which mutual-TLS hosts that installed a CRL no CRL refresh association reaches, and the fix. Pure.

The stacks' ``CrlRefreshAssociation`` runs InstallCRL on ``CrlRefreshSchedule`` for the instances
tagged ``certrotate:crl`` = ``refresh`` (``cfn/src/fragments/fleet-delivery.yaml``). A host that
installed a CRL once (by hand, or before its tag was removed) without the tag is never refreshed:
past the CRL's nextUpdate its server refuses every client. The hosts are the instance ids under
which GetInventory returns ``Custom:CertrotateCrl`` records (SSM keys a record by the node that put
it); nothing else of a record is used, so a host's forged record speaks only of that host.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

REFRESH_TAG_KEY = "certrotate:crl"
REFRESH_TAG_VALUE = "refresh"
REFRESH_TARGET_KEY = f"tag:{REFRESH_TAG_KEY}"
#: An EC2 instance id (tags are EC2's); hybrid nodes (``mi-``) carry SSM tags, which doctor does not read.
EC2_INSTANCE = re.compile(r"^i-[0-9a-f]{8,17}$")


class RefreshGap(StrEnum):
    """Why a host's CRL is never refreshed."""

    UNTAGGED = "untagged"  # no certrotate:crl tag
    WRONG_VALUE = "wrong-value"  # the tag, with another value than refresh
    NO_ASSOCIATION = "no-association"  # no association in the region targets the tag


@dataclass(frozen=True)
class RefreshFinding:
    """One host (or, for NO_ASSOCIATION, one region) whose CRL no association refreshes."""

    region: str
    instance_id: str  # "" for NO_ASSOCIATION
    gap: RefreshGap
    problem: str
    fix: str


def refreshes(targets: object) -> bool:
    """Whether an association's ``Targets`` reach the instances tagged ``certrotate:crl`` = ``refresh``."""
    if not isinstance(targets, list):
        return False
    return any(
        isinstance(t, Mapping) and t.get("Key") == REFRESH_TARGET_KEY and REFRESH_TAG_VALUE in (t.get("Values") or [])
        for t in targets
    )


def refresh_findings(
    region: str, hosts: Sequence[str], tags: Mapping[str, str], associations: Sequence[str]
) -> list[RefreshFinding]:
    """The findings for one region.

    Args:
        region: where the hosts report.
        hosts: EC2 instance ids that report an installed CRL.
        tags: each instance's ``certrotate:crl`` tag value (absent: no such tag).
        associations: the ids of the region's associations whose targets reach the tag.
    """
    found: list[RefreshFinding] = []
    if hosts and not associations:
        found.append(
            RefreshFinding(
                region,
                "",
                RefreshGap.NO_ASSOCIATION,
                f"{len(hosts)} host(s) report an installed CRL but no association targets "
                f"{REFRESH_TARGET_KEY}={REFRESH_TAG_VALUE} in {region}: no host's CRL is ever refreshed",
                f"deploy the workload stack (or the central stack) in {region}: its CrlRefreshAssociation "
                "runs InstallCRL on the CrlRefreshSchedule parameter's schedule",
            )
        )
    tag = f"Key={REFRESH_TAG_KEY},Value={REFRESH_TAG_VALUE}"
    for instance in sorted(hosts):
        value = tags.get(instance)
        if value == REFRESH_TAG_VALUE:
            continue
        has = f"its tag {REFRESH_TAG_KEY} is {value!r}" if value is not None else f"it has no tag {REFRESH_TAG_KEY}"
        found.append(
            RefreshFinding(
                region,
                instance,
                RefreshGap.UNTAGGED if value is None else RefreshGap.WRONG_VALUE,
                f"reports an installed CRL but {has}, so CrlRefreshAssociation never refreshes it: past the "
                "CRL's nextUpdate its server refuses every client",
                f"`aws ec2 create-tags --region {shlex.quote(region)} --resources {shlex.quote(instance)} "
                f"--tags {tag}`",
            )
        )
    return found
