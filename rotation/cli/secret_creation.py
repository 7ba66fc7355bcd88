"""Creating one certificate secret: CreateSecret's request, and turning its rotation on or leaving nothing behind."""

from __future__ import annotations

import json
from typing import Any

from rotation.aws import aws_call
from rotation.errors import AwsCallError, CertRotateError


def secret_request(name: str, fields: dict[str, Any], tags: list[dict[str, str]], kms_key_id: str) -> dict[str, Any]:
    """CreateSecret's arguments for a certificate secret holding ``fields``."""
    return {
        "Name": name,
        "SecretString": json.dumps(fields),
        "Description": f"certrotate {fields.get('CERTIFICATE_TYPE')} certificate for {fields.get('COMMON_NAME')}",
        **({"KmsKeyId": kms_key_id} if kms_key_id else {}),
        **({"Tags": tags} if tags else {}),
    }


def enable_rotation(sm: Any, arn: str, function: str, schedule: dict[str, Any]) -> None:
    """RotateSecret with the function; on failure the new secret is deleted so a rerun can succeed.

    Raises:
        AwsCallError: rotation could not be turned on (the secret is gone again).
        CertRotateError: neither could the secret be deleted (its ARN is in the message).
    """
    rotation: dict[str, Any] = {"SecretId": arn, "RotationLambdaARN": function, "RotateImmediately": True}
    if schedule:
        rotation["RotationRules"] = schedule
    try:
        with aws_call("secretsmanager", "RotateSecret"):
            sm.rotate_secret(**rotation)
    except AwsCallError as failure:
        try:
            with aws_call("secretsmanager", "DeleteSecret"):
                sm.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
        except AwsCallError as cleanup:
            raise CertRotateError(
                f"{failure}; and the new secret {arn} could not be deleted ({cleanup.code}): delete it by hand"
            ) from failure
        detail = str(failure).removeprefix(f"{failure.service} {failure.operation} failed: {failure.code}").strip(" ()")
        raise AwsCallError(
            failure.service,
            failure.operation,
            failure.code,
            f"{detail + '; ' if detail else ''}the new secret was deleted again, nothing is left behind",
        ) from failure
