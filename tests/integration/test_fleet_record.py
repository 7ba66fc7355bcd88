"""The installer records what the host serves (SSM custom inventory) after every run.

RunUpdateTLS / RollbackTLS run through the local SSM runner, which sets AWS_SSM_INSTANCE_ID and
AWS_SSM_REGION_NAME as the SSM agent does; the installer's aws CLI puts the record into moto's
server, whose SSM inventory is rotation.emulation.ssm_inventory (moto 5.2 has none).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from rotation.build.ssm_documents import DOCUMENTS_DIR
from rotation.cli.local_apache import LocalApache as Apache
from rotation.emulation.ssm_inventory import ssm_inventory_in_moto
from rotation.emulation.ssm_runner import CommandResult, run_document
from rotation.fleet.view import INVENTORY_TYPE
from tests.integration.conftest import HOSTNAME, REGION
from tests.integration.test_install_document import served_serial
from tests.support.certs import LocalCA

INSTANCE = "i-0f1e2d3c4b5a69788"


@pytest.fixture
def ssm(moto_endpoint: str) -> Iterator[Any]:
    with ssm_inventory_in_moto():
        yield boto3.client("ssm", region_name=REGION, endpoint_url=moto_endpoint)


def run(document: str, apache: Apache, env: dict[str, str], **parameters: str) -> CommandResult:
    return run_document(
        DOCUMENTS_DIR / f"{document}.yaml",
        {**apache.document_parameters(), **parameters},
        env={**env, **apache.installer_environment()},
        timeout=120,
        instance_id=INSTANCE,
        region=REGION,
    )


def records(ssm: Any) -> list[dict[str, str]]:
    entries: list[dict[str, str]] = ssm.list_inventory_entries(InstanceId=INSTANCE, TypeName=INVENTORY_TYPE)["Entries"]
    return entries


@pytest.mark.slow
def test_every_run_is_recorded_installed_unchanged_failed_rolled_back(
    apache: Apache, ca: LocalCA, put_secret: Any, host_env: dict[str, str], ssm: Any
) -> None:
    first, second = ca.issue([HOSTNAME]), ca.issue([HOSTNAME])
    arn = put_secret(first)
    assert run("RunUpdateTLS", apache, host_env, SecretArn=arn).ok
    (entry,) = records(ssm)
    assert entry["Status"] == "installed" and entry["Serial"] == first.serial_hex and entry["SecretArn"] == arn
    assert entry["FingerprintSha256"].replace(":", "").lower() == first.fingerprint_sha256
    assert entry["CertificateFile"] == str(apache.cert_file()) and entry["ExitCode"] == "0"

    again = run("RunUpdateTLS", apache, host_env, SecretArn=arn)
    assert again.ok and "fleet view: unchanged" in again.stdout
    assert records(ssm)[0]["Status"] == "unchanged"

    config = apache.config.read_text()
    apache.config.write_text(config + "ThisIsNotADirective on\n")
    try:
        failed = run("RunUpdateTLS", apache, host_env, SecretArn=(second_arn := put_secret(second)))
    finally:
        apache.config.write_text(config)
    assert failed.steps[-1].exit_code == 5
    (entry,) = records(ssm)
    assert entry["Status"] == "failed" and entry["ExitCode"] == "5" and "config test failed" in entry["Message"]
    assert entry["LastFailureSecretArn"] == second_arn and entry["LastFailureExitCode"] == "5"  # what failed
    assert entry["SecretArn"] == arn  # what the file still serves, and where it came from
    assert entry["Serial"] == first.serial_hex == format(served_serial(apache), "X")

    installed = run("RunUpdateTLS", apache, host_env, SecretArn=second_arn)
    assert installed.ok, installed.stderr
    (entry,) = records(ssm)
    assert entry["SecretArn"] == second_arn and entry["Serial"] == second.serial_hex
    assert entry["LastFailureSecretArn"] == ""  # cleared by the success

    rolled = run("RollbackTLS", apache, host_env)
    assert rolled.ok, rolled.stderr
    (entry,) = records(ssm)
    assert entry["Status"] == "rolled-back" and entry["SecretArn"] == arn  # the previous file's own secret
    assert entry["Serial"] == format(served_serial(apache), "X") == first.serial_hex
    for result in (again, failed, installed, rolled):
        assert "PRIVATE KEY" not in result.stdout + result.stderr


@pytest.mark.slow
def test_17_1_failed_runs_with_made_up_secrets_never_rewrite_or_evict_the_served_record(
    apache: Apache, ca: LocalCA, put_secret: Any, host_env: dict[str, str], ssm: Any
) -> None:
    """Issue 17 item 1, as a command sender would: a failing RunUpdateTLS with a made-up SecretArn
    (exit 3, files unchanged), then failing commands naming other files. On the starting code the
    first replaced the served file's SecretArn with the made-up ARN (the revoker then revoked the
    still-served certificate) and enough of the second pushed the served record out."""
    served = ca.issue([HOSTNAME])
    arn = put_secret(served)
    assert run("RunUpdateTLS", apache, host_env, SecretArn=arn).ok
    made_up = "arn:aws:secretsmanager:us-east-1:123456789012:secret:made-up-AbCdEf"
    failed = run("RunUpdateTLS", apache, host_env, SecretArn=made_up)
    assert failed.steps[-1].exit_code == 3
    (entry,) = records(ssm)
    assert entry["SecretArn"] == arn and entry["Serial"] == served.serial_hex and entry["Status"] == "failed"
    assert entry["LastFailureSecretArn"] == made_up
    directory = apache.cert_file().parent
    for n in range(9):  # more than MAX_UNSERVED_RECORDS (8)
        other = {"CertificateFile": str(directory / f"other{n}.pem"), "ChainFile": str(directory / f"o{n}-chain.pem")}
        result = run("RunUpdateTLS", apache, host_env, SecretArn=made_up, **other)
        assert result.steps[-1].exit_code == 3, result.stderr
    entries = records(ssm)
    (mine,) = [e for e in entries if e["CertificateFile"] == str(apache.cert_file())]
    assert mine["SecretArn"] == arn and mine["Serial"] == served.serial_hex == format(served_serial(apache), "X")
    assert len(entries) == 1 + 8


@pytest.mark.slow
def test_a_record_that_cannot_be_sent_never_fails_the_install(
    apache: Apache, ca: LocalCA, put_secret: Any, host_env: dict[str, str]
) -> None:
    """moto without the emulation answers PutInventory with an error: the install still succeeds."""
    new = ca.issue([HOSTNAME])
    # One attempt: the aws CLI's retries of the error (about 14 s of backoff) change nothing here.
    env = {**host_env, "AWS_MAX_ATTEMPTS": "1"}
    result = run("RunUpdateTLS", apache, env, SecretArn=put_secret(new))
    assert result.ok, result.stderr
    assert served_serial(apache) == new.certificate.serial_number
    assert "warning: fleet view not recorded" in result.stderr
    assert (apache.state_directory / "inventory.json").stat().st_mode & 0o777 == 0o600  # kept for the next run
