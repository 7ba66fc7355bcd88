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
from tests.support.templates import load_template

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "tests" / "fixtures" / "aws_events"
TEMPLATES = sorted(OUTPUT.glob("*.yaml"))


def load(name: str) -> dict[str, Any]:
    return load_template(OUTPUT / name)


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return loaded


def statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every identity-policy statement of every IAM role, with its role's logical id (a statement
    written as ``Fn::If`` counts as its branches, ``AWS::NoValue`` dropped)."""
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::IAM::Role":
            for policy in resource["Properties"].get("Policies", []):
                for statement in policy["PolicyDocument"]["Statement"]:
                    branches = statement["Fn::If"][1:] if "Fn::If" in statement else [statement]
                    for branch in branches:
                        if branch != {"Ref": "AWS::NoValue"}:
                            yield logical_id, branch


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.mark.slow
def test_templates_are_committed_as_rendered() -> None:
    assert TEMPLATES, "no templates in cfn/"
    for source in sorted(SOURCES.glob("*.yaml")):
        assert (OUTPUT / source.name).read_text() == render_template(source), "run python -m rotation.build.templates"


@pytest.mark.slow
def test_cfn_lint_reports_nothing() -> None:
    require(None if shutil.which("cfn-lint") else "cfn-lint is not installed (pip install cfn-lint)")
    result = subprocess.run(["cfn-lint", *map(str, TEMPLATES)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", [t.name for t in TEMPLATES])
def test_no_wildcard_resource_on_private_ca_or_secrets_manager(name: str) -> None:
    """Except, alone in its statement, an action the IAM database gives no resource type at all
    (ListSecrets: its resource ARN format is "*"), which can be granted no other way."""
    from policy_sentry.querying.actions import get_action_data

    checked = 0
    for role, statement in statements(load(name)):
        actions = as_list(statement["Action"])
        if any(a.startswith(("acm-pca:", "secretsmanager:")) for a in actions):
            checked += 1
            if len(actions) == 1:
                service, action = actions[0].split(":")
                if [d["resource_arn_format"] for d in get_action_data(service, action)[service]] == ["*"]:
                    continue
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
    (workload,) = [
        s for s in key["KeyPolicy"]["Statement"] if s.get("Sid") == "WorkloadRolesDecryptViaSecretsManagerOnly"
    ]
    assert set(workload["Action"]) == {"kms:Decrypt", "kms:DescribeKey"}
    assert workload["Condition"]["StringEquals"]["kms:ViaService"] == {
        "Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"
    }
    assert key["EnableKeyRotation"] is True
    workload_role = load("workload-account.yaml")["Resources"]["InstanceRole"]["Properties"]
    assert workload_role["Path"] == "/certrotate/"  # what the SecretReaders statements admit
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
    assert function["Runtime"] == "python3.12"


@pytest.mark.parametrize("name", [t.name for t in TEMPLATES])
def test_every_function_runs_on_the_architecture_parameter(name: str) -> None:
    """`certrotate package` builds arm64 and x86_64; the stack must run the one it was given."""
    template = load(name)
    assert template["Parameters"]["Architecture"]["Default"] == "arm64"
    assert set(template["Parameters"]["Architecture"]["AllowedValues"]) == {"arm64", "x86_64"}
    functions = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    assert functions
    for function in functions:
        assert function["Properties"]["Architectures"] == [{"Ref": "Architecture"}]


@pytest.mark.parametrize("name", [t.name for t in TEMPLATES])
def test_embedded_documents_equal_the_files(name: str) -> None:
    contents = document_contents()
    documents = {
        r["Properties"]["Name"]: r["Properties"]["Content"]
        for r in load(name)["Resources"].values()
        if r["Type"] == "AWS::SSM::Document"
    }
    assert set(documents) == {"RunUpdateTLS", "RollbackTLS", "InstallTrustBundle", "InstallCRL"}
    for document_name, content in documents.items():
        on_disk = yaml.safe_load((ROOT / "ssm_documents" / f"{document_name}.yaml").read_text())
        assert content == on_disk == contents[document_name]


def rule_pattern(template: str, rule: str, **resolved: Any) -> EventPattern:
    from tests.deployment.test_fleet_trust_templates import Stack

    loaded = load(template)
    raw = Stack(loaded, {}).resolve(loaded["Resources"][rule]["Properties"]["EventPattern"])  # default parameters
    raw.update(resolved)  # parameters resolved as CloudFormation would
    return EventPattern.load(json.dumps(raw))


ACM_NOTICES = [
    "acm-certificate-approaching-expiration",
    "acm-certificate-expired",
    "acm-certificate-renewal-action-required",
]
ROTATION_FAILURES = ["secretsmanager-rotation-failed", "secretsmanager-rotation-abandoned"]
ALL_SAMPLES = [*ACM_NOTICES, *ROTATION_FAILURES, "acm-certificate-available", "secretsmanager-rotation-succeeded"]


@pytest.mark.parametrize(
    ("rule", "matching"),
    [
        ("AcmNoticeRule", ACM_NOTICES),
        ("AcmCertificateAvailableRule", ["acm-certificate-available"]),
        ("RotationSucceededRule", ["secretsmanager-rotation-succeeded"]),
        ("ForwardRotation1", ["secretsmanager-rotation-succeeded"]),
        ("ForwardRotation20", ["secretsmanager-rotation-succeeded"]),
        ("RotationFailureRule", ROTATION_FAILURES),
    ],
)
def test_event_patterns_match_the_documented_events_and_nothing_else(rule: str, matching: list[str]) -> None:
    pattern = rule_pattern("central-account.yaml", rule)
    for name in ALL_SAMPLES:
        assert pattern.matches_event(sample(name)) is (name in matching), f"{rule} vs {name}"


def test_the_workload_rule_matches_only_the_central_accounts_rotations() -> None:
    """The central account's rule delivers Secrets Manager's own event bus to bus: source stays
    aws.secretsmanager (which no account can put) and account stays the central account."""
    pattern = rule_pattern("workload-account.yaml", "RotationSucceededRule", account=["123456789012"])
    assert load("workload-account.yaml")["Resources"]["RotationSucceededRule"]["Properties"]["EventPattern"][
        "account"
    ] == [{"Ref": "CentralAccountId"}]
    for name in ALL_SAMPLES:
        assert pattern.matches_event(sample(name)) is (name == "secretsmanager-rotation-succeeded"), name
    assert not pattern.matches_event({**sample("secretsmanager-rotation-succeeded"), "account": "999988887777"})
    forged = {**sample("secretsmanager-rotation-succeeded"), "source": "certrotate"}  # the old relay's source
    assert not pattern.matches_event(forged)


def targets(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Events::Rule":
            for target in resource["Properties"]["Targets"]:
                yield logical_id, target


@pytest.mark.parametrize("name", [t.name for t in TEMPLATES])
def test_every_rule_target_retries_for_a_day_then_dead_letters(name: str) -> None:
    found = list(targets(load(name)))
    assert found
    for rule, target in found:
        assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185}, rule
        assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}}, rule


def skipped_checks(resource: dict[str, Any]) -> dict[str, str]:
    skips = (resource.get("Metadata") or {}).get("checkov", {}).get("skip", [])
    return {s["id"]: s["comment"] for s in skips}


@pytest.mark.parametrize("name", [t.name for t in TEMPLATES])
def test_every_asynchronously_invoked_function_has_a_dead_letter_queue(name: str) -> None:
    """EventBridge invokes functions asynchronously: after Lambda's own retries a failed event goes to
    the queue (alarmed) instead of nowhere. Secrets Manager waits for the rotation function instead,
    and the skip says so."""
    resources = load(name)["Resources"]
    invoked_by_events = {
        r["Properties"]["FunctionName"]["Ref"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Permission" and r["Properties"]["Principal"] == "events.amazonaws.com"
    }
    assert invoked_by_events
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        dead_letter = resource["Properties"].get("DeadLetterConfig")
        if logical_id in invoked_by_events:
            assert dead_letter == {"TargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}}, logical_id
        else:
            assert "Secrets Manager" in skipped_checks(resource)["CKV_AWS_116"], logical_id


@pytest.mark.parametrize("name", [t.name for t in TEMPLATES])
def test_dead_letters_are_encrypted_admitted_from_this_accounts_rules_only_and_alarmed(name: str) -> None:
    resources = load(name)["Resources"]
    assert resources["DeadLetterQueue"]["Properties"]["SqsManagedSseEnabled"] is True
    (statement,) = resources["DeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"} and statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    alarm = resources["DeadLetterAlarm"]["Properties"]
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}}]
    assert alarm["AlarmActions"] == [{"Ref": "NotificationTopic"}] and alarm["Threshold"] == 1


@pytest.mark.parametrize("name", [t.name for t in TEMPLATES])
def test_the_topic_is_under_a_customer_managed_key_that_admits_eventbridge_alarms_and_the_account_only(
    name: str,
) -> None:
    """EventBridge cannot publish to a topic under alias/aws/sns (its policy cannot be changed)."""
    resources = load(name)["Resources"]
    assert resources["NotificationTopic"]["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": ["NotificationKey", "Arn"]}
    key = resources["NotificationKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    principals: set[str] = set()
    for statement in key["KeyPolicy"]["Statement"]:
        assert statement["Effect"] == "Allow"
        for kind, value in statement["Principal"].items():
            for principal in as_list(value):
                principals.add(json.dumps(principal) if kind == "AWS" else principal)
        if "Service" in statement["Principal"]:
            assert set(statement["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey"}
    root = json.dumps({"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"})
    assert principals == {root, "events.amazonaws.com", "cloudwatch.amazonaws.com"}
    for statement in resources["NotificationTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]:
        assert statement["Action"] == "sns:Publish"
        assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


def all_policy_statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Identity statements of roles and role policies, and resource statements (key, bus, queue, topic)."""
    yield from statements(template)
    for logical_id, resource in template["Resources"].items():
        properties = resource["Properties"]
        if resource["Type"] == "AWS::IAM::RolePolicy":
            for statement in properties["PolicyDocument"]["Statement"]:
                yield logical_id, statement
        elif resource["Type"] == "AWS::Events::EventBusPolicy":
            yield logical_id, properties["Statement"]


@pytest.mark.parametrize("name", [t.name for t in TEMPLATES])
def test_no_one_may_put_events_on_any_bus_but_the_listed_ones(name: str) -> None:
    checked = 0
    for logical_id, statement in all_policy_statements(load(name)):
        if "events:PutEvents" in as_list(statement["Action"]):
            checked += 1
            resources = json.dumps(statement["Resource"])
            assert "*" not in resources, (logical_id, resources)
    assert checked == 1


def test_the_forwarding_role_puts_only_on_the_listed_buses_and_only_eventbridge_of_this_account_assumes_it() -> None:
    role = load("central-account.yaml")["Resources"]["ForwardRotationRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    (statement,) = role["Policies"][0]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "events:PutEvents"
    assert statement["Resource"] == {"Fn::Split": [",", {"Ref": "WorkloadEventBusArns"}]}


def test_the_workload_bus_admits_the_central_accounts_secrets_manager_events_only() -> None:
    resources = load("workload-account.yaml")["Resources"]
    policy = resources["CentralAccountMayPutRotationEvents"]["Properties"]
    assert policy["EventBusName"] == {"Fn::GetAtt": ["CertificateEventBus", "Name"]}  # not the default bus
    statement = policy["Statement"]
    assert statement["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${CentralAccountId}:root"}}
    assert statement["Action"] == "events:PutEvents"
    assert statement["Resource"] == {"Fn::GetAtt": ["CertificateEventBus", "Arn"]}
    # Written as AWS's example bus policy writes them (EventBridge User Guide, "Send events to a custom
    # bus in a different account"): events:source is multi-valued, one value per PutEvents entry.
    assert statement["Condition"] == {
        "ForAllValues:StringEquals": {"events:source": ["aws.secretsmanager"]},
        "StringEquals": {"events:detail-type": "AWS Service Event via CloudTrail"},
    }
    rules = [r for r in resources.values() if r["Type"] == "AWS::Events::Rule"]
    assert [r["Properties"]["EventBusName"] for r in rules] == [{"Fn::GetAtt": ["CertificateEventBus", "Name"]}]


@pytest.mark.parametrize("name", [t.name for t in TEMPLATES])
def test_no_function_pushes_commands_or_relays_events(name: str) -> None:
    """Hosts converge through State Manager; the converge role manages associations of the install
    document only, and nothing may SendCommand (which would run any document on any instance)."""
    template = load(name)
    for logical_id, statement in all_policy_statements(template):
        actions = as_list(statement["Action"])
        assert "ssm:SendCommand" not in actions, logical_id
        if logical_id != "ForwardRotationRole":
            assert "events:PutEvents" not in actions or logical_id == "CentralAccountMayPutRotationEvents"
    converge = {s["Sid"]: s for r, s in statements(template) if r == "ConvergeFunctionRole"}
    document = {"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:document/${InstallDocument}"}
    assert document in converge["AssociationsOfTheInstallDocument"]["Resource"]
    assert not any("document/*" in json.dumps(s["Resource"]) for s in converge.values())
    assert set(converge) == {
        "Logs",
        "FindAssociations",
        "AssociationsOfTheInstallDocument",
        "RunThemNow",
        "DeadLetters",
    }
    assert converge["FindAssociations"]["Action"] == "ssm:ListAssociations"  # has no resource-level permission


def test_the_central_converge_function_describes_only_secrets_this_stack_rotates() -> None:
    resources = load("central-account.yaml")["Resources"]
    (statement,) = resources["ConvergeFunctionReadsRotationFunction"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "secretsmanager:DescribeSecret"
    rotation_function = resources["RotationFunction"]["Properties"]["FunctionName"]["Fn::Sub"]
    condition = statement["Condition"]["StringEquals"]["secretsmanager:resource/AllowRotationLambdaArn"]["Fn::Sub"]
    assert condition.endswith(f":function:{rotation_function}")
    variables = resources["ConvergeFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["ROTATION_FUNCTION_ARN"] == {"Fn::Sub": condition}
    workload = load("workload-account.yaml")["Resources"]["ConvergeFunction"]["Properties"]["Environment"]["Variables"]
    assert workload["EXPECTED_ACCOUNT"] == {"Ref": "CentralAccountId"}
    assert workload["SECRET_ARN_PATTERN"] == {"Ref": "CentralSecretArnPattern"}


@pytest.mark.parametrize("name", [t.name for t in TEMPLATES])
def test_convergence_settings_are_parameters_with_state_managers_defaults(name: str) -> None:
    template = load(name)
    assert template["Parameters"]["ConvergenceSchedule"]["Default"] == "rate(30 minutes)"
    variables = template["Resources"]["ConvergeFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["ASSOCIATION_SCHEDULE"] == {"Ref": "ConvergenceSchedule"}
    assert variables["ASSOCIATION_MAX_CONCURRENCY"] == {"Ref": "ConvergenceMaxConcurrency"}
    assert variables["ASSOCIATION_MAX_ERRORS"] == {"Ref": "ConvergenceMaxErrors"}
    # issue 16 item 9: no reservation (a new account's reduced quota refuses it); see test_fleet_trust_templates
    assert "ReservedConcurrentExecutions" not in template["Resources"]["ConvergeFunction"]["Properties"]
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::SSM::Association" and logical_id != "CrlRefreshAssociation":
            properties = resource["Properties"]  # the certificate associations (the CRL's: test_crl_refresh_template)
            assert properties["ApplyOnlyAtCronInterval"] is False, logical_id  # new instances run at once
            assert properties["ScheduleExpression"] == {"Ref": "ConvergenceSchedule"}
            assert properties["Targets"][0]["Key"] == "tag:certrotate:secret"
            assert properties["ComplianceSeverity"] == "HIGH" and properties["SyncCompliance"] == "AUTO"


def emitted_metrics(capfd: pytest.CaptureFixture[str]) -> dict[str, tuple[str, set[str]]]:
    """Metric name -> (namespace, dimension names), from the EMF records telemetry.py prints."""
    from datetime import UTC, datetime, timedelta

    from rotation import telemetry

    now = datetime.now(UTC)
    capfd.readouterr()
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:team/web-AbCdEf"
    telemetry.certificate_issued("PCA_ISSUED", arn, now + timedelta(days=3), now)
    telemetry.served_expiry("team/web", 3.0)
    telemetry.step_failed("createSecret", "PCA_ISSUED")
    metrics: dict[str, tuple[str, set[str]]] = {}
    for line in capfd.readouterr().out.splitlines():
        record = json.loads(line)
        for directive in record["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                metrics[metric["Name"]] = (directive["Namespace"], set(directive["Dimensions"][0]))
    return metrics


@pytest.mark.parametrize(
    ("alarm", "metric"),
    [
        ("RotationStepFailuresAlarm", "RotationStepFailures"),
        ("DaysToExpiryAlarm", "DaysToExpiry"),
        ("ServedDaysToExpiryAlarm", "ServedDaysToExpiry"),
    ],
)
def test_alarms_query_the_metrics_as_telemetry_emits_them(
    alarm: str, metric: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """A Metrics Insights SCHEMA matches only metrics with exactly these dimension names, so an alarm
    that named one dimension too few or too many would watch nothing and never fire."""
    import re

    namespace, dimensions = emitted_metrics(capfd)[metric]
    properties = load("central-account.yaml")["Resources"][alarm]["Properties"]
    (query,) = properties["Metrics"]
    match = re.fullmatch(
        r"SELECT (SUM|MIN)\((\w+)\) FROM SCHEMA\(([^)]*)\)( GROUP BY (\w+) ORDER BY \1\(\) (ASC|DESC))?",
        query["Expression"],
    )
    assert match and match[2] == metric
    schema = [part.strip() for part in match[3].split(",")]
    assert schema[0] == namespace and set(schema[1:]) == dimensions
    # issue 16 item 8: the expiry alarms have one contributor per secret (a multi-time-series
    # Metrics Insights alarm needs GROUP BY and ORDER BY), so one secret neither raises nor masks another
    if "Expiry" in metric:
        assert match[5] == "SecretName" and "SecretName" in dimensions
    assert properties["AlarmActions"] == [{"Ref": "NotificationTopic"}]
    assert properties["TreatMissingData"] == "notBreaching"


def test_both_example_secrets_get_the_resource_policy_the_readme_promises() -> None:
    resources = load("central-account.yaml")["Resources"]
    for secret in ("ExamplePcaSecret", "ExampleAcmSecret"):
        (policy,) = [
            r["Properties"]
            for r in resources.values()
            if r["Type"] == "AWS::SecretsManager::ResourcePolicy" and r["Properties"]["SecretId"] == {"Ref": secret}
        ]
        assert policy["BlockPublicPolicy"] is True
        text = json.dumps(policy["ResourcePolicy"])
        assert "WorkloadInstanceRoleArns" in text and "aws:PrincipalOrgID" in text


def test_demo_instance_decrypts_only_the_certificate_key_via_secrets_manager() -> None:
    for name, key in (
        ("central-account.yaml", {"Fn::GetAtt": ["CertificateKey", "Arn"]}),
        ("workload-account.yaml", {"Ref": "CentralKeyArn"}),
    ):
        (decrypt,) = [s for r, s in statements(load(name)) if r == "DemoInstanceRole" and s["Action"] == "kms:Decrypt"]
        assert decrypt["Resource"] == key
        assert decrypt["Condition"]["StringLike"]["kms:ViaService"] == "secretsmanager.*.amazonaws.com"


def test_acm_may_use_a_private_ca_of_this_account_for_managed_renewal() -> None:
    resources = load("central-account.yaml")["Resources"]
    permissions = [r for r in resources.values() if r["Type"] == "AWS::ACMPCA::Permission"]
    assert len(permissions) == 5
    for permission in permissions:
        properties = permission["Properties"]
        assert properties["Principal"] == "acm.amazonaws.com"
        assert properties["SourceAccount"] == {"Ref": "AWS::AccountId"}
        assert set(properties["Actions"]) == {"IssueCertificate", "GetCertificate", "ListPermissions"}


DIRECT_UPLOAD_LIMIT = 51_200  # bytes; CloudFormation's TemplateBody limit


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Deploying (CloudFormation)", 1)[1].split("\n## ", 1)[0]
    blocks = section.split("```sh")[1:]
    commands = " ".join(b.split("```", 1)[0] for b in blocks).replace("\\\n", " ")
    return [c.strip() for c in commands.splitlines() if c.strip() and not c.strip().startswith("#")]


@pytest.mark.parametrize("name", [t.name for t in TEMPLATES])
def test_the_readme_uploads_a_template_through_s3_when_it_is_over_the_direct_upload_limit(name: str) -> None:
    """`aws cloudformation deploy --template-file` refuses a template over 51,200 bytes unless it
    may upload it with --s3-bucket; create-stack-set needs --template-url the same way."""
    size = (OUTPUT / name).stat().st_size
    commands = [c for c in readme_commands() if f"cfn/{name}" in c or name in c]
    assert commands, f"the README never deploys {name}"
    for command in commands:
        if "cloudformation deploy" in command and size > DIRECT_UPLOAD_LIMIT:
            assert "--s3-bucket" in command, f"{name} is {size} bytes: {command}"
        assert "--template-body" not in command or size <= DIRECT_UPLOAD_LIMIT, command


def test_the_issuance_pacer_rates_are_parameters_under_the_quotas_and_the_role_may_book_slots() -> None:
    """Issue 18: the rotation function paces its issuing calls on the ledger table at the stack's rates."""
    from rotation.issuance.pacer import ACM_RATE_ENV, DEFAULT_ACM_RATE, DEFAULT_PCA_RATE, PCA_RATE_ENV

    template = load("central-account.yaml")
    parameters = template["Parameters"]
    assert float(parameters["PrivateCaIssueRate"]["Default"]) == DEFAULT_PCA_RATE < 25  # IssueCertificate 25/s
    assert float(parameters["AcmIssueRate"]["Default"]) == DEFAULT_ACM_RATE < 5  # RequestCertificate 5/s
    assert parameters["PrivateCaIssueRate"]["MinValue"] == parameters["AcmIssueRate"]["MinValue"] == 0
    variables = template["Resources"]["RotationFunction"]["Properties"]["Environment"]["Variables"]
    assert variables[PCA_RATE_ENV] == {"Ref": "PrivateCaIssueRate"}
    assert variables[ACM_RATE_ENV] == {"Ref": "AcmIssueRate"}
    assert variables["CERTROTATE_LEDGER_TABLE"] == {"Ref": "IssuanceLedgerTable"}  # the pacer's table
    ledger_policy = template["Resources"]["RotationLedgerPolicy"]["Properties"]
    assert ledger_policy["Roles"] == [{"Ref": "RotationFunctionRole"}]
    granted = [
        s
        for s in ledger_policy["PolicyDocument"]["Statement"]
        if "dynamodb:UpdateItem" in s["Action"] and s["Resource"] == {"Fn::GetAtt": ["IssuanceLedgerTable", "Arn"]}
    ]
    assert granted and all(s["Effect"] == "Allow" for s in granted)
