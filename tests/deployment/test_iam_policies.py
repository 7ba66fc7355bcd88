"""Every policy in the CloudFormation templates, checked against an IAM database (policy_sentry).

policy_sentry ships AWS's Service Authorization Reference as a database: each action exists, and
each condition key is one the action supports (for at least one of its resource types) or a
global key. Then the trust boundaries of issue 8, statement by statement: the rotation role
issues only end-entity templates (the same list the spec accepts), exports and renews only ACM
certificates carrying the ownership tag, tags only untagged certificates, and the ACM event
function rotates only secrets whose rotation function is certrotate's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from policy_sentry.querying.actions import get_action_data, get_actions_for_service

from rotation.build.templates import OUTPUT
from rotation.issuance.issuers.acm import OWNER_TAG
from rotation.issuance.spec import END_ENTITY_TEMPLATES
from tests.support.templates import load_template

TEMPLATES = sorted(OUTPUT.glob("*.yaml"))
#: Global condition keys (any action); the tag keys are not global: the action must list them.
GLOBAL_PREFIXES = ("aws:",)
SERVICE_SPECIFIC_AWS_KEYS = ("aws:RequestTag/", "aws:ResourceTag/", "aws:TagKeys")


def load(path: Path) -> dict[str, Any]:
    return load_template(path)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policy_documents(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every policy document in a template: role policies, key, topic and secret resource policies."""
    for logical_id, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Role":
            for policy in properties.get("Policies", []):
                yield logical_id, policy["PolicyDocument"]
        for name in ("KeyPolicy", "PolicyDocument", "ResourcePolicy"):
            if isinstance(properties.get(name), dict) and "Statement" in properties[name]:
                yield logical_id, properties[name]


def unconditional(statement: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A statement, or both branches of one written as ``Fn::If`` (``AWS::NoValue`` dropped)."""
    if "Fn::If" in statement:
        for branch in statement["Fn::If"][1:]:
            if isinstance(branch, dict) and branch != {"Ref": "AWS::NoValue"}:
                yield from unconditional(branch)
        return
    yield statement


def statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical_id, document in policy_documents(template):
        for written in document["Statement"]:
            for statement in unconditional(written):
                yield logical_id, statement


def condition_keys_of(action: str) -> set[str] | None:
    """The condition keys an action supports (all resource types), or None for an unknown action."""
    service, name = action.split(":", 1)
    if "*" in name:
        matching = [a for a in get_actions_for_service(service) if a.lower().startswith(action.lower().rstrip("*"))]
        if not matching:
            return None
        return set().union(*(condition_keys_of(a) or set() for a in matching))
    data = get_action_data(service, name)
    if not data:
        return None
    return {key for entry in data[service] for key in entry["condition_keys"]}


def key_supported(key: str, supported: set[str]) -> bool:
    if key in supported:
        return True
    for pattern in supported:  # aws:ResourceTag/${TagKey}, kms:EncryptionContext:${EncryptionContextKey}
        if "${" in pattern and key.startswith(pattern.split("${", 1)[0]):
            return True
    return key.startswith(GLOBAL_PREFIXES) and not key.startswith(SERVICE_SPECIFIC_AWS_KEYS)


def all_statements() -> list[tuple[str, str, dict[str, Any]]]:
    return [(t.name, role, s) for t in TEMPLATES for role, s in statements(load(t))]


ALL_STATEMENTS = all_statements()  # read at collection (by each xdist worker): once


@pytest.mark.parametrize(
    ("template", "role", "statement"),
    ALL_STATEMENTS,
    ids=[f"{t}:{r}:{s.get('Sid', '-')}" for t, r, s in ALL_STATEMENTS],
)
def test_every_action_and_condition_key_exists_in_the_iam_database(
    template: str, role: str, statement: dict[str, Any]
) -> None:
    if statement.get("Action") == "sts:AssumeRole":
        return
    for action in as_list(statement["Action"]):
        supported = condition_keys_of(action)
        assert supported is not None, f"{role}: {action} is not an IAM action"
        for operator, keys in (statement.get("Condition") or {}).items():
            for key in keys:
                assert key_supported(key, supported), f"{role}: {operator} {key} is not a condition key of {action}"


def rotation_role(name: str) -> dict[str, dict[str, Any]]:
    template = load(OUTPUT / "central-account.yaml")
    return {s["Sid"]: s for r, s in statements(template) if r == name}


def test_issue_certificate_is_limited_to_the_specs_end_entity_templates() -> None:
    issuing = [
        s for s in rotation_role("RotationFunctionRole").values() if "acm-pca:IssueCertificate" in as_list(s["Action"])
    ]
    assert len(issuing) == 1
    (statement,) = issuing
    assert as_list(statement["Action"]) == ["acm-pca:IssueCertificate"]
    allowed = statement["Condition"]["StringEquals"]["acm-pca:TemplateArn"]
    arns = [a["Fn::Sub"].replace("${AWS::Partition}", "aws") for a in allowed]
    assert arns == [f"arn:aws:acm-pca:::template/{t}" for t in END_ENTITY_TEMPLATES]


def test_acm_export_renew_and_tagging_depend_on_the_ownership_tag() -> None:
    role = rotation_role("RotationFunctionRole")
    by_action = {a: s for s in role.values() for a in as_list(s["Action"]) if a.startswith("acm:")}
    owner_pattern = {"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:*"}
    for action in ("acm:ExportCertificate", "acm:RenewCertificate"):
        assert by_action[action]["Condition"] == {"StringLike": {f"aws:ResourceTag/{OWNER_TAG}": owner_pattern}}
    tagging = by_action["acm:AddTagsToCertificate"]["Condition"]
    assert tagging["Null"] == {f"aws:ResourceTag/{OWNER_TAG}": "true"}  # never re-tags an owned certificate
    assert tagging["ForAllValues:StringEquals"] == {"aws:TagKeys": [OWNER_TAG]}
    request = by_action["acm:RequestCertificate"]["Condition"]
    assert request["StringEquals"] == {"acm:CertificateAuthority": {"Ref": "CertificateAuthorityArns"}}
    assert request["StringLike"] == {f"aws:RequestTag/{OWNER_TAG}": owner_pattern}
    unconditioned = {a for a, s in by_action.items() if "Condition" not in s}
    assert unconditioned == {"acm:DescribeCertificate", "acm:ListTagsForCertificate"}


def test_the_acm_event_function_rotates_only_secrets_of_the_rotation_function() -> None:
    template = load(OUTPUT / "central-account.yaml")
    role = rotation_role("EventFunctionRole")
    secret_statements = [s for s in role.values() if any(a.startswith("secretsmanager:") for a in as_list(s["Action"]))]
    assert secret_statements and all(
        s["Condition"]["StringEquals"]["secretsmanager:resource/AllowRotationLambdaArn"]["Fn::Sub"].endswith(
            ":function:${AWS::StackName}-rotation"
        )
        for s in secret_statements
    )
    assert "secretsmanager:RotateSecret" in {a for s in secret_statements for a in as_list(s["Action"])}
    variables = template["Resources"]["AcmCertificateAvailableFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["CERTROTATE_ROTATION_FUNCTION_ARN"] == {"Fn::GetAtt": ["RotationFunction", "Arn"]}


# -- the fleet view (issue 10) ----------------------------------------------------------------------

#: AWS's managed policy for instances run by the SSM agent; its document (AWS Managed Policy
#: Reference, AmazonSSMManagedInstanceCore v2) grants ssm:PutInventory, which the installer calls
#: to record what the host serves.
SSM_INSTANCE_CORE = "arn:${AWS::Partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"


def instance_roles(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        principals = [
            s.get("Principal", {}).get("Service")
            for s in resource["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        ]
        if "ec2.amazonaws.com" in principals:
            yield logical_id, resource["Properties"]


def test_every_instance_role_may_record_the_fleet_view() -> None:
    found = [
        (path.name, logical_id, [m.get("Fn::Sub") for m in properties.get("ManagedPolicyArns", [])])
        for path in TEMPLATES
        for logical_id, properties in instance_roles(load(path))
    ]
    assert {logical_id for _, logical_id, _ in found} >= {"InstanceRole", "DemoInstanceRole"}
    for name, logical_id, managed in found:
        assert SSM_INSTANCE_CORE in managed, f"{name} {logical_id} cannot PutInventory"


def test_the_fleet_view_role_reads_inventory_only_and_only_for_the_central_account() -> None:
    workload = load(OUTPUT / "workload-account.yaml")
    role = workload["Resources"]["FleetViewRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${CentralAccountId}:root"}}
    actions = {a for p in role["Policies"] for s in p["PolicyDocument"]["Statement"] for a in as_list(s["Action"])}
    assert actions == {"ssm:GetInventory", "ssm:ListInventoryEntries"}
    for action in actions:  # neither supports a resource type, so "*" is as narrow as IAM allows
        (entry,) = get_action_data("ssm", action.split(":")[1])["ssm"]
        assert entry["resource_arn_format"] == "*"
    assert workload["Outputs"]["FleetViewRoleArn"]["Value"] == {"Fn::GetAtt": ["FleetViewRole", "Arn"]}


def test_revoke_certificate_only_on_the_configured_cas_in_every_template() -> None:
    """Issue 12: no role of any template may revoke on a CA other than the configured ones."""
    revoking = [
        (t.name, role, s)
        for t in TEMPLATES
        for role, s in statements(load(t))
        if any(a in ("acm-pca:RevokeCertificate", "acm-pca:*", "*") for a in as_list(s["Action"]))
    ]
    assert [(t, role) for t, role, _ in revoking] == [("central-account.yaml", "RotationFunctionRole")]
    (_, _, statement) = revoking[0]
    assert statement["Effect"] == "Allow" and as_list(statement["Action"]) == ["acm-pca:RevokeCertificate"]
    assert statement["Resource"] == {"Ref": "CertificateAuthorityArns"}


# -- condition operators against their keys' types (issue 24 item 5) ------------------------------

#: Types of the global keys the templates use (IAM User Guide, "AWS global condition context keys",
#: each key's "Data type"); service keys and the tag keys come from policy_sentry's database.
GLOBAL_KEY_TYPES = {
    "aws:PrincipalArn": "arn",
    "aws:PrincipalAccount": "string",
    "aws:PrincipalOrgID": "string",
    "aws:SourceAccount": "string",
    "aws:SourceArn": "arn",
    "aws:SecureTransport": "bool",
}
#: The key types each operator family compares (IAM User Guide, "Condition operators"; IAM Access
#: Analyzer's policy check "Data type mismatch"). An ARN is also a string, so string operators may
#: compare ARN keys (AWS's own examples do, e.g. StringEquals on aws:SourceArn); ARN operators on a
#: String key are the mismatch.
OPERATOR_TYPES = {
    "String": {"string", "arn"},
    "Arn": {"arn"},
    "Numeric": {"numeric"},
    "Date": {"date"},
    "Bool": {"bool", "boolean"},
    "Binary": {"binary"},
    "IpAddress": {"ipaddress"},
    "NotIpAddress": {"ipaddress"},
}


def every_policy_document(node: Any) -> Iterator[dict[str, Any]]:
    """Every policy document anywhere in a template's resources (trust policies, role and managed
    policies, key, topic, queue, bus, secret and table resource policies)."""
    if isinstance(node, dict):
        if isinstance(node.get("Statement"), list):
            yield node
        for value in node.values():
            yield from every_policy_document(value)
    elif isinstance(node, list):
        for value in node:
            yield from every_policy_document(value)


def key_type(key: str, actions: list[str]) -> str | None:
    """The documented type of ``key`` for these actions (lower case, array element type), or None."""
    from policy_sentry.querying.conditions import get_service_prefix_data, is_condition_key_match

    found = set()
    for action in actions:
        service = action.split(":", 1)[0]
        if service == "*":
            continue
        conditions = (get_service_prefix_data(service) or {}).get("conditions", {})
        found |= {data["type"].lower() for name, data in conditions.items() if is_condition_key_match(name, key)}
    if not found and key in GLOBAL_KEY_TYPES:
        found = {GLOBAL_KEY_TYPES[key]}
    if len(found) != 1:
        return None
    (kind,) = found
    return kind.removeprefix("arrayof")


def operator_family(operator: str) -> str:
    """``ForAnyValue:StringLikeIfExists`` → ``String``; ``NotIpAddress`` stays itself; ``Null``."""
    bare = operator.split(":", 1)[-1].removesuffix("IfExists")
    for family in sorted(OPERATOR_TYPES, key=len, reverse=True):
        if bare.startswith(family):
            return family
    return bare


def condition_uses() -> list[tuple[str, str, str, list[str]]]:
    uses = []
    for path in TEMPLATES:
        for document in every_policy_document(load(path)["Resources"]):
            for written in document["Statement"]:
                for statement in unconditional(written):
                    actions = [a for a in as_list(statement.get("Action", [])) if isinstance(a, str)]
                    for operator, keys in (statement.get("Condition") or {}).items():
                        uses.extend((path.name, operator, key, actions) for key in keys)
    return uses


def test_every_condition_operator_fits_its_keys_type() -> None:
    """Issue 24 item 5: the key policy compared kms:EncryptionContext:SecretARN (a String key) with
    ArnLike, which IAM Access Analyzer reports as a type mismatch. Every operator in every policy of
    both templates is now checked against its key's type from the IAM database."""
    uses = condition_uses()
    assert any(key == "kms:EncryptionContext:SecretARN" for _, _, key, _ in uses)
    problems = []
    for template, operator, key, actions in uses:
        family = operator_family(operator)
        if family == "Null":  # compares presence, any type
            continue
        kind = key_type(key, actions)
        if kind is None:
            problems.append(f"{template}: {key} has no documented type for {actions}")
        elif family not in OPERATOR_TYPES or kind not in OPERATOR_TYPES[family]:
            problems.append(f"{template}: {operator} on {key}, a {kind} key")
    assert problems == []


def test_the_type_check_refuses_arnlike_on_a_string_key() -> None:
    """The check itself catches the defect it is for (and passes what AWS's examples write)."""
    assert key_type("kms:EncryptionContext:SecretARN", ["kms:Decrypt"]) == "string"
    assert "string" not in OPERATOR_TYPES[operator_family("ArnLike")]
    assert "string" in OPERATOR_TYPES[operator_family("StringLike")]
    assert key_type("aws:TagKeys", ["acm:AddTagsToCertificate"]) == "string"  # ArrayOfString's elements
    assert operator_family("ForAllValues:StringEquals") == "String"


def test_doctors_crl_refresh_actions_exist_and_the_readme_lists_them() -> None:
    """The actions ``doctor``'s CRL refresh check calls are IAM actions, and the README's doctor row
    names each, so an operator's read-only role can be written from it."""
    from rotation.cli.crl_refresh_checks import ACTIONS

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    (row,) = [line for line in readme.splitlines() if line.startswith("| `certrotate doctor ")]
    for action in ACTIONS:
        assert condition_keys_of(action) is not None, f"{action} is not an IAM action"
        assert f"`{action}`" in row, f"README's doctor row does not name {action}"
    assert condition_keys_of("ec2:DescribeTagz") is None  # the database refuses what is not an action
