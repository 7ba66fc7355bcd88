"""Every ``certrotate`` command end to end: the installed console script, in a subprocess, against
moto's server. moto cannot invoke a rotation Lambda, so its RotateSecret runs certrotate's handler
(``rotation_function_in_moto``); moto's ACM is completed by ``real_acm_chain`` as elsewhere.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from rotation.cli.local_apache import free_port
from tests.support.cli import (
    LAMBDA,
    certrotate,
    client,
    error_lines,
    make_secret,
    one_error_line,
    pca_fields,
    rotated,
    rotation_settled,
    the_error,
)


def test_create_secret_rotate_and_status(endpoint: str, ca: str) -> None:
    created = certrotate(
        "create-secret",
        "cli/web",
        "--type",
        "PCA_ISSUED",
        "--ca-arn",
        ca,
        "--common-name",
        "web.example.internal",
        "--san",
        "10.0.0.9",
        "--key-algorithm",
        "EC_prime256v1",
        "--renewal-policy",
        "WHEN_DUE",
        "--tag",
        "team=web",
        "--rotation-lambda-arn",
        LAMBDA,
        "--schedule",
        "rate(4 hours)",
        endpoint=endpoint,
    )
    assert created.returncode == 0, created.stderr
    assert "valid: PCA_ISSUED web.example.internal" in created.stdout and "CA checked" in created.stdout
    arn = re.search(r"created (arn:\S+)", created.stdout).group(1)  # type: ignore[union-attr]
    rotation_settled(endpoint, arn)  # the first rotation, started by create-secret, runs on in moto

    first = certrotate("rotate", arn, "--wait", "--timeout", "60", endpoint=endpoint)
    assert first.returncode == 0, first.stderr
    before, after = re.search(r"serial (\S+) -> ([0-9A-F]+)", first.stdout).groups()  # type: ignore[union-attr]
    assert before != after  # WHEN_DUE and not due, yet rotate-now gives a fresh certificate

    make_secret(endpoint, "cli/not-a-certificate", {"password": "x"})
    status = certrotate("status", "--prefix", "cli/", "--json", endpoint=endpoint)
    assert status.returncode == 0, status.stderr
    (row,) = [r for r in json.loads(status.stdout) if r["name"] == "cli/web"]
    assert row["certificate_type"] == "PCA_ISSUED" and row["key_algorithm"] == "EC_prime256v1"
    assert row["serial"] == after and 364 <= row["days_to_expiry"] <= 366
    assert row["rotation_enabled"] is True and "rotation-disabled" not in row["flags"]
    assert all(r["name"] != "cli/not-a-certificate" for r in json.loads(status.stdout))

    table = certrotate("status", "--tag", "team=web", endpoint=endpoint)
    assert table.returncode == 0 and "cli/web" in table.stdout and "web.example.internal" in table.stdout


def test_status_flags_health(endpoint: str, ca: str) -> None:
    make_secret(endpoint, "health/never-rotated", pca_fields(ca))
    rows = json.loads(certrotate("status", "--prefix", "health/", "--json", endpoint=endpoint).stdout)
    (row,) = rows
    assert {"no-certificate", "rotation-disabled"} <= set(row["flags"])


def test_rotate_of_an_unknown_secret_is_one_clear_line(endpoint: str) -> None:
    result = certrotate("rotate", "no/such/secret", endpoint=endpoint)
    assert result.returncode == 3
    assert "ResourceNotFoundException" in one_error_line(result)


def test_rotate_wait_reports_a_failed_rotation_within_seconds(endpoint: str, ca: str) -> None:
    # Rotation works, then the secret's writer asks for a key Private CA cannot sign: the next
    # rotation fails in createSecret (RotateSecret itself succeeds, as it does in AWS).
    arn = rotated(endpoint, "cli/broken", ca)
    broken = {**pca_fields(ca), "KEY_ALGORITHM": "TYPE_DSA"}
    client(endpoint, "secretsmanager").put_secret_value(SecretId=arn, SecretString=json.dumps(broken))
    started = time.monotonic()
    result = certrotate("rotate", arn, "--wait", "--timeout", "120", endpoint=endpoint)
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    # The step and the rotation function's own error, read from its log lines for this token.
    error = the_error(result)
    assert "failed at createSecret" in error and "KEY_ALGORITHM='TYPE_DSA'" in error
    assert elapsed < 15, elapsed
    # Never silent: the wait printed where the rotation was (plain lines: stderr is no terminal).
    assert "waiting: cli/broken failed" in result.stderr


def test_validate_a_file_offline_and_against_the_ca(endpoint: str, ca: str, tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(pca_fields(ca)))
    assert certrotate("validate", str(good), "--offline").returncode == 0
    checked = certrotate("validate", str(good), endpoint=endpoint)
    assert checked.returncode == 0 and "CA checked" in checked.stdout

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(pca_fields(ca, KEY_ALGORITHM="TYPE_DSA", SIGNING_HASH="sha1", COMMON_NAME="bad name")))
    result = certrotate("validate", str(bad), "--offline")
    assert result.returncode == 3
    lines = error_lines(result)
    assert len(lines) == 3
    for field in ("KEY_ALGORITHM='TYPE_DSA'", "SIGNING_HASH='sha1'", "COMMON_NAME='bad name'"):
        assert any(field in line and "allowed" in line for line in lines), field


def test_validate_a_secret_against_its_ca(endpoint: str, ca: str) -> None:
    arn = make_secret(endpoint, "cli/ecdsa-on-rsa", pca_fields(ca, SIGNING_ALGORITHM="ECDSA"))
    result = certrotate("validate", arn, endpoint=endpoint)
    assert result.returncode == 3
    assert "SIGNING_ALGORITHM='ECDSA'" in one_error_line(result)
    missing_ca = ca[:-12] + "000000000000"
    arn = make_secret(endpoint, "cli/missing-ca", pca_fields(missing_ca))
    result = certrotate("validate", arn, endpoint=endpoint)
    assert result.returncode == 3 and "no such Private CA" in one_error_line(result)


def test_deploy_to_tagged_instances(endpoint: str, ca: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.ssm.models import Command

    # moto adds every instance of the account to a command sent to InstanceIds alone (no Targets: its
    # EC2 lookup without a filter); SSM sends it to exactly those ids. Other tests' instances share
    # this moto server, so without this the second deploy below counted them too.
    resolve = Command._get_instance_ids_from_targets
    monkeypatch.setattr(Command, "_get_instance_ids_from_targets", lambda self: resolve(self) if self.targets else [])
    ec2 = client(endpoint, "ec2")
    ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)  # another instance of the account
    reservation = ec2.run_instances(
        ImageId="ami-12c6146b",
        MinCount=2,
        MaxCount=2,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "certrotate", "Value": "web"}]}],
    )
    instances = sorted(i["InstanceId"] for i in reservation["Instances"])
    arn = rotated(endpoint, "cli/deployed", ca)  # deploy refuses a secret with no certificate yet
    result = certrotate("deploy", arn, "--targets", "tag:certrotate=web", "--json", endpoint=endpoint)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)  # only JSON on stdout
    assert [r["instance_id"] for r in rows] == instances and {r["status"] for r in rows} == {"Success"}

    # moto runs no document and reports Success; a failed host is what it cannot produce.
    original = Command.get_invocation

    def failing(self: Any, instance_id: str, plugin_name: Any) -> dict[str, Any]:
        invocation = original(self, instance_id, plugin_name)
        if instance_id == instances[0]:
            invocation.update(
                Status="Failed",
                StatusDetails="Failed",
                StandardErrorContent="certrotate: error: the chain does not verify the certificate",
            )
        return invocation

    monkeypatch.setattr(Command, "get_invocation", failing)
    failed = certrotate("deploy", arn, "--targets", ",".join(instances), endpoint=endpoint)
    assert failed.returncode == 1
    assert "1 of 2 instance(s) did not succeed" in the_error(failed)
    assert "1 done, 1 failed, 0 pending of 2 instance(s)" in failed.stderr  # the progress line
    assert "chain does not verify" in failed.stdout
    assert f"deploy {arn}" in failed.stdout and ":secret:" in arn  # the title as written, no emoji


def test_an_unknown_profile_is_one_clear_line() -> None:
    result = certrotate("status", "--profile", "no-such-profile")
    assert result.returncode == 4 and "ProfileNotFound" in one_error_line(result)


def test_bad_targets_and_unreachable_endpoints(endpoint: str) -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:x-AbCdEf"
    result = certrotate("deploy", arn, "--targets", "web-servers", endpoint=endpoint)
    assert result.returncode == 2 and "--targets 'web-servers'" in one_error_line(result)
    unreachable = certrotate("status", endpoint=f"http://127.0.0.1:{free_port()}")
    assert unreachable.returncode == 4
    assert "EndpointConnectionError" in one_error_line(unreachable)
