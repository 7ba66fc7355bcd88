"""``certrotate hosts`` shows the CRL each mutual-TLS host installed (issue 28), read from the
``Custom:CertrotateCrl`` records the installer puts (crl_record.py), here put the same way into moto's
server (SSM inventory from rotation.emulation.ssm_inventory, which moto 5.2 lacks) in an account of
the test's own, read through ``--role-arn`` as the workload stacks' FleetViewRole is."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from rotation.emulation.ssm_inventory import ssm_inventory_in_moto
from rotation.fleet.crl_view import CRL_INVENTORY_TYPE
from tests.functional.test_cli_hosts import put as put_certificate
from tests.functional.test_cli_hosts import record as certificate_record
from tests.functional.test_cli_hosts import secret
from tests.support import cli
from tests.support.certs import LocalCA

REGION = "us-east-1"
_TIME = "%Y-%m-%dT%H:%M:%SZ"


@pytest.fixture
def endpoint(moto_endpoint: str) -> Iterator[str]:
    with ssm_inventory_in_moto():
        yield moto_endpoint


def workload(endpoint: str) -> tuple[str, Any]:
    """A fresh account's FleetViewRole ARN and an SSM client of that account (moto keys its stores by it)."""
    role = f"arn:aws:iam::{random.randrange(10**11, 10**12)}:role/certrotate/FleetViewRole"
    credentials = cli.client(endpoint, "sts").assume_role(RoleArn=role, RoleSessionName="host")["Credentials"]
    ssm = boto3.client(
        "ssm",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    return role, ssm


def crl_record(ca: str, *, next_in: timedelta = timedelta(days=6), status: str = "installed") -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "CaName": ca,
        "CrlNumber": "1765080000123",
        "ThisUpdate": (now + next_in - timedelta(days=7)).strftime(_TIME),
        "NextUpdate": (now + next_in).strftime(_TIME),
        "Revoked": "3",
        "Source": "s3://crl-bucket/crl/0a1b2c3d.crl",
        "File": "/etc/apache2/certrotate/client-crl.pem",
        "Status": status,
        "ExitCode": "4" if status == "failed" else "0",
        "Message": "the CRL of Client CA A is older than the installed one" if status == "failed" else "",
        "RecordedAt": now.strftime(_TIME),
    }


def put(ssm: Any, instance: str, *entries: dict[str, str]) -> None:
    item = {
        "TypeName": CRL_INVENTORY_TYPE,
        "SchemaVersion": "1.0",
        "CaptureTime": datetime.now(UTC).strftime(_TIME),
        "Content": list(entries),
    }
    ssm.put_inventory(InstanceId=instance, Items=[item])


def hosts(endpoint: str, role: str, *args: str) -> Any:
    return cli.certrotate("hosts", "--role-arn", role, *args, endpoint=endpoint)


def test_each_hosts_crl_is_shown_and_check_fails_on_an_expired_crl_or_a_failed_refresh(endpoint: str) -> None:
    role, ssm = workload(endpoint)
    ca = f"Client CA {uuid.uuid4().hex[:6]}"
    fresh, expired, failed = (f"i-{uuid.uuid4().hex[:17]}" for _ in range(3))
    put(ssm, fresh, crl_record(ca))
    put(ssm, expired, crl_record(ca, next_in=timedelta(minutes=-5)))
    put(ssm, failed, crl_record(ca, status="failed"))

    listed = hosts(endpoint, role, "--output", "json")
    assert listed.returncode == 0, listed.stderr  # without --check the command reports, it does not judge
    crls = {c["instance_id"]: c for c in json.loads(listed.stdout)["crls"]}
    assert set(crls) == {fresh, expired, failed}
    assert [c["instance_id"] for c in json.loads(listed.stdout)["crls"]] == [failed, expired, fresh]  # worst first
    assert {i: crls[i]["health"] for i in crls} == {fresh: "ok", expired: "expired", failed: "failed"}
    assert crls[fresh]["ca_name"] == ca and crls[fresh]["crl_number"] == "1765080000123"
    assert crls[failed]["exit_code"] == "4" and crls[fresh]["revoked"] == "3"

    table = hosts(endpoint, role)
    assert "CRLs: 1 CA(s) on 3 host record(s)" in table.stdout and "1765080000123" in table.stdout
    assert "expired" in table.stdout and "failed" in table.stdout

    checked = hosts(endpoint, role, "--check")
    assert checked.returncode == 1
    assert f"{expired} CRL of {ca}: past its nextUpdate" in checked.stderr
    assert f"{failed} CRL of {ca}: the latest refresh failed (exit 4:" in checked.stderr
    assert fresh not in checked.stderr


def test_check_passes_when_every_crl_is_current_and_every_host_on_its_certificate(endpoint: str) -> None:
    """The same account once its hosts refreshed: --check exits 0 (a current certificate host record
    too, since --check also fails when no host reports any certificate)."""
    role, ssm = workload(endpoint)
    bundle = LocalCA(name="Hosts CA").issue(["www.certrotate.test"])
    arn = secret(endpoint, f"h{uuid.uuid4().hex[:8]}/www", bundle)
    instance = f"i-{uuid.uuid4().hex[:17]}"
    put_certificate(ssm, instance, certificate_record(arn, bundle))
    put(ssm, instance, crl_record("Client CA A"), crl_record("Client CA B", next_in=timedelta(hours=1)))

    checked = hosts(endpoint, role, "--check")
    assert checked.returncode == 0, checked.stderr
    assert "CRLs: 2 CA(s) on 2 host record(s)" in checked.stdout

    put(ssm, instance, crl_record("Client CA A"), crl_record("Client CA B", next_in=timedelta(seconds=-1)))
    again = hosts(endpoint, role, "--check")
    assert again.returncode == 1 and "CRL of Client CA B: past its nextUpdate" in again.stderr
