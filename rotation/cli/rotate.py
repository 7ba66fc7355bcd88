"""``certrotate rotate``: rotate now, a fresh certificate whatever the renewal policy."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from rotation.aws import aws_call
from rotation.cli.session import AwsContext
from rotation.errors import CertRotateError
from rotation.guard import ROTATE_NOW_TAG


class RotationTimeoutError(CertRotateError):
    """The rotation did not reach AWSCURRENT in time."""


def current_serial(sm: Any, secret_id: str) -> str:
    with aws_call("secretsmanager", "GetSecretValue"):
        value = sm.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT").get("SecretString") or "{}"
    try:
        return str(json.loads(value).get("CERTIFICATE_SERIAL") or "")
    except (ValueError, AttributeError):
        return ""


def rotate_now(
    aws: AwsContext,
    secret_id: str,
    *,
    wait: bool,
    timeout: float,
    say: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Mark this rotation rotate-now and start it; with ``wait``, follow it to AWSCURRENT.

    Raises:
        AwsCallError: the secret is unknown, rotation is not configured, or a call failed.
        RotationTimeoutError: ``wait`` and the new version did not become AWSCURRENT in time.
    """
    sm = aws.client("secretsmanager")
    token = str(uuid.uuid4())
    before = current_serial(sm, secret_id) if wait else ""
    with aws_call("secretsmanager", "TagResource"):
        sm.tag_resource(SecretId=secret_id, Tags=[{"Key": ROTATE_NOW_TAG, "Value": token}])
    with aws_call("secretsmanager", "RotateSecret"):
        sm.rotate_secret(SecretId=secret_id, ClientRequestToken=token, RotateImmediately=True)
    say(f"rotation {token} started for {secret_id}")
    if not wait:
        return token
    deadline = time.monotonic() + timeout
    while True:
        with aws_call("secretsmanager", "DescribeSecret"):
            stages = sm.describe_secret(SecretId=secret_id).get("VersionIdsToStages", {})
        if "AWSCURRENT" in stages.get(token, []):
            break
        if time.monotonic() >= deadline:
            raise RotationTimeoutError(
                f"rotation {token} of {secret_id} did not reach AWSCURRENT within "
                f"{timeout:.0f} s; see the rotation function's logs"
            )
        sleep(2)
    after = current_serial(sm, secret_id)
    if not after:
        raise CertRotateError(f"rotation {token} finished but AWSCURRENT holds no certificate")
    say(f"serial {before or '(none)'} -> {after}")
    return token
