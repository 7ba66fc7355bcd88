"""Issue 26: what finishSecret reads does not grow with a secret's history, and a revoking rotation
reads the fleet view once (moto, freezegun, the real handler).

Calls and items are counted with botocore's ``before-call``/``after-call`` events on the clients the
rotation uses (moto answers them); nothing here measures time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import boto3
import pytest

import rotation.handler
from rotation.emulation.ssm_inventory import ssm_inventory_in_moto
from rotation.fleet.ledger import INDEXED_PREFIX, INDEXED_SORT_KEY, OPEN_ATTRIBUTE, Ledger, create_table
from rotation.lifecycle.engine import build_services
from tests.conftest import REGION
from tests.functional.test_revocation import START, revoked, rotate_at, serve, spec
from tests.support.ledger_history import seed_history

TABLE = "certrotate-issued-certificates"
READS = ("Query", "GetItem", "BatchGetItem", "Scan")


@dataclass
class Counted:
    """Calls by operation, and the ledger items each read returned."""

    calls: Counter[str] = field(default_factory=Counter)
    items: Counter[str] = field(default_factory=Counter)

    def before(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    def after(self, model: Any, parsed: Any, **_: Any) -> None:
        if model.name == "Query" or model.name == "Scan":
            self.items[model.name] += int(parsed.get("Count", 0))
        elif model.name == "GetItem":
            self.items[model.name] += 1 if parsed.get("Item") else 0
        elif model.name == "BatchGetItem":
            self.items[model.name] += sum(len(v) for v in parsed.get("Responses", {}).values())

    def ledger_reads(self) -> dict[str, tuple[int, int]]:
        return {op: (self.calls[op], self.items[op]) for op in READS if self.calls[op]}


@pytest.fixture
def counted(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Counted, Any]]:
    """The handler wired to moto with the ledger and the fleet view; every DynamoDB and SSM call counted."""
    counter = Counted()
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    ssm = boto3.client("ssm", region_name=REGION)
    for client in (dynamodb, ssm):
        client.meta.events.register("before-call", counter.before)
        client.meta.events.register("after-call", counter.after)
    create_table(dynamodb, TABLE)
    services = build_services(
        aws.sm, lambda region: aws.pca, lambda region: aws.acm, ledger=Ledger(dynamodb, TABLE), make_ssm=lambda r: ssm
    )
    monkeypatch.setattr(rotation.handler, "_services", services)
    with ssm_inventory_in_moto():
        yield counter, dynamodb


def _measured_rotation(aws: Any, counter: Counted, arn: str, day: int) -> Counted:
    counter.calls.clear()
    counter.items.clear()
    rotate_at(aws, arn, START + timedelta(days=day))
    return Counted(Counter(counter.calls), Counter(counter.items))


@pytest.mark.slow
@pytest.mark.parametrize("indexed", [True, False], ids=["written-with-the-index", "written-before-the-index"])
def test_a_rotations_ledger_reads_are_the_same_at_10_and_at_3000_past_entries(
    aws: Any, root_ca: str, make_secret: Any, counted: tuple[Counted, Any], indexed: bool
) -> None:
    """Two secrets rotate the same way, one with 10 past entries (revoked or expired), one with 3,000:
    after the first rotation (which indexes a history written before the index, once), each
    revoking rotation makes the same ledger reads returning the same number of items, and reads the
    fleet view with 2 GetInventory calls (the serials, the secret's records; no stale-worker read)."""
    counter, dynamodb = counted
    seen: dict[int, list[Counted]] = {}
    for size in (10, 3000):
        arn = make_secret(spec(root_ca, f"h{size}.example.internal", REVOKE_SUPERSEDED_AFTER="0"), name=f"h{size}")
        seed_history(dynamodb, TABLE, arn, root_ca, size, START, indexed=indexed)
        first = _measured_rotation(aws, counter, arn, 0)
        assert first.calls["Query"] >= (1 if indexed else 2)  # the index, then the whole history once
        marker = dynamodb.get_item(
            TableName=TABLE, Key={"SecretArn": {"S": INDEXED_PREFIX + arn}, "Serial": {"S": INDEXED_SORT_KEY}}
        )
        assert marker["Item"][OPEN_ATTRIBUTE] == {"S": arn}
        seen[size] = [_measured_rotation(aws, counter, arn, day) for day in (1, 2, 3)]
    small, large = seen[10], seen[3000]
    assert [r.ledger_reads() for r in small] == [r.ledger_reads() for r in large]
    for rotation_ in large:
        assert rotation_.calls["Scan"] == 0
        assert rotation_.ledger_reads()["Query"] == (1, 3)  # the index: the new entry, the one it replaced, the marker
        assert rotation_.calls["GetInventory"] == 2
    assert len(revoked(root_ca)) == 6  # each measured rotation revoked the certificate it replaced


def test_a_legacy_open_entry_is_indexed_then_revoked_and_leaves_the_index(
    aws: Any, root_ca: str, make_secret: Any, counted: tuple[Counted, Any]
) -> None:
    """An entry written before the index (no OpenFor), still open and superseded, is found by the one
    full read of the first rotation, revoked, and no longer read by the next rotations."""
    counter, dynamodb = counted
    arn = make_secret(spec(root_ca, REVOKE_SUPERSEDED_AFTER="0"))
    first = rotate_at(aws, arn, START)
    dynamodb.update_item(  # as written before the index
        TableName=TABLE,
        Key={"SecretArn": {"S": arn}, "Serial": {"S": first}},
        UpdateExpression="REMOVE #open",
        ExpressionAttributeNames={"#open": OPEN_ATTRIBUTE},
    )
    dynamodb.delete_item(
        TableName=TABLE, Key={"SecretArn": {"S": INDEXED_PREFIX + arn}, "Serial": {"S": INDEXED_SORT_KEY}}
    )
    rotate_at(aws, arn, START + timedelta(days=1))
    assert revoked(root_ca) == {first: "SUPERSEDED"}
    item = dynamodb.get_item(TableName=TABLE, Key={"SecretArn": {"S": arn}, "Serial": {"S": first}})["Item"]
    assert OPEN_ATTRIBUTE not in item and item["RevocationReason"] == {"S": "SUPERSEDED"}
    later = _measured_rotation(aws, counter, arn, 2)
    assert later.ledger_reads()["Query"] == (1, 3)  # the new entry, the one it replaced, the marker


def test_a_host_moved_to_a_since_revoked_certificate_releases_its_hold_read_by_key(
    aws: Any, root_ca: str, make_secret: Any, counted: tuple[Counted, Any]
) -> None:
    """A host seen serving A holds it until it reports a newer certificate of the secret; when that one
    (C) was revoked since, it is no longer among the open entries: its entry is read by key
    (BatchGetItem, only the serials the fleet view names) and A is revoked."""
    counter, _ = counted
    arn = make_secret(spec(root_ca, REVOKE_SUPERSEDED_AFTER="0"))
    y = "i-0aaaaaaaaaaaaaaaa"
    a = rotate_at(aws, arn, START)
    serve(a, arn, y)
    b = rotate_at(aws, arn, START + timedelta(days=1))  # A held by Y
    serve(b, arn, y)
    rotate_at(aws, arn, START + timedelta(days=2))  # Y moved to B: A revoked, B held by Y
    assert a in revoked(root_ca) and b not in revoked(root_ca)
    serve("DEADBEEF", arn, y)
    c = rotate_at(aws, arn, START + timedelta(days=3))
    rotate_at(aws, arn, START + timedelta(days=4))  # C superseded, nothing serves it: revoked; B still held
    assert c in revoked(root_ca) and b not in revoked(root_ca)
    serve(c, arn, y)  # Y reports C (revoked since): it moved on from B
    last = _measured_rotation(aws, counter, arn, 5)
    assert b in revoked(root_ca)
    assert last.ledger_reads()["BatchGetItem"] == (1, 1)  # C's entry, by its key


def test_a_stale_worker_still_holds_its_certificate_through_the_one_serial_read(
    aws: Any, root_ca: str, make_secret: Any, counted: tuple[Counted, Any]
) -> None:
    """The revoker no longer reads ServedCheck ``stale:`` instances separately: a host whose record
    reports the current certificate B while a worker still presents A is brought by the Serial read
    (B is an open entry of the secret) and holds A; once every worker presents B, A is revoked."""
    counter, _ = counted
    arn = make_secret(spec(root_ca, REVOKE_SUPERSEDED_AFTER="0"))
    y = "i-0bbbbbbbbbbbbbbbb"
    a = rotate_at(aws, arn, START)
    serve(a, arn, y)
    b = rotate_at(aws, arn, START + timedelta(days=1))  # Y serves A: held
    serve(b, arn, y, ServedCheck=f"stale: 1/16 serial {a}, new: 15/16")
    held = _measured_rotation(aws, counter, arn, 2)
    assert a not in revoked(root_ca)
    assert held.calls["GetInventory"] == 2  # the open entries' serials, the secret's records
    serve(b, arn, y, ServedCheck="16/16")
    rotate_at(aws, arn, START + timedelta(days=3))
    assert a in revoked(root_ca)
