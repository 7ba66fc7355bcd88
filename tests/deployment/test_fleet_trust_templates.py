"""Issue 16's template items, read from the rendered templates: who may read a certificate secret
(key policy and secret policies, resolved for given parameters and evaluated against requests),
what survives the stack's deletion, the convergence settings' patterns, the converge function's
concurrency, the revocation alarms and the fleet scope given to the rotation function.

The resolver below evaluates the intrinsic functions these templates use (Ref, Fn::If, Fn::Equals,
Fn::Not, Fn::And, Fn::Or, Fn::Select, Fn::Split, Fn::Join, Fn::Sub, Fn::GetAtt) for one set of
parameter values, the way CloudFormation does; the evaluator applies IAM's StringEquals, StringLike
and ArnLike (wildcards * and ?) to one request context. No stub: the policies are the rendered ones.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

import botocore.session
import pytest
import yaml

from rotation.build.templates import OUTPUT
from tests.support.templates import SafeLoader

CENTRAL = "123456789012"
REGION = "us-east-1"
NO_VALUE = object()


class Loader(SafeLoader):
    pass


def load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load((OUTPUT / name).read_text(), Loader=Loader)
    return loaded


class Stack:
    """One template resolved for one set of parameter values."""

    def __init__(self, template: dict[str, Any], parameters: dict[str, str]) -> None:
        self.template = template
        self.values: dict[str, Any] = {
            "AWS::AccountId": CENTRAL,
            "AWS::Region": REGION,
            "AWS::Partition": "aws",
            "AWS::StackName": "certrotate",
        }
        for name, declared in template["Parameters"].items():
            value = parameters.get(name, declared.get("Default", ""))
            self.values[name] = value.split(",") if declared["Type"] == "CommaDelimitedList" else value
        self.conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            self.conditions[name] = bool(self.resolve(self.template["Conditions"][name]))
        return self.conditions[name]

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.resolve(item) for item in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return NO_VALUE if arg == "AWS::NoValue" else self.values.get(arg, f"<{arg}>")
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::If":
                return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])
            if key == "Fn::Equals":
                left, right = self.resolve(arg)
                return left == right
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(arg))
            if key == "Fn::Or":
                return any(self.resolve(arg))
            if key == "Fn::Select":
                index, items = self.resolve(arg)
                return items[int(index)]
            if key == "Fn::Split":
                sep, text = self.resolve(arg)
                return str(text).split(sep)
            if key == "Fn::Join":
                sep, items = self.resolve(arg)
                return sep.join(str(i) for i in items)
            if key == "Fn::GetAtt":
                return f"<{arg[0]}.{arg[1]}>"
            if key == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))
                names = {**self.values, **extra}
                return re.sub(r"\$\{([^}]+)\}", lambda m: str(names.get(m[1], f"<{m[1]}>")), text)
        return {k: r for k, r in ((k, self.resolve(v)) for k, v in node.items()) if r is not NO_VALUE}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def matches(operator: str, pattern: Any, actual: str | None) -> bool:
    if actual is None:
        return False
    patterns = [str(p) for p in as_list(pattern)]
    if operator == "StringEquals":
        return actual in patterns
    return any(fnmatch.fnmatchcase(actual, p) for p in patterns)  # StringLike, ArnLike


def allowed(statements: list[dict[str, Any]], action: str, context: dict[str, str]) -> bool:
    """Whether any Allow statement for a principal "*" or the caller's account grants ``action``."""
    for statement in statements:
        if statement.get("Effect") != "Allow" or action not in as_list(statement["Action"]):
            continue
        principals = as_list((statement.get("Principal") or {}).get("AWS", []))
        caller = context["aws:PrincipalArn"]
        account_root = f"arn:aws:iam::{context['aws:PrincipalAccount']}:root"
        if not ("*" in principals or caller in principals or account_root in principals):
            continue
        conditions = statement.get("Condition", {})
        if all(
            matches(operator, pattern, context.get(key))
            for operator, block in conditions.items()
            for key, pattern in block.items()
        ):
            return True
    return False


def secret_arn(name: str) -> str:
    return f"arn:aws:secretsmanager:{REGION}:{CENTRAL}:secret:{name}-AbCdEf"


def decrypt_context(account: str, role: str, name: str, org: str = "o-abcdefghij") -> dict[str, str]:
    return {
        "aws:PrincipalAccount": account,
        "aws:PrincipalArn": f"arn:aws:iam::{account}:role/{role}",
        "aws:PrincipalOrgID": org,
        "kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com",
        "kms:EncryptionContext:SecretARN": secret_arn(name),
        "secretsmanager:SecretId": secret_arn(name),
    }


READERS = {"SecretReaders": "111111111111:web/,222222222222:certs/"}
ORGANIZATION = {"WorkloadOrganizationId": "o-abcdefghij"}


@pytest.mark.parametrize("parameters", [READERS, {**READERS, **ORGANIZATION}], ids=["readers", "readers+org"])
@pytest.mark.parametrize(
    ("account", "role", "name", "expected"),
    [
        ("111111111111", "certrotate/InstanceRole", "web/front", True),
        ("111111111111", "certrotate/InstanceRole", "db/main", False),  # not its prefix
        ("111111111111", "Admin", "web/front", False),  # not a /certrotate/ role
        ("333333333333", "certrotate/InstanceRole", "web/front", False),  # an org account not listed
        ("222222222222", "certrotate/InstanceRole", "web/front", False),
        ("222222222222", "certrotate/InstanceRole", "certs/certrotate-example-pca", True),
    ],
)
def test_the_certificate_key_decrypts_a_secret_only_for_the_accounts_and_host_roles_it_is_meant_for(
    parameters: dict[str, str], account: str, role: str, name: str, expected: bool
) -> None:
    """Issue 16 item 4. Before, any role on the path /certrotate/ in any account of the organisation
    (any account admin can make one) decrypted every certificate secret."""
    stack = Stack(load("central-account.yaml"), {"CertificateAuthorityArns": "arn:ca", **parameters})
    policy = stack.resolve(stack.template["Resources"]["CertificateKey"]["Properties"]["KeyPolicy"])
    context = decrypt_context(account, role, name)
    assert allowed(policy["Statement"], "kms:Decrypt", context) is expected
    elsewhere = {**context, "kms:ViaService": "ec2.us-east-1.amazonaws.com"}
    assert allowed(policy["Statement"], "kms:Decrypt", elsewhere) is False  # only via Secrets Manager


def test_an_account_outside_the_organization_is_refused_when_one_is_set() -> None:
    stack = Stack(load("central-account.yaml"), {"CertificateAuthorityArns": "arn:ca", **READERS, **ORGANIZATION})
    policy = stack.resolve(stack.template["Resources"]["CertificateKey"]["Properties"]["KeyPolicy"])
    context = decrypt_context("111111111111", "certrotate/InstanceRole", "web/front", org="o-zzzzzzzzzz")
    assert allowed(policy["Statement"], "kms:Decrypt", context) is False


@pytest.mark.parametrize(
    ("account", "expected"), [("222222222222", True), ("111111111111", False), ("333333333333", False)]
)
def test_the_example_secret_policies_admit_only_their_readers(account: str, expected: bool) -> None:
    """Issue 16 item 4, the secret side: the example secrets' resource policies admit the reader
    accounts whose prefix matches (secretsmanager:SecretId), not every /certrotate/ role of the org."""
    stack = Stack(
        load("central-account.yaml"),
        {"CertificateAuthorityArns": "arn:ca", "CreateExampleSecrets": "true", **READERS, **ORGANIZATION},
    )
    resource = stack.template["Resources"]["ExamplePcaSecretPolicy"]
    assert stack.condition(resource["Condition"])
    policy = stack.resolve(resource["Properties"]["ResourcePolicy"])
    context = decrypt_context(account, "certrotate/InstanceRole", "certs/certrotate-example-pca")
    assert allowed(policy["Statement"], "secretsmanager:GetSecretValue", context) is expected


def test_without_readers_no_other_account_reads_anything() -> None:
    stack = Stack(load("central-account.yaml"), {"CertificateAuthorityArns": "arn:ca", **ORGANIZATION})
    policy = stack.resolve(stack.template["Resources"]["CertificateKey"]["Properties"]["KeyPolicy"])
    for account in ("111111111111", "333333333333"):
        context = decrypt_context(account, "certrotate/InstanceRole", "web/front")
        assert allowed(policy["Statement"], "kms:Decrypt", context) is False


def test_the_key_and_the_ledger_outlive_the_stack() -> None:
    """Issue 16 item 12: deleting or replacing the central stack must not schedule the deletion of
    the key that protects every certificate secret, nor drop the issuance history."""
    resources = load("central-account.yaml")["Resources"]
    for logical_id in ("CertificateKey", "IssuanceLedgerTable"):
        assert resources[logical_id]["DeletionPolicy"] == "Retain", logical_id
        assert resources[logical_id]["UpdateReplacePolicy"] == "Retain", logical_id


@pytest.mark.parametrize("name", ["central-account.yaml", "workload-account.yaml"])
def test_the_converge_function_reserves_no_concurrency(name: str) -> None:
    """Issue 16 item 9: Lambda refuses a reservation that leaves less than the minimum unreserved,
    which a new account's reduced quota does for any reservation: the stack would fail there."""
    assert "ReservedConcurrentExecutions" not in load(name)["Resources"]["ConvergeFunction"]["Properties"]


# State Manager's documented range (Systems Manager User Guide, "Reference: Cron and rate
# expressions for Systems Manager"): 30 minutes to less than 31 days, singular unit for 1.
SCHEDULES = {
    "rate(30 minutes)": True,
    "rate(45 minutes)": True,
    "rate(1 hour)": True,
    "rate(12 hours)": True,
    "rate(743 hours)": True,
    "rate(44639 minutes)": True,
    "rate(1 day)": True,
    "rate(30 days)": True,
    "rate(744 hours)": False,  # issue 24 item 3: 31 days is not less than 31 days
    "rate(31 days)": False,
    "rate(44640 minutes)": False,
    "cron(0 2 ? * SUN *)": True,
    "rate(5 minutes)": False,
    "rate(29 minutes)": False,
    "rate(1 hours)": False,
    "rate(1 days)": False,
    "rate(2 hour)": False,
    "rate(32 days)": False,
    "rate(745 hours)": False,
    "rate(0 days)": False,
}
ERRORS = ["0", "1", "10", "100", "00", "01", "05%", "00%", "0%", "5%", "10%", "99%", "100%", "101%", "1000000", "-1"]
CONCURRENCY = ["1", "25%", "0", "0%", "01", "100%", "9%", "10%", "1000%", "50"]


def ssm_pattern(shape: str) -> tuple[str, int]:
    model = botocore.session.get_session().get_service_model("ssm").shape_for(shape)
    return model.metadata["pattern"], model.metadata["max"]


@pytest.mark.parametrize("name", ["central-account.yaml", "workload-account.yaml"])
def test_convergence_patterns_accept_what_state_manager_accepts_and_nothing_else(name: str) -> None:
    """Issue 16 item 10: the schedule against SSM's documented range; MaxErrors and MaxConcurrency
    against CreateAssociation's own patterns and lengths in botocore's model."""
    parameters = load(name)["Parameters"]
    schedule = re.compile(parameters["ConvergenceSchedule"]["AllowedPattern"])
    assert {value: bool(schedule.match(value)) for value in SCHEDULES} == SCHEDULES
    for parameter, shape, samples in (
        ("ConvergenceMaxErrors", "MaxErrors", ERRORS),
        ("ConvergenceMaxConcurrency", "MaxConcurrency", CONCURRENCY),
    ):
        declared = parameters[parameter]
        pattern, longest = ssm_pattern(shape)
        ours = re.compile(declared["AllowedPattern"])
        for value in samples:
            ssm_accepts = bool(re.match(pattern, value)) and len(value) <= longest
            cfn_accepts = bool(ours.match(value)) and len(value) <= declared.get("MaxLength", 10**6)
            assert cfn_accepts == ssm_accepts, (parameter, value)
        assert bool(ours.match(declared["Default"]))


def test_the_rotation_function_is_told_where_hosts_run_and_who_reads_what() -> None:
    """Issue 16 items 1 and 2: the regions and reader accounts reach the revoker's environment."""
    variables = load("central-account.yaml")["Resources"]["RotationFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["CERTROTATE_FLEET_REGIONS"] == {"Ref": "FleetRegions"}
    assert variables["CERTROTATE_SECRET_READERS"] == {"Ref": "SecretReaders"}


@pytest.mark.parametrize(
    ("alarm", "metric", "threshold"),
    [
        ("RevocationFailuresAlarm", "RevocationFailures", 1),
        ("RevocationHeldAlarm", "RevocationHeldDays", {"Ref": "RevocationHeldAlarmDays"}),
    ],
)
def test_revocation_metrics_are_alarmed_as_telemetry_emits_them(
    alarm: str, metric: str, threshold: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    """Issue 16 item 2: before, no alarm watched any revocation metric. A Metrics Insights SCHEMA
    matches only the exact dimension set, so the query is checked against what telemetry emits."""
    import json

    from rotation import telemetry

    capfd.readouterr()
    telemetry.revocation_failed()
    telemetry.revocation_held(1, 86400)
    emitted = {}
    for line in capfd.readouterr().out.splitlines():
        record = json.loads(line)
        for directive in record["_aws"]["CloudWatchMetrics"]:
            for entry in directive["Metrics"]:
                emitted[entry["Name"]] = (directive["Namespace"], set(directive["Dimensions"][0]))
    namespace, dimensions = emitted[metric]
    properties = load("central-account.yaml")["Resources"][alarm]["Properties"]
    (query,) = properties["Metrics"]
    match = re.fullmatch(r"SELECT (SUM|MAX)\((\w+)\) FROM SCHEMA\(([^)]*)\)", query["Expression"])
    assert match and match[2] == metric
    schema = [part.strip() for part in match[3].split(",")]
    assert schema[0] == namespace and set(schema[1:]) == dimensions
    assert properties["Threshold"] == threshold
    assert properties["AlarmActions"] == [{"Ref": "NotificationTopic"}]


@pytest.mark.parametrize("rule", ["ForwardRotation1", "ForwardRotation20"])
def test_workload_buses_receive_only_the_rotations_of_secrets_a_reader_reads(rule: str) -> None:
    """Issue 16 item 5: before, every workload bus received every secret's rotation events
    (database passwords included). With SecretReaders, a rotation is forwarded only when its secret
    is under a prefix of the bus's own account (issue 25 item 4: not another reader's)."""
    import json

    from moto.events.models import EventPattern

    from tests.deployment.test_templates import sample

    buses = [f"arn:aws:events:{REGION}:111111111111:event-bus/certrotate-{i}" for i in range(20)]
    stack = Stack(
        load("central-account.yaml"),
        {"CertificateAuthorityArns": "arn:ca", "WorkloadEventBusArns": ",".join(buses), **READERS},
    )
    resource = stack.template["Resources"][rule]
    assert stack.condition(resource["Condition"])
    pattern = EventPattern.load(json.dumps(stack.resolve(resource["Properties"]["EventPattern"])))
    event = sample("secretsmanager-rotation-succeeded")

    def rotated(name: str) -> dict[str, Any]:
        detail = {**event["detail"], "additionalEventData": {"SecretId": secret_arn(name)}}
        return {**event, "detail": detail}

    assert pattern.matches_event(rotated("web/front"))
    assert not pattern.matches_event(rotated("certs/certrotate-example-pca"))  # 222222222222's
    assert not pattern.matches_event(rotated("db/password"))
    assert not pattern.matches_event(rotated("prod/web/front"))  # a prefix, not a substring
