"""The pure rules of doctor's CRL refresh check (rotation.fleet.crl_refresh)."""

from __future__ import annotations

import pytest

from rotation.fleet.crl_refresh import RefreshGap, refresh_findings, refreshes

HOST = "i-0123456789abcdef0"


@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        ([{"Key": "tag:certrotate:crl", "Values": ["refresh"]}], True),
        ([{"Key": "InstanceIds", "Values": [HOST]}, {"Key": "tag:certrotate:crl", "Values": ["x", "refresh"]}], True),
        ([{"Key": "tag:certrotate:crl", "Values": ["Refresh"]}], False),  # tag values are case-sensitive
        ([{"Key": "tag:certrotate:secret", "Values": ["refresh"]}], False),
        ([{"Key": "tag:certrotate:crl"}], False),
        (["tag:certrotate:crl"], False),
        (None, False),
    ],
)
def test_only_targets_on_the_refresh_tag_refresh(targets: object, expected: bool) -> None:
    assert refreshes(targets) is expected


def test_tagged_hosts_with_an_association_have_no_finding() -> None:
    assert refresh_findings("eu-west-1", [HOST], {HOST: "refresh"}, ["a-1"]) == []
    assert refresh_findings("eu-west-1", [], {}, []) == []  # no host reports a CRL: no association needed


def test_each_untagged_host_and_a_missing_association_are_found_with_the_fix() -> None:
    other = "i-0fedcba9876543210"
    found = refresh_findings("eu-west-1", [other, HOST], {other: "no"}, [])
    assert [(f.instance_id, f.gap) for f in found] == [
        ("", RefreshGap.NO_ASSOCIATION),
        (HOST, RefreshGap.UNTAGGED),
        (other, RefreshGap.WRONG_VALUE),
    ]
    assert found[1].fix == (
        f"`aws ec2 create-tags --region eu-west-1 --resources {HOST} --tags Key=certrotate:crl,Value=refresh`"
    )
    assert "CrlRefreshAssociation" in found[0].fix and "eu-west-1" in found[0].fix
