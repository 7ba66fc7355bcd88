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
from rotation.fleet import INVENTORY_TYPE
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
        {**parameters, **apache.document_parameters()},
        env={**env, **apache.installer_environment()},
        timeout=120,
        instance_id=INSTANCE,
        region=REGION,
    )


def records(ssm: Any) -> list[dict[str, str]]:
    entries: list[dict[str, str]] = ssm.list_inventory_entries(InstanceId=INSTANCE, TypeName=INVENTORY_TYPE)["Entries"]
    return entries


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
    assert entry["SecretArn"] == second_arn  # the delivery that failed, with what the file still serves
    assert entry["Serial"] == first.serial_hex == format(served_serial(apache), "X")  # what it still serves

    rolled = run("RollbackTLS", apache, host_env)
    assert rolled.ok, rolled.stderr
    (entry,) = records(ssm)
    assert entry["Status"] == "rolled-back" and entry["SecretArn"] == second_arn  # kept from the file's record
    assert entry["Serial"] == format(served_serial(apache), "X") != first.serial_hex
    for result in (again, failed, rolled):
        assert "PRIVATE KEY" not in result.stdout + result.stderr


def test_a_record_that_cannot_be_sent_never_fails_the_install(
    apache: Apache, ca: LocalCA, put_secret: Any, host_env: dict[str, str]
) -> None:
    """moto without the emulation answers PutInventory with an error: the install still succeeds."""
    new = ca.issue([HOSTNAME])
    result = run("RunUpdateTLS", apache, host_env, SecretArn=put_secret(new))
    assert result.ok, result.stderr
    assert served_serial(apache) == new.certificate.serial_number
    assert "warning: fleet view not recorded" in result.stderr
    assert (apache.state_directory / "inventory.json").stat().st_mode & 0o777 == 0o600  # kept for the next run
