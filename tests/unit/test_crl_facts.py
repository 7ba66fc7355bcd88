"""The pure CRL facts and revocation rules (issue 28): URLs, the bucket-policy reading, the schedule."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from rotation.emulation.pca_crl import CrlSchedule, CrlState, due
from rotation.fleet.crl_facts import (
    CrlSettings,
    LeafPointers,
    PublishedCrl,
    crl_url,
    fetchable,
    missing_write_permissions,
    object_key,
    s3_location,
    write_policy_statement,
)
from rotation.fleet.revocation_findings import CaRevocation, Kind, Leaf, findings

CA = "arn:aws:acm-pca:eu-west-1:123456789012:certificate-authority/11111111-2222-3333-4444-555555555555"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def policy(*statements: dict[str, object]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def test_urls_and_keys_follow_the_user_guide_layout() -> None:
    plain = CrlSettings.parse({"CrlConfiguration": {"Enabled": True, "S3BucketName": "crls"}})
    assert object_key(plain, CA) == "crl/11111111-2222-3333-4444-555555555555.crl"
    assert (
        crl_url(plain, CA, "eu-west-1")
        == "http://crls.s3.eu-west-1.amazonaws.com/crl/11111111-2222-3333-4444-555555555555.crl"
    )
    assert s3_location(crl_url(plain, CA, "eu-west-1")) == ("crls", object_key(plain, CA))
    cname = CrlSettings.parse(
        {"CrlConfiguration": {"Enabled": True, "S3BucketName": "crls", "CustomCname": "crl.example.com"}}
    )
    assert crl_url(cname, CA, "eu-west-1").startswith("http://crl.example.com/crl/")
    assert fetchable(crl_url(cname, CA, "eu-west-1"), cname) and not fetchable(crl_url(cname, CA, "x"), plain)


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/latest/meta-data/", "http://intranet.local/x.crl", "file:///etc/shadow", "ldap://x/y"],
)
def test_a_cdp_url_the_secret_writer_chose_is_never_fetched(url: str) -> None:
    settings = CrlSettings.parse({"CrlConfiguration": {"Enabled": True, "S3BucketName": "crls"}})
    assert not fetchable(url, settings)


def test_the_bucket_policy_is_read_as_s3_would_for_private_ca() -> None:
    key = "crl/x.crl"
    good = write_policy_statement("crls", CA)
    assert missing_write_permissions(policy(good), "crls", CA, key) == []
    assert missing_write_permissions(None, "crls", CA, key) == ["s3:PutObject", "s3:GetBucketAcl"]
    other_ca = write_policy_statement("crls", CA.replace("1111", "9999"))
    assert missing_write_permissions(policy(other_ca), "crls", CA, key) == ["s3:PutObject", "s3:GetBucketAcl"]
    deny = {"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::crls/*"}
    assert missing_write_permissions(policy(good, deny), "crls", CA, key) == ["s3:PutObject"]
    wildcard = {"Effect": "Allow", "Principal": {"Service": "acm-pca.amazonaws.com"}, "Action": "s3:*", "Resource": "*"}
    assert missing_write_permissions(policy(wildcard), "crls", CA, key) == []
    unknown = {**wildcard, "Condition": {"Bool": {"aws:SecureTransport": "true"}}}  # not evaluable: proves nothing
    assert missing_write_permissions(policy(unknown), "crls", CA, key) == ["s3:PutObject", "s3:GetBucketAcl"]


def test_the_publication_schedule() -> None:
    schedule, week = CrlSchedule(), timedelta(days=7)
    assert due(CrlState(), {}, week, NOW, schedule) == "enabled"
    published = CrlState(published_at=NOW, listed=frozenset())
    revoked = {5: (NOW + timedelta(minutes=1), "KEY_COMPROMISE")}
    assert due(published, revoked, week, NOW + timedelta(minutes=30), schedule) == ""
    assert due(published, revoked, week, NOW + timedelta(minutes=31), schedule) == "revocation"
    assert due(CrlState(NOW, frozenset({5})), revoked, week, NOW + timedelta(days=3), schedule) == ""
    assert due(CrlState(NOW, frozenset({5})), revoked, week, NOW + timedelta(days=3, hours=12), schedule) == "refresh"
    failed = CrlState(published_at=NOW, failed_at=NOW + timedelta(hours=1), error="denied")
    assert due(failed, revoked, week, NOW + timedelta(hours=1, minutes=14), schedule) == ""
    assert due(failed, revoked, week, NOW + timedelta(hours=1, minutes=15), schedule) == "retry"


def crl(this_update: datetime, days: int = 7, size: int = 500) -> PublishedCrl:
    return PublishedCrl(size, "CN=ca", this_update, this_update + timedelta(days=days), frozenset(), True, False, ())


def test_the_rules_for_an_overdue_crl_and_private_objects() -> None:
    settings = CrlSettings.parse(
        {"CrlConfiguration": {"Enabled": True, "S3BucketName": "crls", "S3ObjectAcl": "BUCKET_OWNER_FULL_CONTROL"}}
    )
    url = crl_url(settings, CA, "eu-west-1")
    leaf = Leaf("web", "AB", LeafPointers((url,), ()))
    facts = CaRevocation(CA, settings, True, (), (leaf,), {url: crl(NOW - timedelta(days=4))})
    assert [f.kind for f in findings(facts, NOW)] == [Kind.PRIVATE_OBJECTS, Kind.OVERDUE]
    fresh = CaRevocation(CA, CrlSettings.parse({"CrlConfiguration": {"Enabled": True, "S3BucketName": "crls"}}),
                         True, (), (leaf,), {url: crl(NOW - timedelta(hours=1))})  # fmt: skip
    assert findings(fresh, NOW) == []
    ocsp = CaRevocation(CA, CrlSettings.parse({"OcspConfiguration": {"Enabled": True}}), leaves=(leaf,))
    assert [f.kind for f in findings(ocsp, NOW)] == [Kind.LEAF_WITHOUT_AIA]
