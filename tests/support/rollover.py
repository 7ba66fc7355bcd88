"""A CA rollover on moto in process, for the rollover tests: the rotation function reading the policy
parameter, hosts' records as the installer puts them, and the command run through ``main()``."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

import rotation.handler
import rotation.telemetry
from rotation.cli import main
from rotation.emulation import rotation_service
from rotation.emulation.rollover_world import World, build_world
from rotation.emulation.rotation_service import rotation_function_in_moto
from rotation.emulation.ssm_inventory import ssm_inventory_in_moto
from rotation.fleet.ledger import Ledger
from rotation.fleet.trust_view import TRUST_INVENTORY_TYPE
from rotation.fleet.view import INVENTORY_TYPE
from rotation.issuance.policy_store import PolicySource
from rotation.lifecycle.engine import build_services

READER = "111111111111"  # a workload account the bundle's resource policy lets read it
OUTSIDER = "333333333333"  # an account that may not read the bundle
NOW = "%Y-%m-%dT%H:%M:%SZ"


@dataclass
class Rig:
    world: World
    aws: Any
    ssm: Any
    failures: list[BaseException]
    capfd: pytest.CaptureFixture[str]

    def cli(self, *argv: str) -> tuple[int, Any, str]:
        """``certrotate ca-rollover …`` through main(): exit code, the JSON printed, stderr."""
        self.capfd.readouterr()
        code = main(
            ["ca-rollover", *argv, "--policy-parameter", self.world.parameter, "--policy-ttl", "0", "--output", "json"]
        )
        captured = self.capfd.readouterr()
        return code, json.loads(captured.out) if captured.out.strip() else None, captured.err

    def account_ssm(self, account: str) -> Any:
        """An SSM client in another account (moto maps an assumed role's credentials to its account)."""
        sts = boto3.client("sts", region_name="us-east-1")
        creds = sts.assume_role(RoleArn=role(account), RoleSessionName="host-root")["Credentials"]
        return boto3.client(
            "ssm",
            region_name="us-east-1",
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        )

    def bundle_pem(self) -> str:
        value = self.aws.sm.get_secret_value(SecretId=self.world.bundle_arn, VersionStage="AWSCURRENT")
        return str(json.loads(value["SecretString"])["TRUST_BUNDLE_PEM"])

    def secret_fields(self, arn: str) -> dict[str, Any]:
        value = self.aws.sm.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")
        return dict(json.loads(value["SecretString"]))


def role(account: str) -> str:
    return f"arn:aws:iam::{account}:role/certrotate-fleet-view"


def trust_record(world: World, fingerprint: str, status: str = "installed") -> dict[str, str]:
    """A ``Custom:CertrotateTrustBundle`` record as the installer's trust_record.py writes it."""
    now = datetime.now(UTC).strftime(NOW)
    return {
        "BundleName": world.bundle,
        "BundleArn": world.bundle_arn,
        "FingerprintSha256": fingerprint,
        "Files": "/etc/apache2/certrotate/client-ca.pem",
        "InstalledAt": now,
        "Status": status,
        "ExitCode": "0",
        "Message": "",
        "RecordedAt": now,
    }


def put_trust(ssm: Any, instance: str, record: dict[str, str]) -> None:
    now = datetime.now(UTC).strftime(NOW)
    item = {"TypeName": TRUST_INVENTORY_TYPE, "SchemaVersion": "1.0", "CaptureTime": now, "Content": [record]}
    ssm.put_inventory(InstanceId=instance, Items=[item])


def put_served(ssm: Any, instance: str, secret_arn: str, serial: str, fingerprint: str) -> None:
    """A ``Custom:CertrotateCertificate`` record: the host serves that certificate of the secret."""
    now = datetime.now(UTC).strftime(NOW)
    record = {
        "SecretArn": secret_arn,
        "VersionStage": "AWSCURRENT",
        "CertificateFile": "/etc/ssl/certs/web.pem",
        "Status": "installed",
        "ExitCode": "0",
        "RecordedAt": now,
        "Serial": serial,
        "FingerprintSha256": fingerprint,
    }
    item = {"TypeName": INVENTORY_TYPE, "SchemaVersion": "1.0", "CaptureTime": now, "Content": [record]}
    ssm.put_inventory(InstanceId=instance, Items=[item])


@pytest.fixture
def rollover_secrets() -> int:
    """How many secrets name the old CA (a test overrides it with ``parametrize``)."""
    return 4


@pytest.fixture
def rig(
    aws: Any, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], rollover_secrets: int
) -> Iterator[Rig]:
    """The rotation function reads the policy parameter on every step (no cache: ``--policy-ttl 0``)."""
    ssm = boto3.client("ssm", region_name="us-east-1")
    from tests.conftest import LEDGER_TABLE

    services = build_services(
        aws.sm,
        lambda region: aws.pca,
        lambda region: aws.acm,
        ledger=Ledger(aws.dynamodb, LEDGER_TABLE),
        policy=PolicySource(lambda: ssm, "/certrotate/issuance-policy", None, ttl_seconds=0),
    )
    monkeypatch.setattr(rotation.handler, "_services", services)
    monkeypatch.setenv("CERTROTATE_LEDGER_TABLE", LEDGER_TABLE)
    # The function's log lines and metrics would interleave with the command's JSON on stdout (its
    # rotations run in threads meanwhile): its lines go to a buffer; the autouse check still reads them.
    monkeypatch.setattr(rotation.telemetry, "_emit", lambda *args, **kwargs: None)
    for handler in logging.getLogger("certrotate").handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            monkeypatch.setattr(handler, "stream", io.StringIO())
    with ssm_inventory_in_moto(), rotation_function_in_moto() as failures:
        world = build_world(
            aws.sm,
            aws.pca,
            ssm,
            secrets=rollover_secrets,
            rotate=rotation_service.rotate,
            reader_accounts=[READER],
        )
        yield Rig(world, aws, ssm, failures, capfd)
