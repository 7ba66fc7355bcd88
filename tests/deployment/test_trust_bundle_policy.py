"""Issue 27 item 1: a trust bundle is written by the operators only, read by the workload roles.

The central template's TrustBundleSecret and its resource policy, resolved for given parameters by
the resolver of test_fleet_trust_templates and evaluated here the way IAM does for an explicit Deny
(an explicit Deny in a resource policy wins over any Allow of the caller's identity policy, so a
secret's writer holding secretsmanager:PutSecretValue on secret:* is still refused).
"""

from __future__ import annotations

import fnmatch
import functools
from typing import Any

import pytest

from tests.deployment.test_fleet_trust_templates import CENTRAL, Stack, allowed, as_list, load

OPERATOR = f"arn:aws:iam::{CENTRAL}:role/PkiOperator"
PARAMETERS = {
    "CertificateAuthorityArns": "arn:ca",
    "OperatorRoleArns": OPERATOR,
    "TrustBundleName": "partners",
    "WorkloadInstanceRoleArns": "arn:aws:iam::111111111111:role/certrotate/InstanceRole",
}
WRITES = (
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecret",
    "secretsmanager:UpdateSecretVersionStage",
    "secretsmanager:DeleteSecret",
    "secretsmanager:PutResourcePolicy",
    "secretsmanager:DeleteResourcePolicy",
)


def denied(statements: list[dict[str, Any]], action: str, principal_arn: str) -> bool:
    """Whether an explicit Deny statement for principal "*" applies to ``action`` by ``principal_arn``."""
    for statement in statements:
        if statement.get("Effect") != "Deny" or action not in as_list(statement["Action"]):
            continue
        if "*" not in as_list((statement.get("Principal") or {}).get("AWS", [])):
            continue
        results = []
        for operator, block in statement.get("Condition", {}).items():
            assert operator == "ArnNotLike", operator  # the only operator this policy uses
            for key, pattern in block.items():
                assert key == "aws:PrincipalArn"
                results.append(not any(fnmatch.fnmatchcase(principal_arn, str(p)) for p in as_list(pattern)))
        if all(results):
            return True
    return False


@functools.cache
def central() -> dict[str, Any]:
    """The rendered central template, parsed once (Stack only reads it)."""
    return load("central-account.yaml")


def bundle_policy(parameters: dict[str, str]) -> tuple[Stack, list[dict[str, Any]]]:
    stack = Stack(central(), parameters)
    resource = stack.template["Resources"]["TrustBundlePolicy"]
    return stack, stack.resolve(resource["Properties"]["ResourcePolicy"])["Statement"]


@pytest.mark.parametrize("action", WRITES)
@pytest.mark.parametrize(
    "writer",
    [
        f"arn:aws:iam::{CENTRAL}:role/TeamSecretWriter",  # a secret's writer (PutSecretValue on secret:*)
        f"arn:aws:iam::{CENTRAL}:role/certrotate-rotation",  # the rotation role
        "arn:aws:iam::111111111111:role/certrotate/InstanceRole",  # a host
        f"arn:aws:iam::{CENTRAL}:role/PkiOperatorImpostor",  # a name that only starts like the operator's
    ],
)
def test_nobody_but_the_operators_writes_the_bundle(action: str, writer: str) -> None:
    stack, statements = bundle_policy(PARAMETERS)
    assert stack.condition("HasTrustBundle")
    assert denied(statements, action, writer)
    assert not denied(statements, action, OPERATOR)


def test_the_bundle_lives_under_the_reserved_prefix_and_the_workload_roles_read_it() -> None:
    stack, statements = bundle_policy(PARAMETERS)
    secret = stack.resolve(stack.template["Resources"]["TrustBundleSecret"]["Properties"])
    assert secret["Name"] == "certrotate/trust-bundles/partners"
    assert secret["KmsKeyId"] == {"Ref": "CertificateKey"} or "CertificateKey" in str(secret["KmsKeyId"])
    context = {
        "aws:PrincipalArn": "arn:aws:iam::111111111111:role/certrotate/InstanceRole",
        "aws:PrincipalAccount": "111111111111",
    }
    assert allowed(statements, "secretsmanager:GetSecretValue", context)
    assert not denied(statements, "secretsmanager:GetSecretValue", context["aws:PrincipalArn"])


def test_without_operators_no_bundle_is_made() -> None:
    """No one could write it: the template makes no bundle rather than one only the root user can fill."""
    stack = Stack(central(), {**PARAMETERS, "OperatorRoleArns": ""})
    assert not stack.condition("HasTrustBundle")
    assert stack.template["Resources"]["TrustBundleSecret"]["Condition"] == "HasTrustBundle"
