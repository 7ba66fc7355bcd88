"""*ACM Certificate Available* → rotate every secret holding that certificate, within minutes.

ACM renews a managed private certificate on its own; this handler makes the secrets that hold it
pick the renewal up now instead of at their next scheduled rotation. The holders are read from
the certificate's ``certrotate:secret:*`` tags, which every ACM rotation writes
(:func:`rotation.issuers.acm.secret_tag`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rotation.aws import aws_call, make_client
from rotation.issuers.acm import SECRET_TAG_PREFIX
from rotation.telemetry import logger

DETAIL_TYPE = "ACM Certificate Available"


def certificate_arn_of(event: Mapping[str, Any]) -> str | None:
    if event.get("source") != "aws.acm" or event.get("detail-type") != DETAIL_TYPE:
        return None
    resources = event.get("resources") or []
    return str(resources[0]) if resources else None


def holders(acm: Any, certificate_arn: str) -> list[str]:
    """The secret ARNs tagged on the certificate."""
    with aws_call("acm", "ListTagsForCertificate"):
        tags = acm.list_tags_for_certificate(CertificateArn=certificate_arn).get("Tags", [])
    return sorted({t["Value"] for t in tags if t["Key"].startswith(SECRET_TAG_PREFIX) and t.get("Value")})


def rotate_holders(event: Mapping[str, Any], acm: Any, secretsmanager: Any) -> list[str]:
    """Start a rotation of each secret holding the event's certificate; returns their ARNs."""
    certificate_arn = certificate_arn_of(event)
    if certificate_arn is None:
        logger.warning("not an ACM Certificate Available event; nothing to do")
        return []
    secrets = holders(acm, certificate_arn)
    if not secrets:
        logger.info("no certrotate secret holds %s; nothing to do", certificate_arn)
        return []
    for secret_arn in secrets:
        with aws_call("secretsmanager", "RotateSecret"):
            secretsmanager.rotate_secret(SecretId=secret_arn, RotateImmediately=True)
        logger.info("rotation started for %s after ACM renewed %s", secret_arn, certificate_arn)
    return secrets


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    region = str(event.get("region") or "") or None
    rotated = rotate_holders(event, make_client("acm", region), make_client("secretsmanager", region))
    return {"rotated": rotated}
