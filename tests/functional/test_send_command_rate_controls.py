"""SendCommand's MaxConcurrency and MaxErrors on the emulated managed nodes (``rotation.emulation.
command_rate_controls`` cites the Run Command behaviour): how many nodes run at once, which nodes
are never sent the command once the failures pass MaxErrors, the command's final status and counts,
and the values the API model refuses.

Each node runs a one-step shell script that marks itself running in a directory all nodes share,
records the most markers it saw while it ran (it waits for the window to fill, or for two seconds
when it runs alone at the end), then leaves and exits with the node's code: the maximum recorded over
the nodes is the concurrency the emulation allowed, counted, not timed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError
from moto import mock_aws

from rotation.emulation.managed_hosts import ManagedHosts
from rotation.emulation.ssm_commands import ssm_commands_in_moto
from tests.functional.test_send_command_emulation import command_finished, finished

NODES = tuple(f"i-0000000000000010{n}" for n in range(1, 6))
FAILING = NODES[:2]  # exit 3; the others exit 0
OFFLINE = NODES[4]  # its agent is offline: never in a window
ONLINE = NODES[:4]
RECORD = r"""
mkdir -p "$SHARED/running" "$SHARED/seen"
touch "$SHARED/running/$AWS_SSM_INSTANCE_ID"
most=0
for _ in $(seq 1 40); do
  now=$(ls "$SHARED/running" | wc -l)
  [ "$now" -gt "$most" ] && most=$now
  [ "$most" -ge "$WINDOW" ] && break
  sleep 0.05
done
for _ in 1 2 3 4; do
  now=$(ls "$SHARED/running" | wc -l)
  [ "$now" -gt "$most" ] && most=$now
  sleep 0.05
done
echo "$most" > "$SHARED/seen/$AWS_SSM_INSTANCE_ID"
rm "$SHARED/running/$AWS_SSM_INSTANCE_ID"
exit $NODE_EXIT
"""
DOCUMENT = {
    "schemaVersion": "2.2",
    "description": "records how many nodes run at once; fails where the node says so",
    "parameters": {"Window": {"type": "String", "allowedPattern": "^[0-9]+$"}},
    "mainSteps": [
        {
            "action": "aws:runShellScript",
            "name": "record",
            "inputs": {"runCommand": ["WINDOW={{ Window }}", *RECORD.strip().splitlines()]},
        }
    ],
}


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def ssm(shared: Path) -> Iterator[Any]:
    hosts = ManagedHosts()
    for node in NODES:
        hosts.register(
            node,
            tags={"fleet": "web"},
            environment={"SHARED": str(shared), "NODE_EXIT": "3" if node in FAILING else "0"},
        )
    hosts.stop(OFFLINE)
    with mock_aws(), ssm_commands_in_moto(hosts):
        client = boto3.client("ssm", region_name="us-east-1")
        client.create_document(
            Name="Record", Content=yaml.safe_dump(DOCUMENT), DocumentType="Command", DocumentFormat="YAML"
        )
        yield client


def seen(shared: Path) -> dict[str, int]:
    """The most nodes each node saw running while it ran (only nodes that ran wrote one)."""
    return {p.name: int(p.read_text()) for p in sorted((shared / "seen").iterdir())}


def send(ssm: Any, instance_ids: tuple[str, ...], window: int, **rate_controls: str) -> str:
    command = ssm.send_command(
        DocumentName="Record", InstanceIds=list(instance_ids), Parameters={"Window": [str(window)]}, **rate_controls
    )["Command"]
    return str(command["CommandId"])


def test_at_most_max_concurrency_nodes_run_at_once_and_every_node_runs(ssm: Any, shared: Path) -> None:
    command_id = send(ssm, NODES[2:4] + NODES[:2], 2, MaxConcurrency="2", MaxErrors="2")
    invocations = finished(ssm, command_id, list(ONLINE))

    assert max(seen(shared).values()) == 2  # never more than 2 at once; and 2 did run together
    assert set(seen(shared)) == set(ONLINE)
    assert [invocations[n]["Status"] for n in ONLINE] == ["Failed", "Failed", "Success", "Success"]


def test_a_percentage_is_of_the_targets_and_a_command_whose_nodes_all_succeed_is_success(
    ssm: Any, shared: Path
) -> None:
    command_id = send(ssm, ONLINE[2:], 1, MaxConcurrency="50%")  # 50% of 2 targets: one at a time
    listed = command_finished(ssm, command_id)
    assert max(seen(shared).values()) == 1
    assert (listed["Status"], listed["StatusDetails"], listed["MaxErrors"]) == ("Success", "Success", "0")
    assert (listed["TargetCount"], listed["CompletedCount"], listed["ErrorCount"]) == (2, 2, 0)

    command_id = send(ssm, ONLINE, 1, MaxConcurrency="25%", MaxErrors="100%")  # 25% of 4: one at a time
    finished(ssm, command_id, list(ONLINE))
    assert max(seen(shared).values()) == 1
    assert command_finished(ssm, command_id)["MaxConcurrency"] == "25%"


def test_max_errors_0_stops_sending_after_the_first_failure_and_the_rest_are_terminated(ssm: Any, shared: Path) -> None:
    """MaxErrors absent is 0. The first window (2 nodes) fails: no further node is sent, the one
    already running finishes, and every invocation not sent, the offline node's too, is Terminated."""
    command_id = send(ssm, NODES, 2, MaxConcurrency="2")
    listed = command_finished(ssm, command_id)

    assert set(seen(shared)) == set(FAILING)  # the two of the first window ran; nothing after them
    for node in NODES[2:]:
        invocation = ssm.get_command_invocation(CommandId=command_id, InstanceId=node)
        assert (invocation["Status"], invocation["StatusDetails"]) == ("Cancelled", "Terminated")
        assert (invocation["ResponseCode"], invocation["StandardOutputContent"]) == (-1, "")
    for node in FAILING:
        assert ssm.get_command_invocation(CommandId=command_id, InstanceId=node)["Status"] == "Failed"
    assert (listed["Status"], listed["StatusDetails"], listed["MaxErrors"]) == ("Failed", "Failed", "0")
    assert (listed["TargetCount"], listed["CompletedCount"], listed["ErrorCount"]) == (5, 5, 2)


def test_max_errors_above_the_failures_lets_every_node_run_and_the_command_is_incomplete(
    ssm: Any, shared: Path
) -> None:
    command_id = send(ssm, ONLINE, 1, MaxConcurrency="1", MaxErrors="50%")  # 50% of 4: two failures allowed
    invocations = finished(ssm, command_id, list(ONLINE))
    listed = command_finished(ssm, command_id)

    assert set(seen(shared)) == set(ONLINE)
    assert [invocations[n]["Status"] for n in ONLINE] == ["Failed", "Failed", "Success", "Success"]
    # Not every invocation succeeded, but not enough failed for Failed: StatusDetails Incomplete.
    assert (listed["Status"], listed["StatusDetails"]) == ("Failed", "Incomplete")
    assert (listed["TargetCount"], listed["CompletedCount"], listed["ErrorCount"]) == (4, 4, 2)


def test_one_failure_past_max_errors_stops_the_run_with_max_concurrency_1(ssm: Any, shared: Path) -> None:
    """MaxErrors 1: the second failure stops it; one at a time, so exactly the nodes before it ran."""
    order = (NODES[2], NODES[0], NODES[1], NODES[3])  # sent in instance-id order whatever the request's
    command_id = send(ssm, order, 1, MaxConcurrency="1", MaxErrors="1")
    listed = command_finished(ssm, command_id)

    assert set(seen(shared)) == set(FAILING)
    assert (listed["Status"], listed["ErrorCount"], listed["CompletedCount"]) == ("Failed", 2, 4)
    terminated = ssm.get_command_invocation(CommandId=command_id, InstanceId=NODES[3])
    assert terminated["StatusDetails"] == "Terminated"


@pytest.mark.parametrize(
    ("rate_controls", "named"),
    [
        ({"MaxConcurrency": "0"}, "Value '0' at 'maxConcurrency'"),
        ({"MaxConcurrency": "101%"}, "Value '101%' at 'maxConcurrency'"),
        ({"MaxConcurrency": "0%"}, "Value '0%' at 'maxConcurrency'"),
        ({"MaxConcurrency": "12345678"}, "length between 1 and 7"),
        ({"MaxErrors": "-1"}, "Value '-1' at 'maxErrors'"),
        ({"MaxErrors": "01"}, "Value '01' at 'maxErrors'"),
        ({"MaxErrors": "10 %"}, "Value '10 %' at 'maxErrors'"),
    ],
)
def test_rate_controls_the_model_refuses_are_a_validation_exception_before_any_command_exists(
    ssm: Any, rate_controls: dict[str, str], named: str
) -> None:
    with pytest.raises(ClientError) as refused:
        send(ssm, ONLINE, 1, **rate_controls)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert named in refused.value.response["Error"]["Message"]
    assert ssm.list_commands()["Commands"] == []


def test_the_model_is_checked_in_the_sandbox_without_managed_nodes_too() -> None:
    with mock_aws(), ssm_commands_in_moto():
        ssm = boto3.client("ssm", region_name="us-east-1")
        with pytest.raises(ClientError) as refused:
            ssm.send_command(
                DocumentName="AWS-RunShellScript", Targets=[{"Key": "tag:fleet", "Values": ["web"]}], MaxErrors="x"
            )
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "'x' at 'maxErrors'" in refused.value.response["Error"]["Message"]


def _deploy(nodes: dict[str, dict[str, str]], run_command: list[str], max_errors: str) -> Any:
    """``certrotate deploy`` against moto's server (as the sandbox serves it), MaxConcurrency 1, to
    ``nodes`` (instance id -> the node's environment), each running ``run_command``; the
    DeployFailedError it raises."""
    from moto.server import ThreadedMotoServer

    from rotation.cli.deploy import DeployFailedError, deploy
    from rotation.cli.local_apache import free_port
    from rotation.cli.output import Output
    from rotation.cli.session import AwsContext

    hosts = ManagedHosts()
    for node, environment in nodes.items():
        hosts.register(node, tags={}, environment=environment)
    install = {
        "schemaVersion": "2.2",
        "description": "installs nothing; exits with the node's code",
        "parameters": {"SecretArn": {"type": "String"}},
        "mainSteps": [{"action": "aws:runShellScript", "name": "install", "inputs": {"runCommand": run_command}}],
    }
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    with ssm_commands_in_moto(hosts):
        server.start()
        try:
            aws = AwsContext(None, "us-east-1", f"http://127.0.0.1:{port}")
            aws.client("ssm").create_document(
                Name="Install", Content=yaml.safe_dump(install), DocumentType="Command", DocumentFormat="YAML"
            )
            with pytest.raises(DeployFailedError) as failed:
                deploy(
                    aws,
                    "arn:aws:secretsmanager:us-east-1:123456789012:secret:web-AbCdEf",
                    {"InstanceIds": list(nodes)},
                    document="Install",
                    role_arn=None,
                    max_concurrency="1",
                    max_errors=max_errors,
                    timeout=60,
                    out=Output(),
                    sleep=lambda _: time.sleep(0.05),
                    show_progress=False,
                )
        finally:
            server.stop()
    return failed.value


def test_deploy_names_the_instances_never_sent_and_reports_no_success() -> None:
    """MaxConcurrency 1 and MaxErrors 0: the first instance fails, the others are never sent; each
    is reported as not sent, none as a success, and deploy fails saying so."""
    from rotation.cli.deploy import NOT_SENT

    nodes = {node: {"NODE_EXIT": "3" if node in FAILING else "0"} for node in (NODES[0], *ONLINE[2:])}
    failed = _deploy(nodes, ["exit $NODE_EXIT"], "0")
    results = {r.instance_id: r for r in failed.results}
    assert results[NODES[0]].status == "Failed"
    assert [(results[n].status, results[n].detail) for n in ONLINE[2:]] == [("Cancelled", NOT_SENT)] * 2
    assert str(failed) == "3 of 3 instance(s) did not succeed (2 never sent: the failures passed --max-errors 0)"


def test_a_host_that_writes_the_not_sent_words_is_still_an_instance_the_command_reached() -> None:
    """Root on a host writes what deploy says of an instance never sent to its stderr and fails:
    deploy reads whether SSM sent the command from SSM's StatusDetails, never from the host's text."""
    from rotation.cli.deploy import NOT_SENT

    failed = _deploy({NODES[0]: {}}, [f"echo '{NOT_SENT}' >&2", "exit 3"], "100%")
    (result,) = failed.results
    assert (result.status, result.detail, result.sent) == ("Failed", NOT_SENT, True)
    assert str(failed) == "1 of 1 instance(s) did not succeed"
