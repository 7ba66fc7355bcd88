"""ACM issuer: a private certificate requested against the Private CA, then exported.

ACM holds the key. First issuance requests a certificate; forced rotations renew it; scheduled
rotations pick up ACM's own managed renewal, and renew only inside the renewal window when ACM
has not. Every export uses a fresh random passphrase and stores the key decrypted (PKCS#8).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from typing import Any

from rotation.aws import aws_call
from rotation.bundle import CertBundle, join_pem
from rotation.errors import IssuanceError
from rotation.issuers.base import IssueRequest, WaitBudget, idempotency_token
from rotation.keys import load_private_key
from rotation.renewal import Plan, is_due
from rotation.telemetry import logger

_SERVICE = "acm"
ACM_TOKEN_LENGTH = 32
SECRET_TAG_PREFIX = "certrotate:secret:"


def secret_tag(secret_arn: str) -> dict[str, str]:
    """The tag that records, on the ACM certificate, a secret holding it (one tag per secret).

    The *ACM Certificate Available* handler reads these tags to rotate every holder at once.
    """
    return {"Key": SECRET_TAG_PREFIX + hashlib.sha256(secret_arn.encode()).hexdigest()[:16], "Value": secret_arn}


_FAILED = {"FAILED", "REVOKED", "VALIDATION_TIMED_OUT", "INACTIVE", "EXPIRED"}


class AcmIssuer:
    def __init__(self, client_for_region: Callable[[str], Any]) -> None:
        self._client_for_region = client_for_region

    def issue(self, request: IssueRequest, budget: WaitBudget) -> CertBundle:
        client = self._client_for_region(request.spec.ca_region)
        current = request.current
        if request.plan is Plan.ISSUE or current is None:
            arn = self._request(client, request)
            budget.poll(lambda: self._issued(client, arn, None), f"ACM certificate {arn} to be issued")
            return self._export(client, arn)
        arn = current.certificate_arn
        serial = current.certificate.serial_number
        with aws_call(_SERVICE, "AddTagsToCertificate"):  # idempotent; heals copies and older secrets
            client.add_tags_to_certificate(CertificateArn=arn, Tags=[secret_tag(request.secret_arn)])
        if request.plan is Plan.REFRESH:
            description = self._describe(client, arn)
            if not _has_serial(description, serial) and description.get("Status") == "ISSUED":
                logger.info("ACM renewed the certificate; exporting it", extra={"certificate_arn": arn})
                return self._export(client, arn)
            if not is_due(current, request.spec, request.now):
                return current
            logger.info("certificate is inside its renewal window and ACM has not renewed it; renewing")
        with aws_call(_SERVICE, "RenewCertificate"):
            client.renew_certificate(CertificateArn=arn)
        budget.poll(lambda: self._issued(client, arn, serial), f"ACM renewal of {arn}")
        return self._export(client, arn)

    @staticmethod
    def _request(client: Any, request: IssueRequest) -> str:
        spec = request.spec
        with aws_call(_SERVICE, "RequestCertificate"):
            response = client.request_certificate(
                DomainName=spec.common_name,
                SubjectAlternativeNames=list(spec.names),
                CertificateAuthorityArn=spec.ca_arn,
                KeyAlgorithm=spec.key_algorithm.value,
                IdempotencyToken=idempotency_token(request.token, spec.ca_arn, length=ACM_TOKEN_LENGTH),
                Tags=[secret_tag(request.secret_arn)],
            )
        return str(response["CertificateArn"])

    @staticmethod
    def _describe(client: Any, arn: str) -> dict[str, Any]:
        with aws_call(_SERVICE, "DescribeCertificate"):
            return dict(client.describe_certificate(CertificateArn=arn)["Certificate"])

    def _issued(self, client: Any, arn: str, old_serial: int | None) -> bool | None:
        """True once ``arn`` is ISSUED (with a serial other than ``old_serial``); None to keep waiting."""
        description = self._describe(client, arn)
        status = str(description.get("Status", ""))
        if status in _FAILED:
            reason = description.get("FailureReason") or description.get("RenewalSummary", {}).get(
                "RenewalStatusReason", ""
            )
            raise IssuanceError(f"ACM certificate {arn} is {status}{f' ({reason})' if reason else ''}")
        renewal = description.get("RenewalSummary", {}).get("RenewalStatus")
        if old_serial is not None and renewal == "FAILED":
            raise IssuanceError(f"ACM could not renew {arn}")
        if status == "ISSUED" and (old_serial is None or not _has_serial(description, old_serial)):
            return True
        return None

    @staticmethod
    def _export(client: Any, arn: str) -> CertBundle:
        passphrase = secrets.token_urlsafe(32).encode("ascii")
        with aws_call(_SERVICE, "ExportCertificate"):
            response = client.export_certificate(CertificateArn=arn, Passphrase=passphrase)
        try:
            key = load_private_key(response["PrivateKey"], password=passphrase)
        except ValueError as exc:
            raise IssuanceError(f"ACM exported a private key for {arn} that cannot be decrypted: {exc}") from None
        chain = join_pem(response.get("CertificateChain", ""))
        return CertBundle.with_key(join_pem(response["Certificate"]), key, chain, arn)


def _has_serial(description: dict[str, Any], serial: int) -> bool:
    """Whether ACM describes the certificate with ``serial``.

    ACM writes serials as colon-separated hex; moto writes them in decimal. Either reading that
    matches counts, so the comparison holds against both.
    """
    raw = str(description.get("Serial") or "")
    readings = set()
    if raw.replace(":", "") and all(c in "0123456789abcdefABCDEF:" for c in raw):
        readings.add(int(raw.replace(":", ""), 16))
    if raw.isdigit():
        readings.add(int(raw))
    return serial in readings
