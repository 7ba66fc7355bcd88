"""``rotation.emulation.dynamodb_scan``: moto's Scan answers, page for page, at one cast and one hash per item."""

from __future__ import annotations

import random
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb.models.dynamo_type import DynamoType, Item

from rotation.emulation.dynamodb_scan import quick_scans

REGION = "us-east-1"


def every_page(dynamodb: Any, **request: Any) -> list[dict[str, Any]]:
    """Every Scan response of the chain, whole (items, counts, LastEvaluatedKey)."""
    pages = []
    while True:
        page = dynamodb.scan(**request)
        page.pop("ResponseMetadata")
        pages.append(page)
        if "LastEvaluatedKey" not in page:
            return pages
        request = {**request, "ExclusiveStartKey": page["LastEvaluatedKey"]}


def seeded(dynamodb: Any) -> None:
    shuffled = random.Random(29)
    dynamodb.create_table(
        TableName="ranged",
        KeySchema=[{"AttributeName": "Arn", "KeyType": "HASH"}, {"AttributeName": "Serial", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "Arn", "AttributeType": "S"},
            {"AttributeName": "Serial", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.create_table(
        TableName="numbered",
        KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for n in shuffled.sample(range(300), 300):
        for serial in ("0A", "ff", "1") if n % 4 else ("0A",):
            item = {"Arn": {"S": f"arn:aws:secretsmanager:x:{n % 37}:secret:s-{n}"}, "Serial": {"S": serial}}
            item["Pad"] = {"S": "x" * shuffled.randrange(1, 9000)}  # items of uneven size: the 1 MB page limit
            if n % 3:
                item["Superseded"] = {"S": "2026-01-01T00:00:00Z"}
            dynamodb.put_item(TableName="ranged", Item=item)
        number = str(shuffled.choice([-1, 1]) * n / shuffled.choice([1, 4, 10]))
        dynamodb.put_item(TableName="numbered", Item={"Id": {"N": number}, "Pad": {"S": "y" * 4000}})


REQUESTS: list[dict[str, Any]] = [
    {"TableName": "ranged"},
    {"TableName": "ranged", "Limit": 7},
    *({"TableName": "ranged", "Segment": s, "TotalSegments": 5} for s in range(5)),
    *(
        {
            "TableName": "ranged",
            "Segment": s,
            "TotalSegments": 3,
            "Limit": 40,
            "FilterExpression": "attribute_not_exists(#s) AND begins_with(#a, :arn)",
            "ProjectionExpression": "#a, Serial",
            "ExpressionAttributeNames": {"#s": "Superseded", "#a": "Arn"},
            "ExpressionAttributeValues": {":arn": {"S": "arn:"}},
        }
        for s in range(3)
    ),
    {"TableName": "numbered"},
    {"TableName": "numbered", "Limit": 11},
    *({"TableName": "numbered", "Segment": s, "TotalSegments": 4, "Limit": 13} for s in range(4)),
]


def test_the_same_pages_in_the_same_order_as_moto_answers() -> None:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        seeded(dynamodb)
        expected = [every_page(dynamodb, **request) for request in REQUESTS]
        with quick_scans():
            got = [every_page(dynamodb, **request) for request in REQUESTS]
        assert got == expected
        assert sum(len(pages) for pages in expected) > 3 * len(REQUESTS)  # the cases do page
        assert len(expected[0]) > 1  # ... by the 1 MB limit too, not only by Limit
        segments = [{item["Arn"]["S"] for page in pages for item in page["Items"]} for pages in expected[2:7]]
        assert all(segments) and sum(map(len, segments)) == len(set().union(*segments))  # one segment per key


def test_each_item_is_cast_once_per_call_instead_of_per_comparison(monkeypatch: pytest.MonkeyPatch) -> None:
    casts = 0
    cast = DynamoType.cast_value.fget  # type: ignore[attr-defined]

    def counted(self: DynamoType) -> Any:
        nonlocal casts
        casts += 1
        return cast(self)

    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        seeded(dynamodb)
        monkeypatch.setattr(DynamoType, "cast_value", property(counted))
        dynamodb.scan(TableName="ranged", Limit=1)
        by_moto, casts = casts, 0
        with quick_scans():
            dynamodb.scan(TableName="ranged", Limit=1)
        items = 300 * 3 - 75 * 2
        assert casts <= 2 * items + 10 < by_moto / 4


def test_only_the_items_returned_are_copied(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto copies every item it reads, then drops those the filter expression refuses."""
    copied = 0
    original = Item.__deepcopy__

    def counted(self: Item, memo: dict[int, Any]) -> Item:
        nonlocal copied
        copied += 1
        return original(self, memo)

    request = {"TableName": "ranged", "FilterExpression": "attribute_not_exists(Superseded)"}
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        seeded(dynamodb)
        monkeypatch.setattr(Item, "__deepcopy__", counted)
        by_moto = dynamodb.scan(**request)
        copied_by_moto, copied = copied, 0
        with quick_scans():
            quick = dynamodb.scan(**request)
        assert quick["Items"] == by_moto["Items"] and quick["ScannedCount"] == by_moto["ScannedCount"]
        assert by_moto["ScannedCount"] > 2 * by_moto["Count"]  # the filter drops most of what is read
        assert copied_by_moto >= by_moto["ScannedCount"]
        assert copied <= quick["Count"] + 1  # the returned items, and the last one read for LastEvaluatedKey


def test_writes_between_scans_are_seen_as_moto_sees_them() -> None:
    """The order is kept between calls: every kind of write since the last scan must show."""
    request: dict[str, Any] = {"TableName": "ranged", "Limit": 50}

    def both(dynamodb: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        with quick_scans():
            quick = every_page(dynamodb, **request)
        return quick, every_page(dynamodb, **request)

    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        seeded(dynamodb)
        arn = "arn:aws:secretsmanager:x:1:secret:s-1"
        with quick_scans():
            every_page(dynamodb, **request)  # an order to keep
            dynamodb.put_item(TableName="ranged", Item={"Arn": {"S": "arn:0-new"}, "Serial": {"S": "00"}})
            dynamodb.delete_item(TableName="ranged", Key={"Arn": {"S": arn}, "Serial": {"S": "ff"}})
            dynamodb.update_item(
                TableName="ranged",
                Key={"Arn": {"S": arn}, "Serial": {"S": "0A"}},
                UpdateExpression="SET #pad = :p",
                ExpressionAttributeNames={"#pad": "Pad"},
                ExpressionAttributeValues={":p": {"S": "updated"}},
            )
            dynamodb.update_item(  # an update that creates the item
                TableName="ranged",
                Key={"Arn": {"S": "arn:zz"}, "Serial": {"S": "1"}},
                UpdateExpression="SET #pad = :p",
                ExpressionAttributeNames={"#pad": "Pad"},
                ExpressionAttributeValues={":p": {"S": "made"}},
            )
            dynamodb.batch_write_item(
                RequestItems={"ranged": [{"PutRequest": {"Item": {"Arn": {"S": "arn:1b"}, "Serial": {"S": "2"}}}}]}
            )
            pages = every_page(dynamodb, **request)
        quick, by_moto = both(dynamodb)
        assert pages == by_moto == quick
        names = {item["Arn"]["S"] for page in pages for item in page["Items"]}
        assert {"arn:0-new", "arn:zz", "arn:1b"} <= names
        updated = [i for page in pages for i in page["Items"] if i["Arn"]["S"] == arn and i["Serial"]["S"] == "0A"]
        assert [i["Pad"]["S"] for i in updated] == ["updated"]
        dynamodb.put_item(TableName="ranged", Item={"Arn": {"S": "arn:0-outside"}, "Serial": {"S": "9"}})
        quick, by_moto = both(dynamodb)  # written while no quick_scans was active
        assert quick == by_moto and any(i["Arn"]["S"] == "arn:0-outside" for p in quick for i in p["Items"])
