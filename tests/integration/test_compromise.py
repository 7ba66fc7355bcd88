"""``certrotate revoke NAME --compromised`` end to end: two loopback Apache hosts, one slow.

What runs for real: moto's server (Secrets Manager, Private CA, DynamoDB for the issuance ledger,
CloudWatch Logs, SSM inventory from rotation.emulation.ssm_inventory), certrotate's rotation
function (moto's RotateSecret runs it), the ``certrotate`` console script, RunUpdateTLS and the
installer through the aws CLI, two Debian apache2 on loopback. What is emulated: the SSM agent.
moto records SendCommand but runs nothing, so :class:`Agents` watches moto's SSM backend for new
commands and runs the document on each targeted host, as its agent would (host B after a delay, or
never when it is "down"). moto's acm-pca RevokeCertificate keeps each revocation on the CA's
backend object (``revoked_certificates``: serial as sent → reason, time): :func:`revocations` reads
that dictionary back. The CA publishes its CRL into moto's S3 (rotation.emulation.pca_crl, its
cadence compressed to 1 s after a revocation); the command ends once the CRL lists the serial.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.acmpca.models import acmpca_backends
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ssm.models import ssm_backends

import rotation.handler
from rotation.build.ssm_documents import DOCUMENTS_DIR
from rotation.cli.local_apache import LocalApache as Apache
from rotation.emulation.pca_crl import CrlSchedule, crl_publisher
from rotation.emulation.pki import create_ca
from rotation.emulation.rotation_service import rotation_function_in_moto
from rotation.emulation.ssm_inventory import ssm_inventory_in_moto
from rotation.emulation.ssm_runner import run_association
from rotation.fleet.crl_facts import write_policy_statement
from rotation.fleet.ledger import LEDGER_TABLE_ENV, create_table
from rotation.fleet.view import normalize_serial
from tests.integration.conftest import HOSTNAME, REGION
from tests.integration.test_convergence import new_host, rotate
from tests.integration.test_install_document import served_serial
from tests.support import cli
from tests.support.certs import LocalCA

INSTALL = DOCUMENTS_DIR / "RunUpdateTLS.yaml"
TABLE = "certrotate-ledger-compromise"


@pytest.fixture
def endpoint(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv(LEDGER_TABLE_ENV, TABLE)
    rotation.handler.reset()
    dynamodb = boto3.client("dynamodb", region_name=REGION, endpoint_url=moto_endpoint)
    if TABLE not in dynamodb.list_tables()["TableNames"]:
        create_table(dynamodb, TABLE)
    with rotation_function_in_moto() as failures, ssm_inventory_in_moto():
        yield moto_endpoint
    rotation.handler.reset()
    assert failures == []


class Agents:
    """The SSM agents of the local hosts: run each new RunUpdateTLS command on its instances."""

    def __init__(self, arn: str, hosts: dict[str, Apache], host_env: dict[str, str]) -> None:
        self.arn, self.hosts, self.host_env = arn, hosts, host_env
        self.delay: dict[str, float] = {}
        self.down: set[str] = set()
        self._seen = {c.command_id for c in self._commands()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self.errors: list[str] = []

    @staticmethod
    def _commands() -> list[Any]:
        return list(ssm_backends[DEFAULT_ACCOUNT_ID][REGION]._commands)

    def pass_(self, *instances: str) -> None:
        """One association pass on these instances (the initial install)."""
        for instance in instances:
            self._run(instance)

    def _run(self, instance: str) -> None:
        host = self.hosts[instance]
        parameters = {"SecretArn": self.arn, **host.document_parameters()}
        environment = {**self.host_env, **host.installer_environment()}
        (result,) = run_association(INSTALL, parameters, {instance: environment}).values()
        if not result.ok:
            self.errors.append(f"{instance}: {result.stderr[-300:]}")

    def _watch(self) -> None:
        timers: list[threading.Timer] = []
        while not self._stop.is_set():
            for command in self._commands():
                if command.command_id in self._seen or command.document_name != "RunUpdateTLS":
                    continue
                self._seen.add(command.command_id)
                for instance in command.instance_ids:
                    if instance in self.hosts and instance not in self.down:
                        timer = threading.Timer(self.delay.get(instance, 0.0), self._run, (instance,))
                        timers.append(timer)
                        timer.start()
            time.sleep(0.1)
        for timer in timers:
            timer.join(30)

    def __enter__(self) -> Agents:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(60)


def revocations(ca_arn: str) -> dict[str, str]:
    ca = acmpca_backends[DEFAULT_ACCOUNT_ID][REGION].certificate_authorities[ca_arn]
    entries = ca.revoked_certificates.items()
    return {normalize_serial(serial): str(entry["revocation_reason"]) for serial, entry in entries}


def revoke(endpoint: str, name: str, *flags: str) -> tuple[int, dict[str, Any], str]:
    result = cli.certrotate(
        "revoke", name, "--compromised", "--output", "json", "--ledger-table", TABLE, *flags, endpoint=endpoint
    )
    return result.returncode, json.loads(result.stdout or "{}"), result.stderr


def events(report: dict[str, Any]) -> list[str]:
    return [
        e["event"] + (" " + e["detail"].split()[0] if e["event"] in ("moved", "timeout") else "")
        for e in report["timeline"]
    ]


@pytest.mark.slow
def test_compromise_replaces_everywhere_then_revokes_and_a_stuck_host_holds_it(
    endpoint: str, tmp_path: Path, ca: LocalCA, host_env: dict[str, str]
) -> None:
    sm = boto3.client("secretsmanager", region_name=REGION, endpoint_url=endpoint)
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
    bucket = f"crl-{tmp_path.name.lower().replace('_', '-')[-40:]}"
    s3.create_bucket(Bucket=bucket)
    statement = {
        **write_policy_statement(bucket, "any"),
        "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}},
    }
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Statement": [statement]}))
    pca = create_ca(
        boto3.client("acm-pca", region_name=REGION, endpoint_url=endpoint),
        key="EC",
        revocation={"CrlConfiguration": {"Enabled": True, "S3BucketName": bucket}},
    )
    name = f"compromise/{tmp_path.name}"
    fields = {
        "CERTIFICATE_TYPE": "PCA_ISSUED",
        "CA_ARN": pca,
        "COMMON_NAME": HOSTNAME,
        "KEY_ALGORITHM": "EC_prime256v1",
    }
    arn = str(sm.create_secret(Name=name, SecretString=json.dumps(fields))["ARN"])
    # The secret's association targets: EC2 instances tagged certrotate:secret = its name (moto
    # resolves SendCommand's tag targets to them, as SSM does).
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=endpoint)
    tags = [{"ResourceType": "instance", "Tags": [{"Key": "certrotate:secret", "Value": name}]}]
    HOST_A, HOST_B = (
        str(
            ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, TagSpecifications=tags)["Instances"][0][
                "InstanceId"
            ]
        )
        for _ in range(2)
    )
    hosts = {HOST_A: new_host(tmp_path / "a", ca), HOST_B: new_host(tmp_path / "b", ca)}
    a, b = f"123456789012/{HOST_A}", f"123456789012/{HOST_B}"
    try:
        first = rotate(sm, arn)
        with Agents(arn, hosts, host_env) as agents, crl_publisher(CrlSchedule(timedelta(seconds=1))):
            agents.pass_(HOST_A, HOST_B)
            assert {format(served_serial(h), "X") for h in hosts.values()} == {first}

            code, plan, _ = revoke(endpoint, name, "--dry-run")
            assert code == 0 and plan["dry_run"] and plan["serial"] == first
            assert plan["plan"][-2] == "revoke KEY_COMPROMISE" and HOST_B in plan["plan"][1]
            assert plan["plan"][-1] == "wait until the serial is in the CA's published CRL"
            assert f"tagged certrotate:secret={name}" in plan["plan"][1]
            current = json.loads(sm.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"])
            assert current["CERTIFICATE_SERIAL"] == first and revocations(pca) == {}  # nothing happened

            # B's agent is slow: it installs 4 s after the command; the command waits for it.
            agents.delay[HOST_B] = 4.0
            code, report, stderr = revoke(endpoint, name, "--timeout", "60")
            assert code == 0, stderr
            second = report["new_serial"]
            assert report["serial"] == first != second and report["revoked"] and report["hosts_not_moved"] == []
            assert events(report) == [
                "found", "rotating", "rotated", "installed", f"moved {a}", f"moved {b}", "revoked", "published"
            ]  # fmt: skip
            moved_b, revoked_at, published_at = (e["seconds"] for e in report["timeline"][-3:])
            assert moved_b >= 4.0 and revoked_at >= moved_b  # revoked only after the slow host moved
            assert published_at >= revoked_at and report["published"]["url"].endswith(".crl")
            times = report["times"]
            assert times["hosts_moved_at"] <= times["revoked_at"] and times["published_at"]
            assert revocations(pca) == {first: "KEY_COMPROMISE"}
            assert {format(served_serial(h), "X") for h in hosts.values()} == {second}

            # B is down: it never moves; the compromised certificate stays valid and the exit is 1.
            agents.down.add(HOST_B)
            code, report, stderr = revoke(endpoint, name, "--timeout", "10")  # each install proves 16 connections
            assert code == 1
            third = report["new_serial"]
            assert report["hosts_not_moved"] == [b] and not report["revoked"]
            assert events(report)[-2:] == [f"moved {a}", f"timeout {b}"]
            assert f"{b} still serves serial {second}" in stderr and "NOT revoked" in stderr
            assert revocations(pca) == {first: "KEY_COMPROMISE"}

            # --immediately: revoked before the rotation, whatever B does; still exit 1 for B.
            code, report, stderr = revoke(endpoint, name, "--timeout", "10", "--immediately")
            assert code == 1 and report["revoked"] and report["serial"] == third
            assert events(report)[:3] == ["found", "revoked", "rotating"]
            assert revocations(pca) == {first: "KEY_COMPROMISE", third: "KEY_COMPROMISE"}
            assert format(served_serial(hosts[HOST_B]), "X") == second  # B really kept serving the old one
            fourth = report["new_serial"]

            # status NAME: every certificate the rotations issued, newest first, with its state.
            result = cli.certrotate("status", name, "--output", "json", "--ledger-table", TABLE, endpoint=endpoint)
            assert result.returncode == 0, result.stderr
            (detail,) = json.loads(result.stdout)
            states = [(c["serial"], c["state"]) for c in detail["certificates"]]
            assert states == [
                (fourth, "current"),
                (third, "revoked (KEY_COMPROMISE)"),
                (second, "superseded, valid"),  # B still serves it: never revoked behind its back
                (first, "revoked (KEY_COMPROMISE)"),
            ]

            # The attacker writes another secret holding this secret's certificate: nothing is revoked.
            stolen = sm.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"]
            sm.create_secret(Name=f"{name}-copy", SecretString=stolen)
            result = cli.certrotate(
                "revoke", f"{name}-copy", "--compromised", "--ledger-table", TABLE, endpoint=endpoint
            )
            assert result.returncode == 3
            assert "is not in the issuance ledger" in cli.the_error(result) and fourth in cli.the_error(result)
            assert fourth not in revocations(pca)
        assert agents.errors == []
    finally:
        for host in hosts.values():
            host.stop()
