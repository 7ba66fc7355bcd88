"""An association's runs on real hosts: MaxConcurrency batches, MaxErrors stops the run, one
association for Apache, nginx and HAProxy nodes.

Four Apache managed nodes share the secret's tag. The first two have a host file that allows no
directory holding their files, so the real installer refuses (a real failure, nothing changed);
the last two are healthy. Whether a healthy node was reached is read from what it serves.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from rotation.cli.local_apache import LocalApache as Apache
from rotation.emulation.association_api import state_manager_in_moto
from rotation.emulation.ssm_inventory import ssm_inventory_in_moto
from rotation.emulation.state_manager import StateManager
from rotation.event_handlers.rotation_succeeded import AssociationSettings, RotatedSecret, converge
from rotation.fleet.view import INSTANCE_TAG
from tests.integration.conftest import HOSTNAME, REGION, start_server
from tests.integration.test_install_document import served_serial
from tests.support.certs import LocalCA
from tests.support.fleet import EmulatedClock, host_file_for_association, register_install_document, register_server

INSTANCES = ["i-0000000000000000a", "i-0000000000000000b", "i-0000000000000000c", "i-0000000000000000d"]
BROKEN, HEALTHY = INSTANCES[:2], INSTANCES[2:]


@pytest.fixture
def state_manager(moto_endpoint: str) -> Iterator[StateManager]:
    with ssm_inventory_in_moto(), state_manager_in_moto(clock=EmulatedClock()) as service:
        register_install_document(boto3.client("ssm", region_name=REGION, endpoint_url=moto_endpoint))
        yield service


@pytest.fixture
def fleet(
    state_manager: StateManager, tmp_path: Path, ca: LocalCA, host_env: dict[str, str]
) -> Iterator[dict[str, Apache]]:
    servers: dict[str, Apache] = {}
    try:
        for instance in INSTANCES:
            server = start_server("apache", tmp_path / instance, ca)
            assert isinstance(server, Apache)
            servers[instance] = server
            register_server(state_manager.hosts, instance, server, "certs/fleet", host_env)
            if instance in BROKEN:  # root's host file allows only a directory the files are not in
                (tmp_path / instance / "elsewhere").mkdir()
                server.write_installer_config(
                    **host_file_for_association(server), allowed_directories=[str(tmp_path / instance / "elsewhere")]
                )
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def outcome(state_manager: StateManager) -> dict[str, tuple[str, int]]:
    (execution,) = state_manager.run_due_associations()
    return {t.instance_id: (t.status.value, t.batch) for t in execution.targets}


@pytest.mark.slow
def test_max_errors_stops_the_run_and_max_concurrency_sets_the_batches(
    state_manager: StateManager, fleet: dict[str, Apache], ca: LocalCA, put_secret: Any, moto_endpoint: str
) -> None:
    ssm = boto3.client("ssm", region_name=REGION, endpoint_url=moto_endpoint)
    old = {i: served_serial(s) for i, s in fleet.items()}
    new = ca.issue([HOSTNAME])
    arn = put_secret(new, name="certs/fleet")
    request = {
        "Name": "RunUpdateTLS",
        "AssociationName": "certrotate-fleet",
        "Targets": [{"Key": f"tag:{INSTANCE_TAG}", "Values": ["certs/fleet"]}],
        "Parameters": {"SecretArn": [arn]},
        "ScheduleExpression": "rate(30 minutes)",
    }
    association = ssm.create_association(**request, MaxConcurrency="1", MaxErrors="1")["AssociationDescription"]
    # One at a time; the second failure exceeds MaxErrors 1: the healthy nodes are never sent the run.
    assert outcome(state_manager) == {
        BROKEN[0]: ("Failed", 0),
        BROKEN[1]: ("Failed", 1),
        HEALTHY[0]: ("Skipped", -1),
        HEALTHY[1]: ("Skipped", -1),
    }
    assert {i: served_serial(fleet[i]) for i in HEALTHY} == {i: old[i] for i in HEALTHY}
    association_id = association["AssociationId"]
    (execution,) = ssm.describe_association_executions(AssociationId=association_id)["AssociationExecutions"]
    assert (execution["Status"], execution["ResourceCountByStatus"]) == ("Failed", "{Failed=2, Skipped=2}")
    skipped = ssm.describe_association_execution_targets(
        AssociationId=association_id,
        ExecutionId=execution["ExecutionId"],
        Filters=[{"Key": "Status", "Value": "Skipped"}],
    )["AssociationExecutionTargets"]
    assert sorted(t["ResourceId"] for t in skipped) == HEALTHY
    assert (
        ssm.describe_association(AssociationId=association_id)["AssociationDescription"]["Overview"]["Status"]
        == "Failed"
    )

    # Two at a time, no error allowed: the first batch (both broken nodes) runs to its end, then stop.
    ssm.update_association(AssociationId=association_id, **request, MaxConcurrency="2", MaxErrors="0")
    assert outcome(state_manager) == {
        BROKEN[0]: ("Failed", 0),
        BROKEN[1]: ("Failed", 0),
        HEALTHY[0]: ("Skipped", -1),
        HEALTHY[1]: ("Skipped", -1),
    }

    # Half may fail and MaxConcurrency is left out: the update empties it, so 100%, one batch.
    ssm.update_association(AssociationId=association_id, **request, MaxErrors="50%")
    described = ssm.describe_association(AssociationId=association_id)["AssociationDescription"]
    assert "MaxConcurrency" not in described and described["AssociationVersion"] == "3"
    assert outcome(state_manager) == {
        BROKEN[0]: ("Failed", 0),
        BROKEN[1]: ("Failed", 0),
        HEALTHY[0]: ("Success", 0),
        HEALTHY[1]: ("Success", 0),
    }
    assert {i: served_serial(fleet[i]) for i in INSTANCES} == {
        **{i: old[i] for i in BROKEN},
        **{i: new.certificate.serial_number for i in HEALTHY},
    }


@pytest.mark.slow
def test_one_association_moves_apache_nginx_and_haproxy_nodes(
    state_manager: StateManager,
    tmp_path: Path,
    ca: LocalCA,
    put_secret: Any,
    host_env: dict[str, str],
    moto_endpoint: str,
) -> None:
    """The converge function's association sends ``SecretArn`` alone; each node's host file names
    its server, files and port, so one association feeds three different servers."""
    name = f"certs/mixed-{tmp_path.name}"
    servers: dict[str, Any] = {}
    try:
        for instance, kind in zip(INSTANCES, ("apache", "nginx", "haproxy"), strict=False):
            servers[instance] = start_server(kind, tmp_path / kind, ca)
            register_server(state_manager.hosts, instance, servers[instance], name, host_env)
        new = ca.issue([HOSTNAME])
        arn = put_secret(new, name=name)
        secret = RotatedSecret(arn=arn, name=name, account="123456789012")
        ssm = boto3.client("ssm", region_name=REGION, endpoint_url=moto_endpoint)
        settings = AssociationSettings.from_environment({})  # the stack's defaults: 25%, 10%
        association = converge(secret, ssm, settings)
        (execution,) = state_manager.run_due_associations()
        assert execution.association_id == association
        assert {t.instance_id: t.status.value for t in execution.targets} == dict.fromkeys(servers, "Success")
        assert sorted(t.batch for t in execution.targets) == [0, 1, 2]  # 25% of 3: one at a time
        assert {i: served_serial(s) for i, s in servers.items()} == dict.fromkeys(
            servers, new.certificate.serial_number
        )
    finally:
        for server in servers.values():
            server.stop()
