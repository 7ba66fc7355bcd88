"""*ACM Certificate Available* → rotate the secret holding that certificate, within minutes.

ACM renews a managed private certificate on its own; this handler makes the secret that holds it
pick the renewal up now instead of at its next scheduled rotation. The holder is the secret the
certificate's ownership tag names (:data:`rotation.issuance.issuers.acm.OWNER_TAG`, written by
``RequestCertificate``). Tags can be written by others, so the tag alone rotates nothing: the
secret must name certrotate's rotation function (``CERTROTATE_ROTATION_FUNCTION_ARN``, also an
IAM condition on this function's ``RotateSecret``) and its ``CERTIFICATE_ARN`` must be the event's
certificate. Even then the tag only says which secret to nudge: the rotation it starts exports the
renewal only if the issuance ledger records the certificate as that secret's own request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from rotation.aws import aws_call, make_client
from rotation.errors import SpecError
from rotation.issuance.issuers.acm import certificate_owner
from rotation.issuance.spec import load_secret_fields
from rotation.telemetry import logger

DETAIL_TYPE = "ACM Certificate Available"
ROTATION_FUNCTION_VARIABLE = "CERTROTATE_ROTATION_FUNCTION_ARN"


def certificate_arn_of(event: Mapping[str, Any]) -> str | None:
    if event.get("source") != "aws.acm" or event.get("detail-type") != DETAIL_TYPE:
        return None
    resources = event.get("resources") or []
    return str(resources[0]) if resources else None


def holds_certificate(secretsmanager: Any, secret_arn: str, certificate_arn: str, rotation_function_arn: str) -> bool:
    """Whether ``secret_arn`` is rotated by certrotate and its AWSCURRENT holds ``certificate_arn``."""
    with aws_call("secretsmanager", "DescribeSecret"):
        described = secretsmanager.describe_secret(SecretId=secret_arn)
    if described.get("RotationLambdaARN") != rotation_function_arn:
        logger.warning("%s is not rotated by certrotate's function; not rotating it", secret_arn)
        return False
    with aws_call("secretsmanager", "GetSecretValue"):
        value = secretsmanager.get_secret_value(SecretId=secret_arn, VersionStage="AWSCURRENT")
    try:
        held = load_secret_fields(str(value.get("SecretString") or "")).get("CERTIFICATE_ARN")
    except SpecError:
        held = None
    if held != certificate_arn:
        logger.warning(
            "%s does not hold %s (its CERTIFICATE_ARN differs); not rotating it", secret_arn, certificate_arn
        )
        return False
    return True


def rotate_holders(
    event: Mapping[str, Any], acm: Any, secretsmanager: Any, rotation_function_arn: str | None = None
) -> list[str]:
    """Start a rotation of the secret holding the event's certificate; returns the ARNs rotated."""
    function_arn = rotation_function_arn or os.environ.get(ROTATION_FUNCTION_VARIABLE, "")
    certificate_arn = certificate_arn_of(event)
    if certificate_arn is None:
        logger.warning("not an ACM Certificate Available event; nothing to do")
        return []
    if not function_arn:
        logger.error(
            "%s is not set: cannot tell certrotate's secrets from others; nothing rotated", ROTATION_FUNCTION_VARIABLE
        )
        return []
    owner = certificate_owner(acm, certificate_arn)
    if owner is None:
        logger.info("no certrotate secret holds %s; nothing to do", certificate_arn)
        return []
    if not holds_certificate(secretsmanager, owner, certificate_arn, function_arn):
        return []
    with aws_call("secretsmanager", "RotateSecret"):
        secretsmanager.rotate_secret(SecretId=owner, RotateImmediately=True)
    logger.info("rotation started for %s after ACM renewed %s", owner, certificate_arn)
    return [owner]


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    region = str(event.get("region") or "") or None
    rotated = rotate_holders(event, make_client("acm", region), make_client("secretsmanager", region))
    return {"rotated": rotated}
