"""Issue 16 item 7: ``certrotate revoke --compromised`` sends the install only to the secret's
association targets, and host records only watch progress.

What runs for real: moto's server (Secrets Manager with certrotate's rotation function, Private CA,
DynamoDB, EC2 instances with their tags, SSM inventory from rotation.emulation.ssm_inventory), the
``certrotate`` console script. moto records SendCommand and resolves its tag targets to the tagged
EC2 instances (as SSM does), but runs nothing: no host ever moves, so the command times out.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from moto.acmpca.models import acmpca_backends
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ssm.models import ssm_backends

import rotation.handler
from rotation.emulation.ssm_inventory import ssm_inventory_in_moto
from rotation.fleet.ledger import LEDGER_TABLE_ENV, create_table
from tests.support.cli import REGION, certrotate, client, rotated

TABLE = "certrotate-ledger-targets"


@pytest.fixture
def ledger_endpoint(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv(LEDGER_TABLE_ENV, TABLE)
    rotation.handler.reset()
    if TABLE not in client(endpoint, "dynamodb").list_tables()["TableNames"]:  # one moto server per session
        create_table(client(endpoint, "dynamodb"), TABLE)
    with ssm_inventory_in_moto():
        yield endpoint
    rotation.handler.reset()


def instance(endpoint: str, secret_name: str) -> str:
    ec2 = client(endpoint, "ec2")
    tags = [{"ResourceType": "instance", "Tags": [{"Key": "certrotate:secret", "Value": secret_name}]}]
    reply = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, TagSpecifications=tags)
    return str(reply["Instances"][0]["InstanceId"])


def record(endpoint: str, instance_id: str, secret_arn: str, serial: str) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    content = {
        "SecretArn": secret_arn,
        "CertificateFile": "/etc/ssl/certs/www.pem",
        "Status": "unchanged",
        "ExitCode": "0",
        "RecordedAt": now,
        "Serial": serial,
        "FingerprintSha256": "00" * 32,
    }
    client(endpoint, "ssm").put_inventory(
        InstanceId=instance_id,
        Items=[
            {
                "TypeName": "Custom:CertrotateCertificate",
                "SchemaVersion": "1.0",
                "CaptureTime": now,
                "Content": [content],
            }
        ],
    )


@pytest.mark.slow
def test_a_forged_record_cannot_steer_the_install_and_only_watches_progress(ledger_endpoint: str, ca: str) -> None:
    """Root on instance F (which serves secret api) rewrites F's record to claim secret web and its
    current serial. Before, ``revoke web --compromised`` sent RunUpdateTLS with web's ARN to F (and
    to nobody else). Now the command goes to web's association targets (tag certrotate:secret=web),
    and F, which reports the compromised serial, is waited for: it does not move, so nothing is
    revoked and the exit is 1."""
    endpoint = ledger_endpoint
    sm = client(endpoint, "secretsmanager")
    web = rotated(endpoint, "web", ca)
    current = json.loads(sm.get_secret_value(SecretId=web, VersionStage="AWSCURRENT")["SecretString"])
    serial = current["CERTIFICATE_SERIAL"]
    tagged = instance(endpoint, "web")
    forger = instance(endpoint, "api")
    record(endpoint, forger, web, serial)

    # --timeout bounds the rotation's wait as well as the hosts': at 2 s a loaded machine timed the
    # rotation out (exit 1, no report, nothing sent). 10 s lets it finish; the hosts never move.
    result = certrotate(
        "revoke",
        "web",
        "--compromised",
        "--timeout",
        "10",
        "--ledger-table",
        TABLE,
        "--output",
        "json",
        endpoint=endpoint,
    )
    assert result.returncode == 1, result.stderr
    assert "did not reach AWSCURRENT" not in result.stderr, result.stderr  # the hosts were waited for
    report: dict[str, Any] = json.loads(result.stdout)
    backend = ssm_backends[DEFAULT_ACCOUNT_ID][REGION]
    commands = [c for c in backend._commands if c.parameters.get("SecretArn") == [web]]
    (command,) = commands
    assert command.targets == [{"Key": "tag:certrotate:secret", "Values": ["web"]}]
    assert command.instance_ids == [tagged]  # never the forger's instance
    assert command.parameters == {"SecretArn": [web]}
    assert report["revoked"] is False
    assert sorted(report["hosts_not_moved"]) == sorted([f"123456789012/{tagged}", f"123456789012/{forger}"])
    revoked = acmpca_backends[DEFAULT_ACCOUNT_ID][REGION].certificate_authorities[ca].revoked_certificates
    assert revoked == {}


def test_revoke_reports_each_host_once_and_no_empty_parentheses(ledger_endpoint: str, ca: str) -> None:
    """Issue 29: 38 hosts gave 77 lines (a stdout event and a stderr progress line each); a command
    that reached no instance said "()"."""
    import uuid

    endpoint = ledger_endpoint
    name = f"lines-{uuid.uuid4().hex[:8]}"
    rotated(endpoint, name, ca)
    hosts = [instance(endpoint, name) for _ in range(3)]
    result = certrotate("revoke", name, "--compromised", "--timeout", "2", "--ledger-table", TABLE, endpoint=endpoint)
    assert result.returncode == 1, result.stderr
    assert not [line for line in result.stderr.splitlines() if "pending of" in line], result.stderr
    for host in hosts:  # one event when sent (all in one line) and one when it did not move
        assert sum(host in line for line in result.stdout.splitlines()) == 2, result.stdout
    alone = f"alone-{uuid.uuid4().hex[:8]}"
    rotated(endpoint, alone, ca)
    nowhere = certrotate("revoke", alone, "--compromised", "--timeout", "2", "--ledger-table", TABLE, endpoint=endpoint)
    assert "the command reached no instance; waiting" in nowhere.stdout and "()" not in nowhere.stdout
