"""A rotation finished → install the new certificate on the hosts that serve it, in every account.

In the central account it receives Secrets Manager's *RotationSucceeded* event (via CloudTrail),
runs the install document on this account's instances tagged ``certrotate:secret`` = the
secret's name, and forwards a ``certrotate`` / ``Certificate Rotated`` event to each workload
account's event bus (``WORKLOAD_EVENT_BUS_ARNS``). In a workload account it receives that
forwarded event and runs the document on its own tagged instances.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from rotation.aws import aws_call, make_client
from rotation.telemetry import logger

FORWARDED_SOURCE = "certrotate"
FORWARDED_DETAIL_TYPE = "Certificate Rotated"
INSTANCE_TAG = "certrotate:secret"


def secret_of(event: Mapping[str, Any]) -> str | None:
    """The rotated secret's ARN, from a RotationSucceeded or a forwarded event."""
    detail = event.get("detail") or {}
    if event.get("source") == "aws.secretsmanager" and detail.get("eventName") == "RotationSucceeded":
        secret = (detail.get("additionalEventData") or {}).get("SecretId")
        return str(secret) if secret else None
    if event.get("source") == FORWARDED_SOURCE and event.get("detail-type") == FORWARDED_DETAIL_TYPE:
        secret = detail.get("secretArn")
        return str(secret) if secret else None
    return None


def deploy(secret_arn: str, ssm: Any, document: str) -> str:
    name = secret_arn.split(":")[6].rsplit("-", 1)[0]  # the secret's name, without the random suffix
    with aws_call("ssm", "SendCommand"):
        command = ssm.send_command(
            DocumentName=document,
            Targets=[{"Key": f"tag:{INSTANCE_TAG}", "Values": [name]}],
            Parameters={"SecretArn": [secret_arn]},
            MaxConcurrency="25%",
            MaxErrors="0",
            Comment=f"certrotate: install rotated {name}",
        )["Command"]
    logger.info("install document %s sent to instances tagged %s=%s", document, INSTANCE_TAG, name)
    return str(command["CommandId"])


def forward(secret_arn: str, events: Any, buses: list[str]) -> None:
    for bus in buses:
        entry = {
            "Source": FORWARDED_SOURCE,
            "DetailType": FORWARDED_DETAIL_TYPE,
            "EventBusName": bus,
            "Detail": json.dumps({"secretArn": secret_arn}),
        }
        with aws_call("events", "PutEvents"):
            response = events.put_events(Entries=[entry])
        if response.get("FailedEntryCount"):
            raise RuntimeError(f"forwarding to {bus} failed: {response['Entries'][0].get('ErrorCode')}")
        logger.info("rotation of %s forwarded to %s", secret_arn, bus)


def handle(event: Mapping[str, Any], ssm: Any, events: Any, *, document: str, buses: list[str]) -> str | None:
    secret_arn = secret_of(event)
    if secret_arn is None:
        logger.warning("not a rotation event; nothing to do")
        return None
    command_id = deploy(secret_arn, ssm, document)
    if event.get("source") == "aws.secretsmanager":
        forward(secret_arn, events, buses)
    return command_id


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    buses = [b for b in os.environ.get("WORKLOAD_EVENT_BUS_ARNS", "").split(",") if b]
    command_id = handle(
        event,
        make_client("ssm"),
        make_client("events"),
        document=os.environ.get("INSTALL_DOCUMENT", "RunUpdateTLS"),
        buses=buses,
    )
    return {"commandId": command_id}
