"""State Manager associations, which moto 5.2 lacks, as ``rotation.emulation`` adds them.

These tests pin the emulation to the SSM API model and reference (``association_rules`` cites
them): what CreateAssociation refuses and with which code, UpdateAssociation's replace semantics,
ListAssociations' filter and pages, StartAssociationsOnce, and when runs are due on the schedule.
Runs on real hosts are in ``tests/integration/test_state_manager_runs.py`` and ``test_convergence.py``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError
from moto import mock_aws

from rotation.build.ssm_documents import DOCUMENTS_DIR
from rotation.emulation.association_api import state_manager_in_moto
from rotation.emulation.association_rules import Target
from rotation.emulation.state_manager import StateManager
from tests.support.fleet import EmulatedClock

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:certs/web-AbCdEf"
HOST = "i-0aaaaaaaaaaaaaaaa"
BASE: dict[str, Any] = {
    "Name": "RunUpdateTLS",
    "AssociationName": "certrotate-certs_sweb-AbCdEf",
    "Targets": [{"Key": "tag:certrotate:secret", "Values": ["certs/web"]}],
    "Parameters": {"SecretArn": [ARN]},
    "ScheduleExpression": "rate(30 minutes)",
    "MaxConcurrency": "25%",
    "MaxErrors": "10%",
    "ComplianceSeverity": "HIGH",
    "SyncCompliance": "AUTO",
}


@pytest.fixture
def clock() -> EmulatedClock:
    return EmulatedClock()


@pytest.fixture
def emulated(clock: EmulatedClock) -> Iterator[tuple[Any, StateManager]]:
    with mock_aws(), state_manager_in_moto(clock=clock) as service:
        ssm = boto3.client("ssm", region_name="us-east-1")
        ssm.create_document(
            Name="RunUpdateTLS",
            Content=(DOCUMENTS_DIR / "RunUpdateTLS.yaml").read_text(),
            DocumentType="Command",
            DocumentFormat="YAML",
        )
        service.hosts.register(HOST, tags={"certrotate:secret": "certs/web"}, environment={})
        service.hosts.stop(HOST)  # no run reaches a process in these tests
        yield ssm, service


def test_moto_alone_has_no_associations() -> None:
    """Why the emulation exists: without it moto refuses the call."""
    with mock_aws(), pytest.raises(NotImplementedError):
        boto3.client("ssm", region_name="us-east-1").create_association(**BASE)


REFUSED = [
    ({"AssociationName": "ab"}, "ValidationException", "Value 'ab' at 'associationName'"),
    ({"AssociationName": "certrotate/web"}, "ValidationException", "^[a-zA-Z0-9_\\-.]{3,128}$"),
    ({"ScheduleExpression": "rate(29 minutes)"}, "InvalidSchedule", "'rate(29 minutes)'"),
    ({"ScheduleExpression": "rate(31 days)"}, "InvalidSchedule", "less than 31 days"),
    ({"ScheduleExpression": "rate(44640 minutes)"}, "InvalidSchedule", "'rate(44640 minutes)'"),
    ({"ScheduleExpression": "rate(1 hours)"}, "InvalidSchedule", "singular"),
    ({"ScheduleExpression": "cron(0 2 * *)"}, "InvalidSchedule", "6 fields"),
    ({"ApplyOnlyAtCronInterval": True}, "InvalidSchedule", "not supported for rate expressions"),
    ({"MaxConcurrency": "0"}, "ValidationException", "Value '0' at 'maxConcurrency'"),
    ({"MaxConcurrency": "101%"}, "ValidationException", "'101%' at 'maxConcurrency'"),
    ({"MaxConcurrency": "12345678"}, "ValidationException", "length between 1 and 7"),
    ({"MaxErrors": "-1"}, "ValidationException", "Value '-1' at 'maxErrors'"),
    ({"ComplianceSeverity": "URGENT"}, "ValidationException", "enum value set"),
    ({"Targets": []}, "InvalidTarget", "Instance ID or targets must be specified"),
    ({"Targets": [{"Key": "tag:a", "Values": ["b"]}] * 6}, "ValidationException", "less than or equal to 5"),
    ({"Targets": [{"Key": "InstanceIds", "Values": [HOST] * 51}]}, "ValidationException", "less than or equal to 50"),
    ({"Targets": [{"Key": "instanceids", "Values": [HOST]}]}, "InvalidTarget", "Key 'instanceids'"),
    ({"Targets": [{"Key": "InstanceIds", "Values": ["web-1"]}]}, "InvalidTarget", "'web-1'"),
    (
        {"Targets": [{"Key": "InstanceIds", "Values": ["i-0fffffffffffffff0"]}]},
        "InvalidInstanceId",
        "i-0fffffffffffffff0",
    ),
    ({"Name": "NoSuchDocument"}, "InvalidDocument", "'NoSuchDocument'"),
    ({"Parameters": {"SecretArn": ["certs/web"]}}, "InvalidParameters", "parameter SecretArn value 'certs/web'"),
    ({"Parameters": {"SecretArn": [ARN, ARN]}}, "InvalidParameters", "'SecretArn' is a String"),
    ({"Parameters": {"SecretArn": [ARN], "Command": ["id"]}}, "InvalidParameters", "unknown parameter(s) Command"),
    ({"Parameters": {}}, "InvalidParameters", "parameter SecretArn is required"),
    ({"OutputLocation": {"S3Location": {"OutputS3BucketName": "logs"}}}, "ValidationException", "not emulated"),
]


@pytest.mark.parametrize(("change", "code", "fragment"), REFUSED)
def test_what_state_manager_refuses_is_refused_naming_the_field_and_value(
    emulated: tuple[Any, StateManager], change: dict[str, Any], code: str, fragment: str
) -> None:
    ssm, _ = emulated
    with pytest.raises(ClientError) as caught:
        ssm.create_association(**(BASE | change))
    assert caught.value.response["Error"]["Code"] == code
    assert fragment in caught.value.response["Error"]["Message"]
    assert ssm.list_associations()["Associations"] == []  # nothing half-made


@pytest.mark.parametrize(
    "change",
    [
        {"ScheduleExpression": "rate(30 minutes)"},
        {"ScheduleExpression": "rate(44639 minutes)"},
        {"ScheduleExpression": "rate(743 hours)"},
        {"ScheduleExpression": "rate(30 days)"},
        {"ScheduleExpression": "rate(1 hour)"},
        {"ScheduleExpression": "cron(0 2 ? * SUN *)", "ApplyOnlyAtCronInterval": True},
        {"MaxConcurrency": "100%", "MaxErrors": "0"},
        {"MaxConcurrency": "1", "MaxErrors": "0%"},
        {"Targets": [{"Key": "InstanceIds", "Values": [HOST]}]},
        {"Targets": [{"Key": "InstanceIds", "Values": ["*"]}]},
    ],
)
def test_the_edges_state_manager_accepts_are_accepted(
    emulated: tuple[Any, StateManager], change: dict[str, Any]
) -> None:
    ssm, _ = emulated
    created = ssm.create_association(**(BASE | change))["AssociationDescription"]
    assert {k: created[k] for k in change} == change


def test_a_pattern_go_cannot_compile_makes_every_association_of_the_document_invalid(
    emulated: tuple[Any, StateManager],
) -> None:
    """The parameters are checked as SSM Agent checks them: Go's regexp refuses nested repeats
    whose counts multiply past 1000, so no value could ever pass (allowed_pattern.py)."""
    ssm, _ = emulated
    document = yaml.safe_load((DOCUMENTS_DIR / "RunUpdateTLS.yaml").read_text())
    document["parameters"]["VersionStage"]["allowedPattern"] = "^(x{0,254}){1,16}$"
    ssm.create_document(Name="Broken", Content=yaml.safe_dump(document), DocumentType="Command", DocumentFormat="YAML")
    with pytest.raises(
        ClientError, match=r"InvalidParameters.*VersionStage.*does not compile in SSM Agent's Go regexp"
    ):
        ssm.create_association(**(BASE | {"Name": "Broken"}))


def test_an_update_replaces_the_association_and_keeps_only_name_and_targets(emulated: tuple[Any, StateManager]) -> None:
    ssm, _ = emulated
    association = ssm.create_association(**BASE)["AssociationDescription"]["AssociationId"]
    ssm.update_association(AssociationId=association, Parameters={"SecretArn": [ARN]}, MaxErrors="1")
    described = ssm.describe_association(AssociationId=association)["AssociationDescription"]
    assert (described["AssociationVersion"], described["Name"], described["Targets"]) == (
        "2",
        "RunUpdateTLS",
        BASE["Targets"],
    )
    assert described["MaxErrors"] == "1"
    for emptied in ("AssociationName", "ScheduleExpression", "MaxConcurrency", "ComplianceSeverity"):
        assert emptied not in described, emptied
    with pytest.raises(ClientError, match="InvalidAssociationVersion"):
        ssm.update_association(AssociationId=association, AssociationVersion="1", **BASE)
    with pytest.raises(ClientError, match="AssociationDoesNotExist"):
        ssm.update_association(AssociationId="8dfe3659-4309-493a-8755-0123456789ab", **BASE)
    with pytest.raises(ClientError, match="InvalidSchedule"):  # the update is checked as a create is
        ssm.update_association(AssociationId=association, **(BASE | {"ScheduleExpression": "rate(5 minutes)"}))
    assert ssm.describe_association(AssociationId=association)["AssociationDescription"]["AssociationVersion"] == "2"


def test_list_filters_by_name_prefix_and_pages(emulated: tuple[Any, StateManager]) -> None:
    ssm, _ = emulated
    names = ["certrotate-a", "certrotate-a-longer", "certrotate-ab", "certrotate-b", "other"]
    for name in names:
        ssm.create_association(**(BASE | {"AssociationName": name}))
    wanted = [{"key": "AssociationName", "value": "certrotate-a"}]
    first = ssm.list_associations(AssociationFilterList=wanted, MaxResults=2)
    second = ssm.list_associations(AssociationFilterList=wanted, MaxResults=2, NextToken=first["NextToken"])
    listed = [a["AssociationName"] for a in first["Associations"] + second["Associations"]]
    assert listed == ["certrotate-a", "certrotate-a-longer", "certrotate-ab"] and "NextToken" not in second
    with pytest.raises(ClientError, match="InvalidNextToken"):
        ssm.list_associations(NextToken="not-a-token")
    with pytest.raises(ClientError, match="LastExecutedBefore"):
        ssm.list_associations(AssociationFilterList=[{"key": "LastExecutedBefore", "value": "2026-01-01T00:00:00Z"}])


def test_start_once_starts_all_or_nothing(emulated: tuple[Any, StateManager], clock: EmulatedClock) -> None:
    ssm, service = emulated
    quiet = BASE | {"ScheduleExpression": "cron(0 2 ? * SUN *)", "ApplyOnlyAtCronInterval": True}
    association = ssm.create_association(**quiet)["AssociationDescription"]["AssociationId"]
    assert service.run_due_associations(clock.now) == []  # not applied on create
    with pytest.raises(ClientError, match="AssociationDoesNotExist"):
        ssm.start_associations_once(AssociationIds=[association, "8dfe3659-4309-493a-8755-0123456789ab"])
    assert service.run_due_associations(clock.now) == []
    ssm.start_associations_once(AssociationIds=[association])
    (execution,) = service.run_due_associations(clock.now)
    assert execution.association_id == association and execution.targets == ()  # its one node is stopped


def test_a_rate_schedule_runs_when_due_and_missed_runs_coalesce(
    emulated: tuple[Any, StateManager], clock: EmulatedClock
) -> None:
    ssm, service = emulated
    association = ssm.create_association(**BASE)["AssociationDescription"]["AssociationId"]
    start = clock.now
    runs = {minute: len(service.run_due_associations(start + minute * 60)) for minute in (0, 29, 30, 59, 95, 119, 120)}
    assert runs == {0: 1, 29: 0, 30: 1, 59: 0, 95: 1, 119: 0, 120: 1}
    executions = ssm.describe_association_executions(AssociationId=association)["AssociationExecutions"]
    assert [e["CreatedTime"].timestamp() - start for e in executions] == [7200.0, 5700.0, 1800.0, 0.0]
    with pytest.raises(ClientError, match="AssociationExecutionDoesNotExist"):
        ssm.describe_association_execution_targets(
            AssociationId=association, ExecutionId="7abb6378-a4a5-4f10-8312-0123456789ab"
        )


def test_a_deleted_association_is_gone_and_never_runs(emulated: tuple[Any, StateManager], clock: EmulatedClock) -> None:
    ssm, service = emulated
    association = ssm.create_association(**BASE)["AssociationDescription"]["AssociationId"]
    ssm.delete_association(AssociationId=association)
    assert service.run_due_associations(clock.now + 3600) == []
    for call in (ssm.describe_association, ssm.delete_association, ssm.describe_association_executions):
        with pytest.raises(ClientError, match="AssociationDoesNotExist"):
            call(AssociationId=association)


def test_targets_resolve_by_tag_and_instance_id(emulated: tuple[Any, StateManager]) -> None:
    _, service = emulated
    hosts = service.hosts
    hosts.register("i-0bbbbbbbbbbbbbbbb", tags={"certrotate:secret": "certs/api"}, environment={})
    hosts.register("mi-0cccccccccccccccc", tags={"certrotate:secret": "certs/web"}, environment={})

    def ids(*targets: Target) -> list[str]:
        return [h.instance_id for h in hosts.resolve(targets)]

    assert ids(Target("tag:certrotate:secret", ("certs/web",))) == [HOST, "mi-0cccccccccccccccc"]
    assert ids(Target("InstanceIds", ("i-0bbbbbbbbbbbbbbbb",))) == ["i-0bbbbbbbbbbbbbbbb"]
    assert len(ids(Target("InstanceIds", ("*",)))) == 3
    with pytest.raises(ValueError, match="registered already"):
        hosts.register(HOST, tags={}, environment={})


def test_the_sandbox_keeps_and_runs_associations() -> None:
    """``certrotate sandbox`` answers the association operations and runs what is due (no node is
    registered there yet, so the run has no target)."""
    from tests.support.cli import cli_env

    started = subprocess.run(
        [sys.executable, "-m", "rotation.cli", "sandbox", "--detach", "--no-color"],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    exports = dict(re.findall(r"^export (\w+)=(\S+)$", started.stdout, re.MULTILINE))
    pid = int(exports["CERTROTATE_SANDBOX_PID"])
    try:
        ssm = boto3.client(
            "ssm",
            region_name=exports["AWS_DEFAULT_REGION"],
            endpoint_url=exports["AWS_ENDPOINT_URL"],
            aws_access_key_id="sandbox",
            aws_secret_access_key="sandbox",
        )
        association = ssm.create_association(**BASE)["AssociationDescription"]["AssociationId"]
        with pytest.raises(ClientError, match="InvalidSchedule"):
            ssm.create_association(**(BASE | {"ScheduleExpression": "rate(10 minutes)"}))
        for _ in range(600):  # the sandbox's loop runs what is due every half second
            executions = ssm.describe_association_executions(AssociationId=association)["AssociationExecutions"]
            if executions:
                break
            time.sleep(0.1)
        assert [(e["Status"], e["ResourceCountByStatus"]) for e in executions] == [("Success", "{}")]
    finally:
        os.kill(pid, signal.SIGTERM)


FAILING = """schemaVersion: '2.2'
description: A step that fails unless the node's own environment says it is healthy.
mainSteps:
  - action: aws:runShellScript
    name: check
    inputs:
      runCommand:
        - test "${NODE_HEALTHY:-no}" = yes
"""


@pytest.mark.parametrize(
    ("max_concurrency", "max_errors", "failed", "batches"),
    [
        ("1", "10%", 6, 6),  # the reference's example: 10% of 50 targets, stopped at the sixth error
        ("1", "3", 4, 4),  # 3: stopped at the fourth
        ("1", "0", 1, 1),  # 0: stopped at the first
        ("10%", "0", 5, 1),  # 5 at a time: the first batch runs to its end, then nothing more
        ("25", "100%", 50, 2),  # every failure allowed: all 50 run, 25 at a time
    ],
)
def test_max_errors_and_max_concurrency_over_fifty_nodes(
    emulated: tuple[Any, StateManager], max_concurrency: str, max_errors: str, failed: int, batches: int
) -> None:
    """Fifty nodes whose real document step fails (``sh`` runs it on each): how many run, in how
    many batches, and how many are never sent the run, as the API reference words MaxErrors."""
    ssm, service = emulated
    ssm.create_document(Name="Failing", Content=FAILING, DocumentType="Command", DocumentFormat="YAML")
    nodes = [f"i-{n:017x}" for n in range(1, 51)]
    for node in nodes:
        service.hosts.register(node, tags={"fleet": "fifty"}, environment={})
    ssm.create_association(
        Name="Failing",
        Targets=[{"Key": "tag:fleet", "Values": ["fifty"]}],
        MaxConcurrency=max_concurrency,
        MaxErrors=max_errors,
    )
    (execution,) = service.run_due_associations()
    statuses = [t.status.value for t in execution.targets]
    assert [t.instance_id for t in execution.targets] == nodes  # sent in instance-id order
    assert statuses == ["Failed"] * failed + ["Skipped"] * (50 - failed)
    assert len({t.batch for t in execution.targets if t.batch >= 0}) == batches


def test_a_healthy_node_succeeds_where_others_fail(emulated: tuple[Any, StateManager]) -> None:
    ssm, service = emulated
    ssm.create_document(Name="Failing", Content=FAILING, DocumentType="Command", DocumentFormat="YAML")
    service.hosts.register("i-00000000000000001", tags={"fleet": "two"}, environment={"NODE_HEALTHY": "yes"})
    service.hosts.register("i-00000000000000002", tags={"fleet": "two"}, environment={})
    association = ssm.create_association(Name="Failing", Targets=[{"Key": "tag:fleet", "Values": ["two"]}])
    (execution,) = service.run_due_associations()
    assert [t.status.value for t in execution.targets] == ["Success", "Failed"]
    described = ssm.describe_association(AssociationId=association["AssociationDescription"]["AssociationId"])
    assert described["AssociationDescription"]["Overview"]["AssociationStatusAggregatedCount"] == {
        "Failed": 1,
        "Success": 1,
    }


def test_a_tag_target_with_several_values_matches_any_of_them(emulated: tuple[Any, StateManager]) -> None:
    """User Guide, targets and rate controls: with several tag values, any node carrying one of them."""
    ssm, service = emulated
    service.hosts.register("i-0bbbbbbbbbbbbbbbb", tags={"certrotate:secret": "certs/api"}, environment={})
    targets = [{"Key": "tag:certrotate:secret", "Values": ["certs/web", "certs/api"]}]
    created = ssm.create_association(**(BASE | {"Targets": targets}))["AssociationDescription"]
    assert created["Targets"] == targets
    resolved = service.hosts.resolve([Target("tag:certrotate:secret", ("certs/web", "certs/api"))])
    assert [h.instance_id for h in resolved] == [HOST, "i-0bbbbbbbbbbbbbbbb"]
