"""SendCommand on the emulated managed nodes (``rotation.emulation.ssm_commands`` with hosts), as
``certrotate sandbox --hosts`` serves it: the document read from moto's SSM runs on each node in the
node's environment, each invocation reports what ran, and what SSM refuses is refused before any
command exists. The document here is a one-step shell script; the real installer on real servers
runs in ``tests/test_project.py`` (the README's CA rollover in the sandbox).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError
from moto import mock_aws

from rotation.emulation.managed_hosts import ManagedHosts
from rotation.emulation.ssm_commands import ssm_commands_in_moto

NODES = ("i-00000000000000001", "i-00000000000000002", "i-00000000000000003")
DOCUMENT = {
    "schemaVersion": "2.2",
    "description": "says who runs it; fails where the node says so",
    "parameters": {"Word": {"type": "String", "allowedPattern": "^[a-z]+$"}},
    "mainSteps": [
        {
            "action": "aws:runShellScript",
            "name": "say",
            "inputs": {"runCommand": ['echo "{{ Word }} from $NODE_NAME on $AWS_SSM_INSTANCE_ID"', "exit $NODE_EXIT"]},
        }
    ],
}


@pytest.fixture
def nodes() -> ManagedHosts:
    hosts = ManagedHosts()
    for number, node in enumerate(NODES, 1):
        exit_code = "3" if number == 2 else "0"
        hosts.register(
            node,
            tags={"fleet": "web" if number < 3 else "api"},
            environment={"NODE_NAME": f"node{number}", "NODE_EXIT": exit_code},
        )
    return hosts


@pytest.fixture
def ssm(nodes: ManagedHosts) -> Iterator[Any]:
    with mock_aws(), ssm_commands_in_moto(nodes):
        client = boto3.client("ssm", region_name="us-east-1")
        client.create_document(
            Name="Say", Content=yaml.safe_dump(DOCUMENT), DocumentType="Command", DocumentFormat="YAML"
        )
        yield client


def finished(ssm: Any, command_id: str, instance_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each invocation once it left InProgress (the run is in a background thread, as the agent's)."""
    for _ in range(600):
        invocations = {i: ssm.get_command_invocation(CommandId=command_id, InstanceId=i) for i in instance_ids}
        if all(v["Status"] != "InProgress" for v in invocations.values()):
            return invocations
        time.sleep(0.05)
    raise AssertionError(f"command {command_id} did not finish")


def command_finished(ssm: Any, command_id: str) -> dict[str, Any]:
    """ListCommands' record of the command once it left InProgress (it settles after its last invocation)."""
    for _ in range(600):
        listed: dict[str, Any] = ssm.list_commands(CommandId=command_id)["Commands"][0]
        if listed["Status"] != "InProgress":
            return listed
        time.sleep(0.05)
    raise AssertionError(f"command {command_id} did not finish")


def test_a_command_runs_the_document_on_each_node_in_its_environment_and_reports_each_outcome(ssm: Any) -> None:
    command = ssm.send_command(DocumentName="Say", InstanceIds=list(NODES[:2]), Parameters={"Word": ["hello"]})[
        "Command"
    ]
    assert command["Status"] == "InProgress"  # SSM answers before any node ran it
    invocations = finished(ssm, command["CommandId"], list(NODES[:2]))

    first, second = invocations[NODES[0]], invocations[NODES[1]]
    assert (first["Status"], first["ResponseCode"]) == ("Success", 0)
    assert first["StandardOutputContent"] == f"hello from node1 on {NODES[0]}\n"
    assert (second["Status"], second["StatusDetails"], second["ResponseCode"]) == ("Failed", "Failed", 3)
    assert second["StandardOutputContent"] == f"hello from node2 on {NODES[1]}\n"
    listed = command_finished(ssm, command["CommandId"])
    # MaxErrors 0 (the default) and one failure: Failed; CompletedCount counts every terminal invocation.
    assert (listed["Status"], listed["StatusDetails"]) == ("Failed", "Failed")
    assert (listed["ErrorCount"], listed["CompletedCount"], listed["TargetCount"]) == (1, 2, 2)


def test_tag_targets_resolve_to_the_managed_nodes_that_carry_the_tag(ssm: Any) -> None:
    command = ssm.send_command(
        DocumentName="Say", Targets=[{"Key": "tag:fleet", "Values": ["api"]}], Parameters={"Word": ["hi"]}
    )["Command"]
    assert command["InstanceIds"] == [NODES[2]]
    invocation = finished(ssm, command["CommandId"], [NODES[2]])[NODES[2]]
    assert invocation["Status"] == "Success"
    assert invocation["StandardOutputContent"] == f"hi from node3 on {NODES[2]}\n"


def test_an_invocation_holds_the_first_24000_characters_of_stdout_and_8000_of_stderr(ssm: Any) -> None:
    loud = {
        "schemaVersion": "2.2",
        "description": "writes more than GetCommandInvocation returns",
        "mainSteps": [
            {
                "action": "aws:runShellScript",
                "name": "loud",
                "inputs": {
                    "runCommand": ["head -c 30000 /dev/zero | tr '\\0' o", "head -c 9000 /dev/zero | tr '\\0' e >&2"]
                },
            }
        ],
    }
    ssm.create_document(Name="Loud", Content=yaml.safe_dump(loud), DocumentType="Command", DocumentFormat="YAML")
    command = ssm.send_command(DocumentName="Loud", InstanceIds=[NODES[0]])["Command"]
    invocation = finished(ssm, command["CommandId"], [NODES[0]])[NODES[0]]
    assert invocation["Status"] == "Success"
    assert invocation["StandardOutputContent"] == "o" * 24_000
    assert invocation["StandardErrorContent"] == "e" * 8_000


def test_an_id_that_is_no_managed_node_refuses_the_whole_request_and_nothing_runs(ssm: Any) -> None:
    with pytest.raises(ClientError) as refused:
        ssm.send_command(DocumentName="Say", InstanceIds=[NODES[0], "i-0123456789abcdef0"], Parameters={"Word": ["x"]})
    assert refused.value.response["Error"]["Code"] == "InvalidInstanceId"
    assert "i-0123456789abcdef0" in refused.value.response["Error"]["Message"]
    assert NODES[0] not in refused.value.response["Error"]["Message"]
    assert ssm.list_commands()["Commands"] == []


@pytest.mark.parametrize(
    ("parameters", "named"),
    [({"Word": ["UPPER"]}, "Word"), ({"Other": ["x"]}, "Other"), ({}, "Word"), ({"Word": ["a", "b"]}, "Word")],
)
def test_parameters_the_document_refuses_are_invalid_parameters_before_any_command_exists(
    ssm: Any, parameters: dict[str, list[str]], named: str
) -> None:
    with pytest.raises(ClientError) as refused:
        ssm.send_command(DocumentName="Say", InstanceIds=[NODES[0]], Parameters=parameters)
    assert refused.value.response["Error"]["Code"] == "InvalidParameters"
    assert named in refused.value.response["Error"]["Message"]
    assert ssm.list_commands()["Commands"] == []


def test_a_document_that_does_not_exist_is_invalid_document(ssm: Any) -> None:
    with pytest.raises(ClientError) as refused:
        ssm.send_command(DocumentName="Missing", InstanceIds=[NODES[0]], Parameters={"Word": ["x"]})
    assert refused.value.response["Error"]["Code"] == "InvalidDocument"
    assert ssm.list_commands()["Commands"] == []


def test_a_node_whose_agent_is_offline_is_not_sent_the_command(ssm: Any, nodes: ManagedHosts) -> None:
    nodes.stop(NODES[0])
    command = ssm.send_command(DocumentName="Say", InstanceIds=[NODES[0], NODES[2]], Parameters={"Word": ["hi"]})[
        "Command"
    ]
    ran = finished(ssm, command["CommandId"], [NODES[2]])[NODES[2]]
    assert ran["Status"] == "Success"
    waiting = ssm.get_command_invocation(CommandId=command["CommandId"], InstanceId=NODES[0])
    assert (waiting["Status"], waiting["StatusDetails"], waiting["StandardOutputContent"]) == ("Pending", "Delayed", "")
    listed = ssm.list_commands(CommandId=command["CommandId"])["Commands"][0]
    # Not every invocation reached a terminal state: SSM keeps the command in progress (it retries delivery).
    assert (listed["Status"], listed["CompletedCount"], listed["TargetCount"]) == ("InProgress", 1, 2)


def test_without_managed_nodes_the_sandbox_still_refuses_every_instance_id() -> None:
    """The sandbox without ``--hosts`` keeps SSM with no managed node."""
    with mock_aws(), ssm_commands_in_moto():
        ssm = boto3.client("ssm", region_name="us-east-1")
        with pytest.raises(ClientError) as refused:
            ssm.send_command(DocumentName="AWS-RunShellScript", InstanceIds=[NODES[0]])
    assert refused.value.response["Error"]["Code"] == "InvalidInstanceId"
