"""Issue 25 item 1: the central template protects the ledger table itself, and the rotation's check
(rotation.fleet.ledger_protection) accepts exactly what the template deploys.

The template's intrinsics are resolved here for one set of parameter values (a few lines for the
functions the table, its policy and the function's environment use), then the resolved policy is
given to the same pure check the rotation runs against GetResourcePolicy.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from rotation.build.templates import OUTPUT
from rotation.fleet.ledger import OPEN_INDEX
from rotation.fleet.ledger_protection import ADMIN_ACTIONS, LEDGER_PRINCIPALS_ENV, protection_problems
from tests.support.templates import load_template

ACCOUNT = "123456789012"
TABLE_ARN = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/certrotate-IssuanceLedgerTable-X"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/certrotate-RotationFunctionRole-X"


def resolve(node: Any, parameters: dict[str, Any], conditions: dict[str, bool]) -> Any:
    """Fn::If, Fn::Join, Fn::Split, Fn::Sub, Fn::GetAtt and Ref, for the values of this test."""
    if isinstance(node, list):
        return [resolve(n, parameters, conditions) for n in node]
    if not isinstance(node, dict):
        return node
    if list(node) == ["Ref"]:
        return parameters[node["Ref"]]
    if list(node) == ["Fn::GetAtt"]:
        return {"RotationFunctionRole": ROLE_ARN, "IssuanceLedgerTable": TABLE_ARN}[node["Fn::GetAtt"][0]]
    if list(node) == ["Fn::Sub"]:
        text = node["Fn::Sub"]
        for key, value in {"AWS::Partition": "aws", "AWS::AccountId": ACCOUNT, "AWS::Region": "us-east-1"}.items():
            text = text.replace("${" + key + "}", value)
        return text
    if list(node) == ["Fn::Join"]:
        separator, items = node["Fn::Join"]
        flat = resolve(items, parameters, conditions)
        return separator.join(",".join(i) if isinstance(i, list) else i for i in flat)
    if list(node) == ["Fn::Split"]:
        separator, text = node["Fn::Split"]
        return [part for part in resolve(text, parameters, conditions).split(separator) if part]
    if list(node) == ["Fn::If"]:
        name, yes, no = node["Fn::If"]
        return resolve(yes if conditions[name] else no, parameters, conditions)
    return {key: resolve(value, parameters, conditions) for key, value in node.items()}


@pytest.mark.parametrize("administrators", [[], [f"arn:aws:iam::{ACCOUNT}:role/deployer"]])
def test_the_deployed_table_passes_the_rotations_protection_check(administrators: list[str]) -> None:
    template = load_template(OUTPUT / "central-account.yaml")
    operators = [f"arn:aws:iam::{ACCOUNT}:role/operator"]
    parameters = {
        **{name: [] for name in template["Parameters"]},  # the others: empty lists (unused here)
        **dict.fromkeys(template["Resources"], "ref"),
        "OperatorRoleArns": operators,
        "LedgerAdministratorArns": administrators,
    }
    conditions = {"HasOperatorRoles": True, "HasLedgerAdministrators": bool(administrators)}
    table = resolve(template["Resources"]["IssuanceLedgerTable"]["Properties"], parameters, conditions)
    environment = resolve(
        template["Resources"]["RotationFunction"]["Properties"]["Environment"]["Variables"], parameters, conditions
    )
    principals = {p for p in environment[LEDGER_PRINCIPALS_ENV].split(",") if p}
    assert principals == {ROLE_ARN, f"arn:aws:iam::{ACCOUNT}:root", *operators, *administrators}
    described = {"TableArn": TABLE_ARN, "DeletionProtectionEnabled": table["DeletionProtectionEnabled"]}
    policy = json.dumps(table["ResourcePolicy"]["PolicyDocument"])
    assert protection_problems(described, policy, principals) == []
    (admin,) = [
        s for s in table["ResourcePolicy"]["PolicyDocument"]["Statement"] if "dynamodb:DeleteTable" in s["Action"]
    ]
    assert sorted(admin["Action"]) == sorted(f"dynamodb:{a}" for a in ADMIN_ACTIONS)
    exempt = admin["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
    assert sorted(exempt) == sorted([f"arn:aws:iam::{ACCOUNT}:root", *administrators])  # not the rotation role
    # without the admin statement, or with deletion protection off, the same check refuses
    stripped = dict(table["ResourcePolicy"]["PolicyDocument"])
    stripped["Statement"] = [s for s in stripped["Statement"] if s is not admin]
    assert "nothing denies dynamodb:DeleteTable to other principals" in protection_problems(
        described, json.dumps(stripped), principals
    )
    assert protection_problems({**described, "DeletionProtectionEnabled": False}, policy, principals) == [
        "deletion protection is off"
    ]


def test_the_rotation_role_may_read_the_tables_protections_and_nothing_more_of_it() -> None:
    template = load_template(OUTPUT / "central-account.yaml")
    statements = template["Resources"]["RotationLedgerPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    actions = {a for s in statements for a in s["Action"]}
    assert actions == {
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:DescribeTable",
        "dynamodb:GetResourcePolicy",
    }
    (index,) = [s for s in statements if s["Sid"] == "IssuanceLedgerOpenEntries"]
    assert index["Action"] == ["dynamodb:Query"]
    assert index["Resource"] == {"Fn::Sub": f"${{IssuanceLedgerTable.Arn}}/index/{OPEN_INDEX}"}


def test_the_template_declares_the_keys_and_the_open_entries_index_create_table_makes() -> None:
    """rotation.fleet.ledger.create_table (tests, sandbox, demo) and the central template declare the
    same key schema, attributes and sparse index: finishSecret queries that index by name."""
    import boto3
    from moto import mock_aws

    from rotation.fleet.ledger import create_table

    template = load_template(OUTPUT / "central-account.yaml")
    declared = template["Resources"]["IssuanceLedgerTable"]["Properties"]
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(dynamodb, "ledger")
        made = dynamodb.describe_table(TableName="ledger")["Table"]
    assert made["KeySchema"] == declared["KeySchema"]
    assert sorted(made["AttributeDefinitions"], key=str) == sorted(declared["AttributeDefinitions"], key=str)
    shape = ("IndexName", "KeySchema", "Projection")
    assert [{k: i[k] for k in shape} for i in made["GlobalSecondaryIndexes"]] == declared["GlobalSecondaryIndexes"]
    assert declared["GlobalSecondaryIndexes"][0]["IndexName"] == OPEN_INDEX
