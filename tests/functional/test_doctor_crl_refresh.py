"""``certrotate doctor`` names each mutual-TLS host that installed a CRL but that no refresh association reaches.

What runs for real: moto's server (EC2 instances and their tags; SSM inventory from
rotation.emulation.ssm_inventory and State Manager from rotation.emulation.association_api, which
moto 5.2 lacks; the InstallCRL document as built), the ``certrotate`` console script. The hosts'
``Custom:CertrotateCrl`` records are put as the installer puts them (crl_record.py). Each test uses a
region of its own: moto's server is shared by the session.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from rotation.build.ssm_documents import DOCUMENTS_DIR
from rotation.emulation.association_api import state_manager_in_moto
from rotation.emulation.ssm_inventory import ssm_inventory_in_moto
from tests.functional.test_cli_hosts_crls import crl_record, put
from tests.support.cli import certrotate

TAG = {"Key": "certrotate:crl", "Value": "refresh"}


@pytest.fixture
def world(endpoint: str) -> Iterator[str]:
    with ssm_inventory_in_moto(), state_manager_in_moto():  # no managed node: associations are only read
        yield endpoint


def regional(endpoint: str, service: str, region: str) -> Any:
    return boto3.client(service, region_name=region, endpoint_url=endpoint)


def instances(endpoint: str, region: str, count: int) -> list[str]:
    ec2 = regional(endpoint, "ec2", region)
    started = ec2.run_instances(ImageId="ami-12c6146b", MinCount=count, MaxCount=count)["Instances"]
    return [str(i["InstanceId"]) for i in started]


def refresh_association(endpoint: str, region: str) -> str:
    ssm = regional(endpoint, "ssm", region)
    ssm.create_document(
        Name="InstallCRL",
        Content=(DOCUMENTS_DIR / "InstallCRL.yaml").read_text(),
        DocumentType="Command",
        DocumentFormat="YAML",
    )
    created = ssm.create_association(
        Name="InstallCRL",
        Targets=[{"Key": "tag:certrotate:crl", "Values": ["refresh"]}],
        ScheduleExpression="rate(30 minutes)",
        MaxConcurrency="10%",
        MaxErrors="10%",
    )
    return str(created["AssociationDescription"]["AssociationId"])


def doctor(endpoint: str, region: str) -> tuple[int, dict[str, dict[str, str]], str]:
    """Exit code, the ``CRL refresh`` checks by name, and everything doctor wrote."""
    result = certrotate(
        "doctor", "--fleet-region", region, "--document", "InstallCRL", "--output", "json", endpoint=endpoint
    )
    checks = json.loads(result.stdout)
    mine = {c["name"]: c for c in checks if c["name"].startswith(f"CRL refresh {region}")}
    return result.returncode, mine, result.stdout + result.stderr


def test_a_host_with_a_crl_and_no_refresh_tag_is_named_with_the_fix_and_no_association_is_named(world: str) -> None:
    region = "eu-north-1"
    untagged, other_value, tagged, no_crl = instances(world, region, 4)
    ec2, ssm = regional(world, "ec2", region), regional(world, "ssm", region)
    ec2.create_tags(Resources=[tagged, no_crl], Tags=[TAG])
    ec2.create_tags(Resources=[other_value], Tags=[{"Key": "certrotate:crl", "Value": "off"}])
    for host in (untagged, other_value, tagged):
        put(ssm, host, crl_record("Client CA A"))
    association = refresh_association(world, region)

    code, found, _ = doctor(world, region)
    fix = "fix: `aws ec2 create-tags --region eu-north-1 --resources {} --tags Key=certrotate:crl,Value=refresh`"
    assert set(found) == {f"CRL refresh {region} {untagged}", f"CRL refresh {region} {other_value}"}
    assert all(c["outcome"] == "FAIL" for c in found.values())
    assert found[f"CRL refresh {region} {untagged}"]["detail"].endswith(fix.format(untagged))
    assert "no tag certrotate:crl" in found[f"CRL refresh {region} {untagged}"]["detail"]
    assert "certrotate:crl is 'off'" in found[f"CRL refresh {region} {other_value}"]["detail"]
    assert found[f"CRL refresh {region} {other_value}"]["detail"].endswith(fix.format(other_value))
    assert code == 1

    ec2.create_tags(Resources=[untagged, other_value], Tags=[TAG])  # the fixes applied
    _, found, _ = doctor(world, region)
    assert list(found) == [f"CRL refresh {region}"]
    assert found[f"CRL refresh {region}"]["outcome"] == "ok"
    assert "3 host(s) with an installed CRL" in found[f"CRL refresh {region}"]["detail"]
    assert association in found[f"CRL refresh {region}"]["detail"]

    ssm.delete_association(AssociationId=association)  # the stack never deployed in this region
    code, found, _ = doctor(world, region)
    assert list(found) == [f"CRL refresh {region}"]
    detail = found[f"CRL refresh {region}"]["detail"]
    assert found[f"CRL refresh {region}"]["outcome"] == "FAIL"
    assert "3 host(s) report an installed CRL but no association targets tag:certrotate:crl=refresh" in detail
    assert "CrlRefreshAssociation" in detail and "CrlRefreshSchedule" in detail
    assert code == 1


def test_a_hosts_forged_record_speaks_only_of_its_own_instance_and_its_text_is_not_shown(world: str) -> None:
    """The attacker is root on one host: it writes its own instance's record, naming another instance
    and carrying shell and console markup. doctor names the writer's instance only, never the victim,
    and shows none of the record's text."""
    region = "ca-central-1"
    attacker, victim = instances(world, region, 2)
    refresh_association(world, region)
    regional(world, "ec2", region).create_tags(Resources=[attacker], Tags=[TAG])
    forged = crl_record(f"[bold]{victim}[/bold] `$(reboot)`") | {
        "Message": f"{victim} has no tag; run aws ec2 delete-tags --resources {victim}",
        "Source": f"s3://x/{victim}.crl",
    }
    put(regional(world, "ssm", region), attacker, forged)

    _, found, written = doctor(world, region)
    assert list(found) == [f"CRL refresh {region}"]
    assert found[f"CRL refresh {region}"]["outcome"] == "ok"
    assert "1 host(s) with an installed CRL" in found[f"CRL refresh {region}"]["detail"]
    assert victim not in written and "reboot" not in written

    regional(world, "ec2", region).delete_tags(Resources=[attacker], Tags=[TAG])
    _, found, written = doctor(world, region)
    assert list(found) == [f"CRL refresh {region} {attacker}"]
    assert victim not in written and "reboot" not in written


def test_a_hybrid_node_with_a_crl_is_a_skip_naming_how_to_check_its_ssm_tags(world: str) -> None:
    """Hybrid nodes (``mi-``) carry SSM tags, not EC2 tags: doctor does not claim either way."""
    region = "ap-south-1"
    node = "mi-0123456789abcdef0"
    refresh_association(world, region)
    put(regional(world, "ssm", region), node, crl_record("Client CA A"))

    _, found, _ = doctor(world, region)
    assert list(found) == [f"CRL refresh {region} {node}"]
    assert found[f"CRL refresh {region} {node}"]["outcome"] == "skip"
    assert f"--resource-type ManagedInstance --resource-id {node}" in found[f"CRL refresh {region} {node}"]["detail"]
