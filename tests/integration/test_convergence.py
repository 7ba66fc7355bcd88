"""Convergence end to end, the way State Manager moves a fleet: RotationSucceeded → the converge
function → the association on emulated State Manager → its runs on emulated hosts → Apache serves.

What runs for real: moto's server (Secrets Manager, Private CA, STS, SSM documents; SSM inventory
and State Manager from rotation.emulation, which moto lacks), certrotate's rotation function (moto's
RotateSecret runs it), the RotationSucceeded function's ``lambda_handler`` (it creates, updates and
starts the association through the SSM API), the association's runs (``run_due_associations`` on
an emulated clock: apply on create, StartAssociationsOnce, the rate schedule, catch-up of nodes
that were offline or are new), RunUpdateTLS and the installer through the aws CLI, two Debian
apache2 on loopback as managed nodes tagged ``certrotate:secret``, and ``certrotate hosts``.

Host A serves the first certificate, is stopped during the second rotation and comes back; host B
is launched only after that rotation. The fleet view shows A current → older → current, and B
absent → current; the association's executions say which node ran when.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

import rotation.handler
from rotation.cli.local_apache import LocalApache as Apache
from rotation.cli.local_apache import apache_available, free_port
from rotation.emulation.association_api import state_manager_in_moto
from rotation.emulation.pki import create_ca
from rotation.emulation.rotation_service import LAMBDA_ARN, LocalLambdaContext, rotation_function_in_moto
from rotation.emulation.ssm_inventory import ssm_inventory_in_moto
from rotation.emulation.state_manager import StateManager
from rotation.event_handlers import rotation_succeeded
from tests.integration.conftest import HOSTNAME, REGION, require
from tests.integration.test_install_document import served_serial
from tests.support import cli
from tests.support.certs import LocalCA
from tests.support.fleet import EmulatedClock, register_install_document, register_server
from tests.support.fleet import rotation_succeeded as succeeded_event

HOST_A, HOST_B = "i-0aaaaaaaaaaaaaaaa", "i-0bbbbbbbbbbbbbbbb"
ACCOUNT = "123456789012"


@pytest.fixture
def clock() -> EmulatedClock:
    return EmulatedClock()


@pytest.fixture
def state_manager(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, clock: EmulatedClock) -> Iterator[StateManager]:
    """moto's server with the emulation, the install document registered, and the RotationSucceeded
    function's settings as the central stack sets them (defaults: rate(30 minutes), 25%, 10%)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("EXPECTED_ACCOUNT", ACCOUNT)
    monkeypatch.setenv("SECRET_ARN_PATTERN", f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:converge/*")
    monkeypatch.setenv("ROTATION_FUNCTION_ARN", LAMBDA_ARN)
    rotation.handler.reset()
    with rotation_function_in_moto() as failures, ssm_inventory_in_moto(), state_manager_in_moto(clock=clock) as sm:
        register_install_document(boto3.client("ssm", region_name=REGION, endpoint_url=moto_endpoint))
        yield sm
    rotation.handler.reset()
    assert failures == []


def new_host(root: Path, ca: LocalCA) -> Apache:
    """A freshly launched instance: Apache up with the image's placeholder certificate."""
    require(apache_available())
    host = Apache(root, free_port())
    host.write_bundle(ca.issue([HOSTNAME]))
    host.start()
    return host


def rotate(sm: Any, arn: str) -> str:
    """Rotate now and wait for the new AWSCURRENT certificate; returns its serial."""
    before = json.loads(sm.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"])
    sm.rotate_secret(SecretId=arn, RotationLambdaARN=LAMBDA_ARN)
    for _ in range(200):
        value = json.loads(sm.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"])
        if value.get("CERTIFICATE_SERIAL") and value.get("CERTIFICATE_SERIAL") != before.get("CERTIFICATE_SERIAL"):
            return str(value["CERTIFICATE_SERIAL"])
        time.sleep(0.05)
    raise AssertionError("the rotation did not finish")


def fleet(endpoint: str, name: str) -> dict[str, str]:
    """Instance → state, as ``certrotate hosts NAME --output json`` shows it."""
    result = cli.certrotate("hosts", name, "--output", "json", endpoint=endpoint)
    assert result.returncode == 0, result.stderr
    (secret,) = json.loads(result.stdout)["secrets"]
    return {host["instance_id"]: host["state"] for host in secret["hosts"]}


def converge(arn: str) -> str:
    """EventBridge delivers RotationSucceeded to the converge function (its real Lambda entry point)."""
    answer = rotation_succeeded.lambda_handler(succeeded_event(arn), LocalLambdaContext())
    return str(answer["associationId"])


def ran(state_manager: StateManager, now: float) -> dict[str, tuple[str, int]]:
    """One pass of the service at ``now``: instance → (status, batch) of every target it ran."""
    return {
        t.instance_id: (t.status.value, t.batch)
        for execution in state_manager.run_due_associations(now)
        for t in execution.targets
    }


@pytest.mark.slow
def test_a_rotation_reaches_a_stopped_host_and_a_late_host_through_state_manager(
    state_manager: StateManager,
    clock: EmulatedClock,
    moto_endpoint: str,
    tmp_path: Path,
    ca: LocalCA,
    host_env: dict[str, str],
) -> None:
    sm = boto3.client("secretsmanager", region_name=REGION, endpoint_url=moto_endpoint)
    ssm = boto3.client("ssm", region_name=REGION, endpoint_url=moto_endpoint)
    pca = create_ca(boto3.client("acm-pca", region_name=REGION, endpoint_url=moto_endpoint), key="EC")
    name = f"converge/{tmp_path.name}"
    fields = {
        "CERTIFICATE_TYPE": "PCA_ISSUED",
        "CA_ARN": pca,
        "COMMON_NAME": HOSTNAME,
        "KEY_ALGORITHM": "EC_prime256v1",
    }
    arn = str(sm.create_secret(Name=name, SecretString=json.dumps(fields))["ARN"])
    host_a = new_host(tmp_path / "a", ca)
    host_b: Apache | None = None
    hosts = state_manager.hosts
    register_server(hosts, HOST_A, host_a, name, host_env)
    try:
        first = rotate(sm, arn)
        association = converge(arn)  # no association yet: created, applied at once
        assert ran(state_manager, clock.now) == {HOST_A: ("Success", 0)}
        assert format(served_serial(host_a), "X") == first
        assert fleet(moto_endpoint, name) == {HOST_A: "current"}
        described = ssm.describe_association(AssociationId=association)["AssociationDescription"]
        assert (described["Targets"], described["Parameters"]) == (
            [{"Key": "tag:certrotate:secret", "Values": [name]}],
            {"SecretArn": [arn]},  # the secret alone: each host file says where and on which port
        )
        assert described["Overview"]["Status"] == "Success"

        hosts.stop(HOST_A)  # the instance stops: no agent, no Apache
        clock.advance(5)
        second = rotate(sm, arn)
        assert converge(arn) == association  # found, unchanged, started once
        assert ran(state_manager, clock.now) == {}  # nobody is up
        assert fleet(moto_endpoint, name) == {HOST_A: "older"}

        host_b = new_host(tmp_path / "b", ca)  # launched by the Auto Scaling group after the rotation
        assert fleet(moto_endpoint, name) == {HOST_A: "older"}  # B has not reported: absent
        register_server(hosts, HOST_B, host_b, name, host_env)
        clock.advance(1)
        assert ran(state_manager, clock.now) == {HOST_B: ("Success", 0)}  # a new node matches: at once
        assert fleet(moto_endpoint, name) == {HOST_A: "older", HOST_B: "current"}

        hosts.start(HOST_A)  # back, still serving the first certificate
        assert format(served_serial(host_a), "X") == first
        clock.advance(1)
        assert ran(state_manager, clock.now) == {HOST_A: ("Success", 0)}  # its agent catches up
        assert fleet(moto_endpoint, name) == {HOST_A: "current", HOST_B: "current"}
        assert format(served_serial(host_a), "X") == format(served_serial(host_b), "X") == second != first

        clock.advance(22)  # 29 minutes after the association was made: rate(30 minutes) waits
        assert ran(state_manager, clock.now) == {}
        clock.advance(1)  # 30 minutes: every node, MaxConcurrency 25% of 2 = one at a time
        assert ran(state_manager, clock.now) == {HOST_A: ("Success", 0), HOST_B: ("Success", 1)}

        executions = ssm.describe_association_executions(AssociationId=association)["AssociationExecutions"]
        assert [e["ResourceCountByStatus"] for e in executions] == [
            "{Success=2}",  # the scheduled run
            "{Success=1}",  # A's catch-up
            "{Success=1}",  # B's first run
            "{}",  # StartAssociationsOnce while A was stopped
            "{Success=1}",  # applied on create
        ]
        targets = ssm.describe_association_execution_targets(
            AssociationId=association, ExecutionId=executions[0]["ExecutionId"]
        )["AssociationExecutionTargets"]
        assert {(t["ResourceId"], t["Status"], t["ResourceType"]) for t in targets} == {
            (HOST_A, "Success", "ManagedInstance"),
            (HOST_B, "Success", "ManagedInstance"),
        }
    finally:
        host_a.stop()
        if host_b is not None:
            host_b.stop()
