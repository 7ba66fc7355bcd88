"""Convergence end to end: two loopback Apache hosts, real rotations, State Manager passes, the fleet view.

What runs for real: moto's server (Secrets Manager, Private CA, STS, and SSM inventory from
rotation.emulation.ssm_inventory, which moto lacks), certrotate's rotation function (moto's
RotateSecret runs it, rotation_function_in_moto), the aws CLI, RunUpdateTLS and the installer, two
Debian apache2 on loopback, and the ``certrotate hosts`` console script. What is emulated: State
Manager, which moto cannot run; each association pass is ``run_association`` over the instances
that are up, called here in the order the schedule (and StartAssociationsOnce) would call it.

Host A serves the first certificate, is stopped during the second rotation and comes back; host B
is launched only after that rotation. The fleet view shows A current → older → current, and B
absent → current.
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
from rotation.build.ssm_documents import DOCUMENTS_DIR
from rotation.cli.local_apache import LocalApache as Apache
from rotation.cli.local_apache import apache_available, free_port
from rotation.emulation.pki import create_ca
from rotation.emulation.rotation_service import LAMBDA_ARN, rotation_function_in_moto
from rotation.emulation.ssm_inventory import ssm_inventory_in_moto
from rotation.emulation.ssm_runner import run_association
from tests.integration.conftest import HOSTNAME, REGION, require
from tests.integration.test_install_document import served_serial
from tests.support import cli
from tests.support.certs import LocalCA

HOST_A, HOST_B = "i-0aaaaaaaaaaaaaaaa", "i-0bbbbbbbbbbbbbbbb"
INSTALL = DOCUMENTS_DIR / "RunUpdateTLS.yaml"


@pytest.fixture
def endpoint(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    rotation.handler.reset()
    with rotation_function_in_moto() as failures, ssm_inventory_in_moto():
        yield moto_endpoint
    rotation.handler.reset()
    assert failures == []


def new_host(root: Path, ca: LocalCA) -> Apache:
    """A freshly launched instance: Apache up with the image's placeholder certificate."""
    require(apache_available())
    host = Apache(root, free_port())
    host.write_bundle(ca.issue([HOSTNAME]))
    host.write_installer_config()
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


@pytest.mark.slow
def test_a_stopped_host_and_a_late_host_converge(
    endpoint: str, tmp_path: Path, ca: LocalCA, host_env: dict[str, str]
) -> None:
    sm = boto3.client("secretsmanager", region_name=REGION, endpoint_url=endpoint)
    pca = create_ca(boto3.client("acm-pca", region_name=REGION, endpoint_url=endpoint), key="EC")
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
    up: dict[str, Apache] = {HOST_A: host_a}

    def association_pass() -> dict[str, int]:
        """One run of the association (schedule or StartAssociationsOnce) on the instances that are up.

        Each local host has its own files and port, so each gets its own parameters; on AWS one
        association per secret carries the same parameters to every tagged instance."""
        results = {}
        for instance, host in up.items():
            parameters = {"SecretArn": arn, **host.document_parameters()}
            environment = {**host_env, **host.installer_environment()}
            (result,) = run_association(INSTALL, parameters, {instance: environment}).values()
            assert result.ok, result.stderr
            results[instance] = result.steps[-1].exit_code
        return results

    try:
        first = rotate(sm, arn)
        assert association_pass() == {HOST_A: 0}
        assert format(served_serial(host_a), "X") == first
        assert fleet(endpoint, name) == {HOST_A: "current"}

        up.pop(HOST_A)  # the instance is stopped: no agent, no Apache
        host_a.stop()
        second = rotate(sm, arn)
        assert association_pass() == {}  # RotationSucceeded → StartAssociationsOnce: nobody is up
        assert fleet(endpoint, name) == {HOST_A: "older"}

        host_b = new_host(tmp_path / "b", ca)  # launched by the Auto Scaling group after the rotation
        assert fleet(endpoint, name) == {HOST_A: "older"}  # B has not reported: absent
        up[HOST_B] = host_b
        assert association_pass() == {HOST_B: 0}  # the association applies to a new instance at once
        assert fleet(endpoint, name) == {HOST_A: "older", HOST_B: "current"}

        host_a.start()  # the instance starts again, still with the first certificate
        up[HOST_A] = host_a
        assert format(served_serial(host_a), "X") == first
        assert association_pass() == {HOST_B: 0, HOST_A: 0}  # the next scheduled run
        assert fleet(endpoint, name) == {HOST_A: "current", HOST_B: "current"}
        assert format(served_serial(host_a), "X") == format(served_serial(host_b), "X") == second != first
    finally:
        host_a.stop()
        if host_b is not None:
            host_b.stop()
