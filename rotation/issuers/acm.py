"""ACM issuer: a private certificate requested against the Private CA, then exported.

ACM holds the key. First issuance requests a certificate; forced rotations renew it; scheduled
rotations pick up ACM's own managed renewal, and renew only inside the renewal window when ACM
has not. Every export uses a fresh random passphrase and stores the key decrypted (PKCS#8).

Ownership: ``CERTIFICATE_ARN`` is written into the secret, so whoever can write the secret can
point it at any certificate. The rotation therefore exports or renews only a certificate whose
:data:`OWNER_TAG` names this very secret — a tag written by ``RequestCertificate`` itself, and
never added afterwards (the rotation role's IAM policy allows tagging only certificates that do
not carry it yet, and exporting or renewing only those that do).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from rotation.aws import aws_call
from rotation.bundle import CertBundle, join_pem
from rotation.errors import IssuanceError, SpecError
from rotation.issuers.base import IssueRequest, WaitBudget, idempotency_token
from rotation.keys import load_private_key
from rotation.renewal import Plan, is_due
from rotation.telemetry import logger
from rotation.throttling import retrying_throttles

_SERVICE = "acm"
ACM_TOKEN_LENGTH = 32
#: Tag on an ACM certificate naming the one secret whose rotation requested it.
OWNER_TAG = "certrotate:secret-arn"


def owner_tag(secret_arn: str) -> dict[str, str]:
    """The ownership tag ``RequestCertificate`` writes; the *Certificate Available* handler reads it too."""
    return {"Key": OWNER_TAG, "Value": secret_arn}


def certificate_owner(client: Any, certificate_arn: str) -> str | None:
    """The secret ARN the certificate's :data:`OWNER_TAG` names, or None."""
    with aws_call(_SERVICE, "ListTagsForCertificate"):
        tags = client.list_tags_for_certificate(CertificateArn=certificate_arn).get("Tags", [])
    return next((str(t.get("Value") or "") or None for t in tags if t.get("Key") == OWNER_TAG), None)


def check_owner(client: Any, certificate_arn: str, secret_arn: str) -> None:
    """Refuse a certificate this secret's rotation did not request.

    Raises:
        SpecError: naming CERTIFICATE_ARN; nothing was exported, renewed or tagged.
    """
    owner = certificate_owner(client, certificate_arn)
    if owner != secret_arn:
        raise SpecError(
            "CERTIFICATE_ARN",
            certificate_arn,
            f"this secret's rotation did not request that certificate (its {OWNER_TAG} tag is "
            f"{'missing' if owner is None else 'another secret'}); it is neither exported nor renewed",
            "the ARN this secret's rotation wrote, or no CERTIFICATE_ARN (then a new certificate is requested)",
        )


_FAILED = {"FAILED", "REVOKED", "VALIDATION_TIMED_OUT", "INACTIVE", "EXPIRED"}


class AcmIssuer:
    def __init__(self, client_for_region: Callable[[str], Any]) -> None:
        self._client_for_region = client_for_region

    def issue(self, request: IssueRequest, budget: WaitBudget) -> CertBundle:
        client = retrying_throttles(self._client_for_region(request.spec.ca_region), budget)
        current = request.current
        if request.plan is Plan.ISSUE or current is None:
            arn = self._request(client, request)
            budget.poll(lambda: self._issued(client, arn, None), f"ACM certificate {arn} to be issued")
            check_owner(client, arn, request.secret_arn)
            return self._export(client, arn)
        arn = current.certificate_arn
        serial = current.certificate.serial_number
        check_owner(client, arn, request.secret_arn)  # before any export or renewal of arn
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
                # The secret is part of the token: another secret's rotation replaying this one's
                # ClientRequestToken (RotateSecret lets its caller choose it) gets its own certificate.
                IdempotencyToken=idempotency_token(
                    request.token, spec.ca_arn, request.secret_arn, length=ACM_TOKEN_LENGTH
                ),
                Tags=[owner_tag(request.secret_arn)],
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
