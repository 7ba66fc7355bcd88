"""``certrotate hosts`` through the installed console script against moto's server.

The records are put the way the installer puts them (PutInventory, type Custom:CertrotateCertificate)
into moto's server, whose SSM inventory is rotation.emulation.ssm_inventory (moto 5.2 has none).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from rotation.cli import ExitCode
from rotation.emulation.ssm_inventory import ssm_inventory_in_moto
from rotation.fleet.view import INVENTORY_TYPE
from tests.support import cli
from tests.support.certs import LocalCA

REGION = "us-east-1"
WORKLOAD_ROLE = "arn:aws:iam::444455556666:role/certrotate/FleetViewRole"


@pytest.fixture
def endpoint(moto_endpoint: str) -> Iterator[str]:
    with ssm_inventory_in_moto():
        yield moto_endpoint


@pytest.fixture(scope="module")
def local_ca() -> LocalCA:
    return LocalCA(name="Hosts CA")


def secret(endpoint: str, name: str, bundle: Any) -> str:
    fields = {"CERTIFICATE_TYPE": "PCA_ISSUED", "COMMON_NAME": "www.certrotate.test", **bundle.to_fields()}
    return cli.make_secret(endpoint, name, fields)


def record(arn: str, bundle: Any, *, status: str = "installed", minutes_ago: int = 1, **extra: str) -> dict[str, str]:
    fingerprint = bundle.fingerprint_sha256.upper()
    return {
        "SecretArn": arn,
        "VersionStage": "AWSCURRENT",
        "CertificateFile": "/etc/ssl/certs/www.pem",
        "KeyFile": "/etc/ssl/private/www.key",
        "ChainFile": "/etc/ssl/certs/www-chain.pem",
        "HttpsPort": "443",
        "Status": status,
        "ExitCode": "6" if status == "failed" else "0",
        "Message": "Apache graceful failed" if status == "failed" else "",
        "RecordedAt": (datetime.now(UTC) - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Serial": bundle.serial_hex,
        "NotAfter": "2099-01-01T00:00:00Z",
        "FingerprintSha256": ":".join(fingerprint[i : i + 2] for i in range(0, 64, 2)),
        "Subject": "www.certrotate.test",
        **extra,
    }


def put(ssm: Any, instance: str, *entries: dict[str, str]) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    item = {"TypeName": INVENTORY_TYPE, "SchemaVersion": "1.0", "CaptureTime": now, "Content": list(entries)}
    ssm.put_inventory(InstanceId=instance, Items=[item])


def test_each_host_is_current_older_failed_or_stale(endpoint: str, local_ca: LocalCA) -> None:
    prefix = f"h{uuid.uuid4().hex[:8]}/"
    old, new = local_ca.issue(["www.certrotate.test"]), local_ca.issue(["www.certrotate.test"])
    arn = secret(endpoint, f"{prefix}www", new)
    ssm = cli.client(endpoint, "ssm")
    put(ssm, "i-0000000000000000a", record(arn, new))
    put(ssm, "i-0000000000000000b", record(arn, old, status="unchanged"))
    put(ssm, "i-0000000000000000c", record(arn, old, status="failed"))
    put(ssm, "i-0000000000000000d", record(arn, new, minutes_ago=61))

    result = cli.certrotate("hosts", "--prefix", prefix, "--output", "json", endpoint=endpoint)
    assert result.returncode == 0, result.stderr
    (fleet,) = json.loads(result.stdout)["secrets"]
    states = {h["instance_id"]: h["state"] for h in fleet["hosts"]}
    assert states == {
        "i-0000000000000000a": "current",
        "i-0000000000000000b": "older",
        "i-0000000000000000c": "failed",
        "i-0000000000000000d": "stale",
    }
    assert fleet["current_serial"] == new.serial_hex and fleet["counts"]["current"] == 1
    assert [h["state"] for h in fleet["hosts"]] == ["failed", "stale", "older", "current"]  # problems first
    assert fleet["hosts"][0]["exit_code"] == 6 and fleet["hosts"][0]["serial"] == old.serial_hex

    table = cli.certrotate("hosts", "--prefix", prefix, "--check", endpoint=endpoint)
    assert table.returncode == ExitCode.FAILED
    assert "1 current, 1 older, 1 failed, 1 stale" in table.stdout and "exit 6: Apache graceful failed" in table.stdout
    assert "3 host record(s) not on the current certificate" in table.stderr
    wider = cli.certrotate("hosts", "--prefix", prefix, "--interval", "60", "--output", "json", endpoint=endpoint)
    assert {h["state"] for h in json.loads(wider.stdout)["secrets"][0]["hosts"]} == {"current", "older", "failed"}


def test_other_accounts_are_read_through_their_role(endpoint: str, local_ca: LocalCA) -> None:
    """moto keys its stores by the account of the caller's credentials: an assumed role in
    444455556666 writes and reads that account's inventory, not the caller's."""
    prefix = f"h{uuid.uuid4().hex[:8]}/"
    bundle = local_ca.issue(["www.certrotate.test"])
    arn = secret(endpoint, f"{prefix}www", bundle)
    sts = cli.client(endpoint, "sts")
    credentials = sts.assume_role(RoleArn=WORKLOAD_ROLE, RoleSessionName="host")["Credentials"]
    workload_ssm = boto3.client(
        "ssm",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    put(workload_ssm, "i-0000000000000000e", record(arn, bundle))

    own = cli.certrotate("hosts", "--prefix", prefix, "--output", "json", endpoint=endpoint)
    assert json.loads(own.stdout)["secrets"][0]["hosts"] == []
    across = cli.certrotate(
        "hosts", "--prefix", prefix, "--role-arn", WORKLOAD_ROLE, "--output", "json", endpoint=endpoint
    )
    assert across.returncode == 0, across.stderr
    (host,) = json.loads(across.stdout)["secrets"][0]["hosts"]
    assert host["account"] == "444455556666" and host["state"] == "current"
    bad = cli.certrotate("hosts", "--role-arn", "444455556666", endpoint=endpoint)
    assert bad.returncode == ExitCode.USAGE and "expected arn:aws:iam::ACCOUNT:role/NAME" in cli.one_error_line(bad)


def test_what_a_host_writes_is_shown_literally_and_bad_records_are_warnings(endpoint: str, local_ca: LocalCA) -> None:
    """Any instance role may PutInventory anything for its instance: terminal escapes and rich
    markup come out as text, and a record that is not one is a warning, never a crash."""
    prefix = f"h{uuid.uuid4().hex[:8]}/"
    bundle = local_ca.issue(["www.certrotate.test"])
    arn = secret(endpoint, f"{prefix}www", bundle)
    ssm = cli.client(endpoint, "ssm")
    hostile = record(
        arn,
        bundle,
        status="failed",
        Message="\x1b[2J[red]pwned[/red]",
        CertificateFile="/x\x07",
        Server="\x1b]0;ngx\x07",
    )
    put(ssm, "i-0000000000000000f", hostile, record(arn, bundle, Status="owned", CertificateFile="/y"))
    result = cli.certrotate("hosts", "--prefix", prefix, endpoint=endpoint)
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "\\x1b]0;ngx\\x07" in result.stdout.replace("\n", "").replace("│", "").replace(" ", "")  # Server too
    assert "\\x1b[2J[red]pwned[/red]" in result.stdout.replace("\n", "").replace("│", "").replace(" ", "")
    assert "warning:" in result.stderr and "'owned'" in result.stderr


def test_the_served_check_is_shown_and_a_stale_worker_fails_check(endpoint: str, local_ca: LocalCA) -> None:
    """The installer's ServedCheck (16 fresh connections after the reload): shown per host, and a
    current host whose check saw a worker present another certificate is not on it everywhere."""
    prefix = f"h{uuid.uuid4().hex[:8]}/"
    old, new = local_ca.issue(["www.certrotate.test"]), local_ca.issue(["www.certrotate.test"])
    arn = secret(endpoint, f"{prefix}www", new)
    ssm = cli.client(endpoint, "ssm")
    stale_check = f"stale: 3/16 serial {old.serial_hex}, new: 13/16"
    put(ssm, "i-0000000000000000a", record(arn, new, ServedCheck="16/16", Server="nginx"))
    put(ssm, "i-0000000000000000b", record(arn, new, status="unchanged", ServedCheck=stale_check, Server="apache"))
    put(ssm, "i-0000000000000000c", record(arn, new))  # an older installer: no ServedCheck, no Server

    result = cli.certrotate("hosts", "--prefix", prefix, "--output", "json", endpoint=endpoint)
    assert result.returncode == 0, result.stderr
    hosts = json.loads(result.stdout)["secrets"][0]["hosts"]
    checks = {h["instance_id"]: h["served_check"] for h in hosts}
    assert checks == {"i-0000000000000000a": "16/16", "i-0000000000000000b": stale_check, "i-0000000000000000c": ""}
    servers = {h["instance_id"]: h["server"] for h in hosts}  # which server each host says it feeds
    assert servers == {"i-0000000000000000a": "nginx", "i-0000000000000000b": "apache", "i-0000000000000000c": ""}
    table = cli.certrotate("hosts", "--prefix", prefix, "--check", endpoint=endpoint)
    assert table.returncode == ExitCode.FAILED
    assert "16/16" in table.stdout and "stale: 3/16" in table.stdout
    assert "1 host record(s) not on the current certificate (1 current but with a worker serving" in table.stderr


def test_revocation_reads_find_the_host_whose_stale_worker_serves_the_serial(endpoint: str, local_ca: LocalCA) -> None:
    """read_records(serials) filters GetInventory on Serial; a host that reports the new certificate
    but whose served check saw a worker present the old one is found by its ServedCheck."""
    from rotation.fleet.inventory import read_records
    from rotation.fleet.view import serves_certificate, still_served_by_stale_worker

    prefix = f"h{uuid.uuid4().hex[:8]}/"
    old, new, other = (local_ca.issue(["www.certrotate.test"]) for _ in range(3))
    arn = secret(endpoint, f"{prefix}www", new)
    ssm = cli.client(endpoint, "ssm")
    instances = [f"i-{uuid.uuid4().hex[:17]}" for _ in range(4)]
    put(ssm, instances[0], record(arn, old))
    put(ssm, instances[1], record(arn, new, ServedCheck=f"stale: 1/16 serial {old.serial_hex}, new: 15/16"))
    put(ssm, instances[2], record(arn, new, ServedCheck=f"stale: 1/16 serial {other.serial_hex}, new: 15/16"))
    put(ssm, instances[3], record(arn, new, ServedCheck="16/16"))
    account = cli.client(endpoint, "sts").get_caller_identity()["Account"]
    reports, problems = read_records(ssm, account, [old.serial_hex])
    assert problems == []
    serving = {
        r.instance_id
        for r in reports
        if serves_certificate(r, old.serial_hex, "") or still_served_by_stale_worker(r, old.serial_hex)
    }
    assert serving == {instances[0], instances[1]}
    assert instances[3] not in {r.instance_id for r in reports}  # a proven host costs nothing to read


def test_state_filters_the_rows_not_the_counts(endpoint: str, local_ca: LocalCA) -> None:
    prefix = f"h{uuid.uuid4().hex[:8]}/"
    old, new = local_ca.issue(["www.certrotate.test"]), local_ca.issue(["www.certrotate.test"])
    arn = secret(endpoint, f"{prefix}www", new)
    ssm = cli.client(endpoint, "ssm")
    put(ssm, "i-0000000000000001a", record(arn, new))
    put(ssm, "i-0000000000000001c", record(arn, old, status="failed"))
    table = cli.certrotate("hosts", "--prefix", prefix, "--state", "failed", endpoint=endpoint)
    assert "1 current, 0 older, 1 failed" in table.stdout and "i-0000000000000001a" not in table.stdout
    (fleet,) = json.loads(
        cli.certrotate("hosts", "--prefix", prefix, "--state", "failed", "--output", "json", endpoint=endpoint).stdout
    )["secrets"]
    assert fleet["counts"]["current"] == 1 and [h["state"] for h in fleet["hosts"]] == ["failed"]


def test_with_no_host_reporting_one_line_says_so_and_check_fails(endpoint: str, local_ca: LocalCA) -> None:
    prefix = f"h{uuid.uuid4().hex[:8]}/"
    for name in ("a", "b"):
        secret(endpoint, f"{prefix}{name}", local_ca.issue(["www.certrotate.test"]))
    result = cli.certrotate("hosts", "--prefix", prefix, "--check", endpoint=endpoint)
    assert result.returncode == ExitCode.FAILED
    assert result.stdout.strip() == f"no host has reported 2 secret(s): {prefix}a, {prefix}b"
    assert "no host has reported any of these secrets" in result.stderr
