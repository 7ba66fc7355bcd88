"""The CloudFormation templates: lint, security properties, event patterns, embedded documents."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from moto.events.models import EventPattern

from rotation.build.templates import OUTPUT, SOURCES, document_contents, render_template
from tests.integration.conftest import require

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "tests" / "fixtures" / "aws_events"
TEMPLATES = sorted(OUTPUT.glob("*.yaml"))


def load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((OUTPUT / name).read_text())
    return loaded


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return loaded


def statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every identity-policy statement of every IAM role, with its role's logical id."""
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::IAM::Role":
            for policy in resource["Properties"].get("Policies", []):
                for statement in policy["PolicyDocument"]["Statement"]:
                    yield logical_id, statement


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_templates_are_committed_as_rendered() -> None:
    assert TEMPLATES, "no templates in cfn/"
    for source in sorted(SOURCES.glob("*.yaml")):
        assert (OUTPUT / source.name).read_text() == render_template(source), "run python -m rotation.build.templates"


def test_cfn_lint_reports_nothing() -> None:
    require(None if shutil.which("cfn-lint") else "cfn-lint is not installed (pip install cfn-lint)")
    result = subprocess.run(["cfn-lint", *map(str, TEMPLATES)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", [t.name for t in TEMPLATES])
def test_no_wildcard_resource_on_private_ca_or_secrets_manager(name: str) -> None:
    checked = 0
    for role, statement in statements(load(name)):
        actions = as_list(statement["Action"])
        if any(a.startswith(("acm-pca:", "secretsmanager:")) for a in actions):
            checked += 1
            assert "*" not in as_list(statement["Resource"]), f"{role}: {actions}"
    assert checked


def test_rotation_role_touches_only_secrets_that_name_this_function() -> None:
    template = load("central-account.yaml")
    (statement,) = [
        s
        for r, s in statements(template)
        if r == "RotationFunctionRole" and "secretsmanager:PutSecretValue" in as_list(s["Action"])
    ]
    condition = statement["Condition"]["StringEquals"]["secretsmanager:resource/AllowRotationLambdaArn"]
    function_name = template["Resources"]["RotationFunction"]["Properties"]["FunctionName"]["Fn::Sub"]
    assert condition["Fn::Sub"].endswith(f":function:{function_name}")
    (pca,) = [
        s
        for r, s in statements(template)
        if r == "RotationFunctionRole" and "acm-pca:IssueCertificate" in as_list(s["Action"])
    ]
    assert pca["Resource"] == {"Ref": "CertificateAuthorityArns"}


def test_kms_lets_workload_roles_decrypt_only_via_secrets_manager() -> None:
    key = load("central-account.yaml")["Resources"]["CertificateKey"]["Properties"]
    (workload,) = [s for s in key["KeyPolicy"]["Statement"] if s["Sid"] == "WorkloadRolesDecryptViaSecretsManagerOnly"]
    assert set(workload["Action"]) == {"kms:Decrypt", "kms:DescribeKey"}
    assert workload["Condition"]["StringEquals"]["kms:ViaService"] == {
        "Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"
    }
    assert key["EnableKeyRotation"] is True
    workload_role = load("workload-account.yaml")["Resources"]["InstanceRole"]["Properties"]
    decrypt = workload_role["Policies"][0]["PolicyDocument"]["Statement"][1]
    assert decrypt["Condition"]["StringLike"]["kms:ViaService"] == "secretsmanager.*.amazonaws.com"


def test_secrets_manager_may_invoke_only_from_this_account() -> None:
    permission = load("central-account.yaml")["Resources"]["RotationFunctionInvokePermission"]["Properties"]
    assert permission["Principal"] == "secretsmanager.amazonaws.com"
    assert permission["SourceAccount"] == {"Ref": "AWS::AccountId"}


@pytest.mark.parametrize("name", [t.name for t in TEMPLATES])
def test_every_handler_string_resolves_to_a_real_function(name: str) -> None:
    handlers = [
        r["Properties"]["Handler"] for r in load(name)["Resources"].values() if r["Type"] == "AWS::Lambda::Function"
    ]
    assert handlers
    for handler in handlers:
        module, function = handler.rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module), function)), handler


def test_rotation_timeout_covers_the_issuance_wait() -> None:
    from rotation.handler import SAFETY_MARGIN_SECONDS

    function = load("central-account.yaml")["Resources"]["RotationFunction"]["Properties"]
    wait = float(function["Environment"]["Variables"]["CERTROTATE_ISSUANCE_WAIT_SECONDS"])
    assert function["Timeout"] >= wait + SAFETY_MARGIN_SECONDS
    assert function["Architectures"] == ["arm64"] and function["Runtime"] == "python3.12"


@pytest.mark.parametrize("name", [t.name for t in TEMPLATES])
def test_embedded_documents_equal_the_files(name: str) -> None:
    contents = document_contents()
    documents = {
        r["Properties"]["Name"]: r["Properties"]["Content"]
        for r in load(name)["Resources"].values()
        if r["Type"] == "AWS::SSM::Document"
    }
    assert set(documents) == {"RunUpdateTLS", "RollbackTLS"}
    for document_name, content in documents.items():
        on_disk = yaml.safe_load((ROOT / "ssm_documents" / f"{document_name}.yaml").read_text())
        assert content == on_disk == contents[document_name]


def rule_pattern(template: str, rule: str) -> EventPattern:
    return EventPattern.load(json.dumps(load(template)["Resources"][rule]["Properties"]["EventPattern"]))


ACM_NOTICES = [
    "acm-certificate-approaching-expiration",
    "acm-certificate-expired",
    "acm-certificate-renewal-action-required",
]
ALL_SAMPLES = [
    *ACM_NOTICES,
    "acm-certificate-available",
    "secretsmanager-rotation-succeeded",
    "secretsmanager-rotation-failed",
]


@pytest.mark.parametrize(
    ("rule", "matching"),
    [
        ("AcmNoticeRule", ACM_NOTICES),
        ("AcmCertificateAvailableRule", ["acm-certificate-available"]),
        ("RotationSucceededRule", ["secretsmanager-rotation-succeeded"]),
    ],
)
def test_event_patterns_match_the_documented_events_and_nothing_else(rule: str, matching: list[str]) -> None:
    pattern = rule_pattern("central-account.yaml", rule)
    for name in ALL_SAMPLES:
        assert pattern.matches_event(sample(name)) is (name in matching), f"{rule} vs {name}"


def test_the_workload_rule_matches_only_forwarded_rotations_of_the_central_account() -> None:
    from rotation.event_handlers.rotation_succeeded import FORWARDED_DETAIL_TYPE, FORWARDED_SOURCE

    raw = load("workload-account.yaml")["Resources"]["CertificateRotatedRule"]["Properties"]["EventPattern"]
    raw["account"] = ["111122223333"]  # the CentralAccountId parameter, resolved
    pattern = EventPattern.load(json.dumps(raw))
    forwarded = {
        "source": FORWARDED_SOURCE,
        "detail-type": FORWARDED_DETAIL_TYPE,
        "account": "111122223333",
        "detail": {"secretArn": "arn:aws:secretsmanager:us-east-1:111122223333:secret:x-AbCdEf"},
    }
    assert pattern.matches_event(forwarded)
    assert not pattern.matches_event({**forwarded, "account": "999988887777"})
    assert not any(pattern.matches_event(sample(n)) for n in ALL_SAMPLES)
