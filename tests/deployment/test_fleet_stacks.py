"""Both account templates deployed into moto's CloudFormation, in two accounts.

moto creates the functions, roles, queue, key, topic, bus and rules and evaluates every condition;
it skips (with a warning) AWS::SSM::Association, AWS::CloudWatch::Alarm, AWS::ACMPCA::Permission,
AWS::Events::EventBusPolicy and the queue/topic policies, whose declarations test_templates.py
checks. moto's EventBridge cannot invoke a Lambda target and rewrites ``account`` on bus-to-bus
delivery, so that delivery is not executed here: the rules' patterns are matched against the AWS
sample events in test_templates.py, and what each rule would deliver to is read back from moto.
The notice rules, whose targets are the topic, are put through a moto bus with an SQS queue in the
topic's place.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.cloudformation.models import cloudformation_backends

from rotation.build.templates import OUTPUT
from tests.support.templates import load_template

ROOT_EVENTS = OUTPUT.parent / "tests" / "fixtures" / "aws_events"

CENTRAL = "123456789012"
WORKLOAD = "222233334444"
OTHER = "555566667777"
REGION = "us-east-1"
SAME_ACCOUNT_CA = f"arn:aws:acm-pca:{REGION}:{CENTRAL}:certificate-authority/11111111-1111-4111-8111-111111111111"
SHARED_CA = f"arn:aws:acm-pca:{REGION}:{OTHER}:certificate-authority/22222222-2222-4222-8222-222222222222"
# moto warns about each resource type it skips (listed in the module docstring).
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")
WORKLOAD_BUSES = [
    f"arn:aws:events:{REGION}:{WORKLOAD}:event-bus/certrotate",
    f"arn:aws:events:{REGION}:{OTHER}:event-bus/certrotate",
]


@pytest.fixture
def moto_accounts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with mock_aws():
        yield


def in_account(monkeypatch: pytest.MonkeyPatch, account: str) -> None:
    monkeypatch.setenv("MOTO_ACCOUNT_ID", account)


def code_bucket() -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("rotation/__init__.py", "")
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="certrotate-code")
    s3.put_object(Bucket="certrotate-code", Key="lambda.zip", Body=archive.getvalue())


def create(name: str, template: str, parameters: dict[str, str]) -> dict[str, Any]:
    cfn = boto3.client("cloudformation", region_name=REGION)
    cfn.create_stack(
        StackName=name,
        TemplateBody=(OUTPUT / template).read_text(),
        Capabilities=["CAPABILITY_IAM"],
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
    )
    stack: dict[str, Any] = cfn.describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    return stack


def physical_ids(name: str) -> dict[str, str]:
    cfn = boto3.client("cloudformation", region_name=REGION)
    summaries = cfn.list_stack_resources(StackName=name)["StackResourceSummaries"]
    return {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in summaries if r["LogicalResourceId"]}


def conditions(account: str, name: str) -> dict[str, bool]:
    """moto's own evaluation of the stack's conditions (its CloudFormation engine, not ours)."""
    (stack,) = [s for s in cloudformation_backends[account][REGION].stacks.values() if s.name == name]
    return {c: bool(stack.resource_map.lazy_condition_map[c]) for c in stack.template_dict.get("Conditions", {})}


def rule_targets(bus: str = "default") -> dict[str, list[dict[str, Any]]]:
    events = boto3.client("events", region_name=REGION)
    return {
        r["Name"]: events.list_targets_by_rule(Rule=r["Name"], EventBusName=bus)["Targets"]
        for r in events.list_rules(EventBusName=bus)["Rules"]
    }


def central_parameters(**changes: str) -> dict[str, str]:
    return {
        "CodeS3Bucket": "certrotate-code",
        "CodeS3Key": "lambda.zip",
        "CertificateAuthorityArns": f"{SAME_ACCOUNT_CA},{SHARED_CA}",
        "WorkloadEventBusArns": ",".join(WORKLOAD_BUSES),
        **changes,
    }


def test_the_central_stack_forwards_to_each_listed_bus_with_a_role_retries_and_a_dead_letter_queue(
    moto_accounts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_account(monkeypatch, CENTRAL)
    code_bucket()
    stack = create("certrotate", "central-account.yaml", central_parameters())
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    ids = physical_ids("certrotate")
    queue_arn = boto3.client("sqs", region_name=REGION).get_queue_attributes(
        QueueUrl=outputs["DeadLetterQueueUrl"], AttributeNames=["QueueArn", "SqsManagedSseEnabled"]
    )["Attributes"]
    assert queue_arn["SqsManagedSseEnabled"] == "true"
    forward_role = boto3.client("iam").get_role(RoleName=ids["ForwardRotationRole"])["Role"]["Arn"]

    found = rule_targets()
    assert len(found) == 7  # ACM notices and available, rotation succeeded and failures, served expiry, 2 forwards
    forwarded = []
    for rule, targets in found.items():
        (target,) = targets
        assert target["RetryPolicy"] == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}, rule
        assert target["DeadLetterConfig"] == {"Arn": queue_arn["QueueArn"]}, rule
        if ":event-bus/" in target["Arn"]:
            assert target["RoleArn"] == forward_role
            forwarded.append(target["Arn"])
    assert sorted(forwarded) == sorted(WORKLOAD_BUSES)
    assert {"ForwardRotation1", "ForwardRotation2"} <= set(ids) and "ForwardRotation3" not in ids

    lam = boto3.client("lambda", region_name=REGION)
    converge = lam.get_function_configuration(FunctionName=ids["ConvergeFunction"])
    variables = converge["Environment"]["Variables"]
    assert variables["ROTATION_FUNCTION_ARN"] == outputs["RotationFunctionArn"]  # what the IAM condition names
    assert variables["EXPECTED_ACCOUNT"] == CENTRAL
    assert variables["ASSOCIATION_SCHEDULE"] == "rate(30 minutes)"

    evaluated = conditions(CENTRAL, "certrotate")
    # ACM may use the CA in this account for managed renewal; the other account's CA is its owner's to share.
    assert evaluated["CertificateAuthorityPermission1"] is True
    assert evaluated["CertificateAuthorityPermission2"] is False
    assert evaluated["CertificateAuthorityPermission3"] is False
    assert evaluated["ForwardRotation2"] is True and evaluated["ForwardRotation3"] is False
    assert evaluated["HasOrganization"] is False


def test_without_workload_buses_nothing_is_forwarded_and_no_forwarding_role_exists(
    moto_accounts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_account(monkeypatch, CENTRAL)
    code_bucket()
    create("certrotate", "central-account.yaml", central_parameters(WorkloadEventBusArns=""))
    ids = physical_ids("certrotate")
    assert not any(i.startswith("ForwardRotation") for i in ids)
    assert not any(":event-bus/" in t["Arn"] for targets in rule_targets().values() for t in targets)


def test_more_than_twenty_workload_buses_are_refused_not_dropped(
    moto_accounts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twenty rules are declared; a 21st bus would otherwise be silently ignored."""
    import re

    pattern = re.compile(
        load_template(OUTPUT / "central-account.yaml")["Parameters"]["WorkloadEventBusArns"]["AllowedPattern"]
    )
    buses = [f"arn:aws:events:{REGION}:{n:012d}:event-bus/certrotate" for n in range(1, 22)]
    assert pattern.fullmatch(",".join(buses[:20]))
    assert not pattern.fullmatch(",".join(buses))
    assert not pattern.fullmatch(f"{buses[0]}, {buses[1]}")  # a space would make an invalid ARN


def test_the_workload_stack_admits_rotations_on_its_own_bus_and_converges_through_its_function(
    moto_accounts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_account(monkeypatch, WORKLOAD)
    code_bucket()
    pattern = f"arn:aws:secretsmanager:{REGION}:{CENTRAL}:secret:certs/*"
    stack = create(
        "StackSet-certrotate-workload-0123abcd",  # how a StackSet names its stacks
        "workload-account.yaml",
        {
            "CentralAccountId": CENTRAL,
            "CentralSecretArnPattern": pattern,
            "CentralKeyArn": f"arn:aws:kms:{REGION}:{CENTRAL}:key/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
            "CodeS3Bucket": "certrotate-code",
            "CodeS3Key": "lambda.zip",
        },
    )
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    # A fixed name, so the central stack can list every account's bus without reading each stack.
    assert outputs["EventBusArn"] == f"arn:aws:events:{REGION}:{WORKLOAD}:event-bus/certrotate"
    assert outputs["ApacheServerInstanceRole"].startswith(f"arn:aws:iam::{WORKLOAD}:role/certrotate/")
    assert rule_targets("default") == {}  # the default bus is left alone
    ((_rule, (target,)),) = rule_targets("certrotate").items()
    converge = boto3.client("lambda", region_name=REGION).get_function_configuration(
        FunctionName=physical_ids("StackSet-certrotate-workload-0123abcd")["ConvergeFunction"]
    )
    assert target["Arn"] == converge["FunctionArn"]
    assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] == 86400 and "DeadLetterConfig" in target
    variables = converge["Environment"]["Variables"]
    assert variables["EXPECTED_ACCOUNT"] == CENTRAL and variables["SECRET_ARN_PATTERN"] == pattern
    assert variables["ROTATION_FUNCTION_ARN"] == ""


NOTICES = {
    "AcmNoticeRule": [
        "acm-certificate-approaching-expiration",
        "acm-certificate-expired",
        "acm-certificate-renewal-action-required",
    ],
    "RotationFailureRule": ["secretsmanager-rotation-failed", "secretsmanager-rotation-abandoned"],
}
SAMPLES = [
    *NOTICES["AcmNoticeRule"],
    *NOTICES["RotationFailureRule"],
    "acm-certificate-available",
    "secretsmanager-rotation-succeeded",
]


@pytest.mark.parametrize("rule", sorted(NOTICES))
def test_the_notice_rules_deliver_a_message_naming_what_the_event_is_about(
    rule: str, moto_accounts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The template's pattern and input transformer on a moto bus, the topic swapped for an SQS queue
    (moto's EventBridge delivers to SQS, not SNS): every AWS sample event is put, and each message
    that arrives must name the event's kind and its certificate or secret, with no path left empty."""
    import json

    in_account(monkeypatch, CENTRAL)
    declared = load_template(OUTPUT / "central-account.yaml")["Resources"][rule]["Properties"]
    (target,) = declared["Targets"]
    events = boto3.client("events", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName="notices")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=rule, EventPattern=json.dumps(declared["EventPattern"]))
    events.put_targets(
        Rule=rule, Targets=[{"Id": "notify", "Arn": queue_arn, "InputTransformer": target["InputTransformer"]}]
    )
    for name in SAMPLES:
        event = json.loads((ROOT_EVENTS / f"{name}.json").read_text())
        entry = {
            "Source": event["source"],
            "DetailType": event["detail-type"],
            "Detail": json.dumps(event["detail"]),
            "Resources": event["resources"],
        }
        assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0
        received = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0).get("Messages", [])
        if name not in NOTICES[rule]:
            assert received == [], name
            continue
        (message,) = received
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        text = json.loads(message["Body"])
        assert text.startswith("certrotate: "), text
        if rule == "AcmNoticeRule":
            assert event["detail-type"] in text and event["resources"][0] in text
            assert event["detail"]["CommonName"] in text
        else:
            assert event["detail"]["eventName"] in text
            assert event["detail"]["additionalEventData"]["SecretId"] in text
        assert "<" not in text and "()" not in text and " for  " not in text
