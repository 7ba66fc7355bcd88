"""SSM custom inventory, which moto 5.2 lacks, as ``rotation.emulation.ssm_inventory`` adds it.

These tests pin the emulation to the API model (botocore's ``ssm`` service model and the API
reference): what PutInventory accepts and refuses, that a put replaces the type whole, that an
unchanged ContentHash changes nothing, and how GetInventory and ListInventoryEntries read back.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from rotation.emulation.ssm_inventory import ssm_inventory_in_moto

INSTANCE = "i-0123456789abcdef0"
TYPE = "Custom:CertrotateCertificate"


def item(content: list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    return {
        "TypeName": TYPE,
        "SchemaVersion": "1.0",
        "CaptureTime": "2026-11-27T11:00:00Z",
        "Content": content,
        **extra,
    }


@pytest.fixture
def ssm() -> Iterator[Any]:
    with mock_aws(), ssm_inventory_in_moto():
        yield boto3.client("ssm", region_name="us-east-1")


def test_moto_alone_has_no_put_inventory() -> None:
    """Why the emulation exists: without it moto refuses the call."""
    with mock_aws():
        client = boto3.client("ssm", region_name="us-east-1")
        with pytest.raises(NotImplementedError):
            client.put_inventory(InstanceId=INSTANCE, Items=[item([{"A": "1"}])])


def test_a_put_replaces_the_type_whole_and_reads_back(ssm: Any) -> None:
    ssm.put_inventory(InstanceId=INSTANCE, Items=[item([{"File": "/a"}, {"File": "/b"}])])
    ssm.put_inventory(InstanceId=INSTANCE, Items=[item([{"File": "/c"}], CaptureTime="2026-11-27T11:30:00Z")])
    entities = ssm.get_inventory(ResultAttributes=[{"TypeName": TYPE}])["Entities"]
    assert [e["Id"] for e in entities] == [INSTANCE]
    data = entities[0]["Data"][TYPE]
    assert data["Content"] == [{"File": "/c"}] and data["CaptureTime"] == "2026-11-27T11:30:00Z"
    listed = ssm.list_inventory_entries(InstanceId=INSTANCE, TypeName=TYPE)
    assert listed["Entries"] == [{"File": "/c"}] and listed["SchemaVersion"] == "1.0"


def test_an_unchanged_content_hash_changes_nothing(ssm: Any) -> None:
    ssm.put_inventory(InstanceId=INSTANCE, Items=[item([{"File": "/a"}], ContentHash="h1")])
    ssm.put_inventory(InstanceId=INSTANCE, Items=[item([{"File": "/z"}], ContentHash="h1")])
    assert ssm.list_inventory_entries(InstanceId=INSTANCE, TypeName=TYPE)["Entries"] == [{"File": "/a"}]


@pytest.mark.parametrize(
    ("instance", "items", "code"),
    [
        ("web-1", [item([])], "InvalidInstanceId"),
        (INSTANCE, [item([], TypeName="Certrotate")], "InvalidTypeNameException"),
        (INSTANCE, [item([], TypeName="AWS:Application")], "InvalidTypeNameException"),
        (INSTANCE, [item([], SchemaVersion="1")], "UnsupportedInventorySchemaVersionException"),
        (INSTANCE, [item([], CaptureTime="2026-11-27 11:00:00")], "ValidationException"),
        (INSTANCE, [item([{f"k{i}": "v" for i in range(51)}])], "InvalidItemContentException"),
        (INSTANCE, [item([{"k" * 65: "v"}])], "InvalidItemContentException"),
        (INSTANCE, [item([{"k": "v" * 4097}])], "InvalidItemContentException"),
    ],
)
def test_what_the_api_model_refuses_is_refused(ssm: Any, instance: str, items: list[Any], code: str) -> None:
    with pytest.raises(ClientError) as raised:
        ssm.put_inventory(InstanceId=instance, Items=items)
    assert raised.value.response["Error"]["Code"] == code
    assert ssm.get_inventory()["Entities"] == []


def test_get_inventory_filters_and_pages(ssm: Any) -> None:
    for n in range(3):
        ssm.put_inventory(InstanceId=f"i-{n:017x}", Items=[item([{"Serial": f"S{n}"}])])
    found = ssm.get_inventory(Filters=[{"Key": f"{TYPE}.Serial", "Values": ["S1"], "Type": "Equal"}])["Entities"]
    assert [e["Id"] for e in found] == [f"i-{1:017x}"]
    first = ssm.get_inventory(ResultAttributes=[{"TypeName": TYPE}], MaxResults=2)
    second = ssm.get_inventory(ResultAttributes=[{"TypeName": TYPE}], MaxResults=2, NextToken=first["NextToken"])
    assert len(first["Entities"]) == 2 and len(second["Entities"]) == 1 and "NextToken" not in second
    with pytest.raises(ClientError, match="InvalidAggregatorException"):
        ssm.get_inventory(Aggregators=[{"Expression": f"{TYPE}.Serial"}])


def test_a_full_read_builds_each_entity_once(ssm: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 18: paging through n hosts costs n entities (it built every entity for every page: O(n²))."""
    from rotation.emulation import ssm_inventory

    hosts = [f"i-{n:017x}" for n in range(230)]
    for host in reversed(hosts):  # stored out of order; read back in id order
        ssm.put_inventory(InstanceId=host, Items=[item([{"File": "/a", "Host": host}])])
    built = {"n": 0}
    real = ssm_inventory.StoredItem.result_item

    def counted(self: Any) -> dict[str, Any]:
        built["n"] += 1
        return real(self)

    monkeypatch.setattr(ssm_inventory.StoredItem, "result_item", counted)
    seen, request = [], {"ResultAttributes": [{"TypeName": TYPE}]}
    while True:
        page = ssm.get_inventory(**request)
        seen += [e["Id"] for e in page["Entities"]]
        if "NextToken" not in page:
            break
        request["NextToken"] = page["NextToken"]
    assert seen == hosts
    assert built["n"] == len(hosts)
    filtered = ssm.get_inventory(
        ResultAttributes=[{"TypeName": TYPE}],
        Filters=[{"Key": f"{TYPE}.Host", "Type": "BeginWith", "Values": [hosts[224][:-1]]}],
        MaxResults=5,
    )
    assert [e["Id"] for e in filtered["Entities"]] == hosts[224:229] and filtered["NextToken"]
    rest = ssm.get_inventory(
        ResultAttributes=[{"TypeName": TYPE}],
        Filters=[{"Key": f"{TYPE}.Host", "Type": "BeginWith", "Values": [hosts[224][:-1]]}],
        NextToken=filtered["NextToken"],
    )
    assert [e["Id"] for e in rest["Entities"]] == hosts[229:] and "NextToken" not in rest
    with pytest.raises(ClientError, match="InvalidNextToken"):
        ssm.get_inventory(ResultAttributes=[{"TypeName": TYPE}], NextToken="not-a-token")


def test_get_inventory_filters_on_the_node_id(ssm: Any) -> None:
    """``AWS:InstanceInformation.InstanceId`` (every managed node has it) filters on the node's own id."""
    hosts = ["i-0a00000000000000a", "i-0b00000000000000b", "i-12345678", "mi-0c00000000000000c"]
    for host in hosts:
        ssm.put_inventory(InstanceId=host, Items=[item([{"File": "/a"}])])
    key = "AWS:InstanceInformation.InstanceId"

    def ids(values: list[str], kind: str = "BeginWith") -> list[str]:
        found = ssm.get_inventory(
            ResultAttributes=[{"TypeName": TYPE}], Filters=[{"Key": key, "Type": kind, "Values": values}]
        )
        return [e["Id"] for e in found["Entities"]]

    assert ids(["i-0a", "mi-"]) == ["i-0a00000000000000a", "mi-0c00000000000000c"]
    assert ids(["i-12345678"], "Equal") == ["i-12345678"]
    assert ids(["i-0"]) == ["i-0a00000000000000a", "i-0b00000000000000b"]
