"""The pure check of the ledger table's protections (rotation.fleet.ledger_protection.protection_problems)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rotation.fleet.ledger_protection import ADMIN_ACTIONS, ITEM_WRITES, protection_problems

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/ledger"
ROOT = "arn:aws:iam::123456789012:root"
ROLE = "arn:aws:iam::123456789012:role/rotation"
TABLE = {"TableArn": ARN, "DeletionProtectionEnabled": True}


def deny(actions: Any, exempt: Any = (ROOT,), **changes: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": actions,
        "Resource": "*",
        "Condition": {"ArnNotEquals": {"aws:PrincipalArn": list(exempt)}},
    }
    return {**statement, **changes}


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


GOOD = policy(
    deny([f"dynamodb:{a}" for a in ITEM_WRITES], (ROOT, ROLE)), deny([f"dynamodb:{a}" for a in ADMIN_ACTIONS])
)


def test_the_templates_shape_passes_and_a_wildcard_deny_covers_every_action() -> None:
    assert protection_problems(TABLE, GOOD, {ROOT, ROLE}) == []
    assert protection_problems(TABLE, policy(deny("dynamodb:*", (ROOT, ROLE))), {ROOT, ROLE}) == []
    assert protection_problems({**TABLE, "DeletionProtectionEnabled": None}, GOOD) == ["deletion protection is off"]


@pytest.mark.parametrize(
    ("statement", "why"),
    [
        pytest.param(deny("dynamodb:*", Effect="Allow"), "an Allow denies nothing", id="allow"),
        pytest.param(deny("dynamodb:*", Principal={"AWS": ROLE}), "denies one principal only", id="one-principal"),
        pytest.param(deny("dynamodb:*", Resource="arn:aws:dynamodb:*:*:table/other"), "another table", id="resource"),
        pytest.param(
            deny("dynamodb:*", Condition={"ArnNotLike": {"aws:PrincipalArn": "*"}}), "exempts anyone", id="wildcard"
        ),
        pytest.param(
            deny("dynamodb:*", Condition={"StringEquals": {"aws:PrincipalArn": ROOT}}), "applies to root", id="equals"
        ),
        pytest.param(
            deny("dynamodb:*", (ROOT, "arn:aws:iam::123456789012:role/intruder")), "a stranger", id="stranger"
        ),
        pytest.param(deny("dynamodb:PutItem"), "the rest allowed", id="partial"),
    ],
)
def test_a_policy_that_does_not_deny_every_protected_action_to_others_is_refused(
    statement: dict[str, Any], why: str
) -> None:
    problems = protection_problems(TABLE, policy(statement), {ROOT, ROLE})
    assert any(p.startswith("nothing denies dynamodb:DeleteTable") for p in problems), why


def test_no_policy_or_a_broken_one_is_refused_with_every_reason() -> None:
    assert protection_problems({"TableArn": ARN}, None) == [
        "deletion protection is off",
        "the table has no resource policy",
    ]
    assert protection_problems(TABLE, "{not json") == ["the resource policy is not JSON"]
