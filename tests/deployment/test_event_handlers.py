"""The functions behind the event rules, against moto."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rotation.emulation.rotation_service import LAMBDA_ARN, rotate, rotation_function_in_moto, stage_pending
from rotation.event_handlers import acm_certificate_available, rotation_succeeded
from tests.support.driver import replace_current, secret_fields

EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "aws_events"


def sample(name: str, **changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    event.update(changes)
    return event


def rotate_calls(client: Any) -> list[str]:
    seen: list[str] = []
    client.meta.events.register(
        "provide-client-params.secrets-manager.RotateSecret", lambda params, **_: seen.append(params["SecretId"])
    )
    return seen


def test_a_renewed_certificate_rotates_the_secret_that_requested_it_and_nothing_else(
    aws: Any, root_ca: str, acm_chain: Any, make_secret: Any
) -> None:
    spec = {"CERTIFICATE_TYPE": "ACM_ISSUED", "CA_ARN": root_ca, "COMMON_NAME": "server1.example"}
    owner = make_secret(spec)
    rotate(owner)
    certificate_arn = secret_fields(aws.sm, owner)["CERTIFICATE_ARN"]
    copy = make_secret(spec)  # a copy of the owner's value holding the same certificate: not its owner
    replace_current(aws.sm, copy, json.dumps(secret_fields(aws.sm, owner)))
    stage_pending(copy)  # names certrotate's rotation function, as the owner does
    unrelated = make_secret(spec)
    rotate(unrelated)
    assert secret_fields(aws.sm, unrelated)["CERTIFICATE_ARN"] != certificate_arn

    calls = rotate_calls(aws.sm)
    event = sample("acm-certificate-available", resources=[certificate_arn])
    # moto refuses RotateSecret after a completed rotation (it reads AWSPENDING+AWSCURRENT as "in
    # progress") and cannot invoke a Lambda: RotateSecret runs certrotate's rotation as the service would.
    with rotation_function_in_moto() as failures:
        rotated = acm_certificate_available.rotate_holders(event, aws.acm, aws.sm, LAMBDA_ARN)
    assert failures == []
    assert rotated == [owner] == calls


def test_an_unknown_certificate_does_nothing_and_says_so(aws: Any, no_key_material_in_logs: Any) -> None:
    """A certificate no certrotate secret holds (requested outside certrotate, so untagged)."""
    other = aws.acm.request_certificate(
        DomainName="other.example",
        CertificateAuthorityArn="arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/"
        "11111111-1111-4111-8111-111111111111",
    )["CertificateArn"]
    calls = rotate_calls(aws.sm)
    event = sample("acm-certificate-available", resources=[other])
    assert acm_certificate_available.rotate_holders(event, aws.acm, aws.sm, LAMBDA_ARN) == []
    assert calls == []
    assert any("nothing to do" in line for line in no_key_material_in_logs.lines)
    assert acm_certificate_available.certificate_arn_of(sample("acm-certificate-expired")) is None


def test_a_rotation_installs_on_tagged_instances_and_is_forwarded(aws: Any) -> None:
    import boto3

    ec2 = boto3.client("ec2", region_name="us-east-1")
    ssm = boto3.client("ssm", region_name="us-east-1")
    events = boto3.client("events", region_name="us-east-1")
    instance = ec2.run_instances(
        ImageId="ami-12c6146b",
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "certrotate:secret", "Value": "certs/web"}]}],
    )["Instances"][0]
    sent: list[dict[str, Any]] = []
    events.meta.events.register(
        "provide-client-params.eventbridge.PutEvents", lambda params, **_: sent.extend(params["Entries"])
    )
    bus = "arn:aws:events:us-east-1:123456789012:event-bus/default"
    command_id = rotation_succeeded.handle(
        sample("secretsmanager-rotation-succeeded"), ssm, events, document="RunUpdateTLS", buses=[bus]
    )
    (command,) = ssm.list_commands(CommandId=command_id)["Commands"]
    assert command["Parameters"] == {
        "SecretArn": ["arn:aws:secretsmanager:us-east-1:123456789012:secret:certs/web-AbCdEf"]
    }
    assert command["Targets"] == [{"Key": "tag:certrotate:secret", "Values": ["certs/web"]}]
    assert instance["InstanceId"] in command["InstanceIds"]
    (forwarded,) = sent
    assert forwarded["Source"] == "certrotate" and forwarded["EventBusName"] == bus

    sent.clear()
    relayed = {"source": "certrotate", "detail-type": "Certificate Rotated", "detail": json.loads(forwarded["Detail"])}
    assert rotation_succeeded.handle(relayed, ssm, events, document="RunUpdateTLS", buses=[bus])
    assert sent == []  # a workload account installs and does not forward again
    assert (
        rotation_succeeded.handle(
            sample("secretsmanager-rotation-failed"), ssm, events, document="RunUpdateTLS", buses=[bus]
        )
        is None
    )
