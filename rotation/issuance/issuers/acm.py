"""ACM issuer: a private certificate requested against the Private CA, then exported.

ACM holds the key. First issuance requests a certificate; forced rotations renew it; scheduled
rotations pick up ACM's own managed renewal, and renew only inside the renewal window when ACM
has not. Every export uses a fresh random passphrase and stores the key decrypted (PKCS#8).

Ownership: ``CERTIFICATE_ARN`` is written into the secret, so whoever can write the secret can
point it at any certificate. The rotation therefore exports or renews only a certificate the
issuance ledger says this secret's own ``RequestCertificate`` returned
(:meth:`rotation.fleet.ledger.Ledger.owns_certificate`, keyed by the ARN DescribeSecret gave). The
:data:`OWNER_TAG` that ``RequestCertificate`` writes is informational (and the IAM backstop that
keeps the role from exporting certificates certrotate never tagged): anyone with
``acm:AddTagsToCertificate`` can write it, so it proves nothing. Without a ledger no ownership can
be proved, and ACM_ISSUED secrets are refused.

The ledger records the CA that actually issued the certificate: ACM's ``CertificateAuthorityArn``
(:attr:`CertBundle.issuer_arn`), not the secret's ``CA_ARN``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rotation.aws import aws_call
from rotation.errors import IssuanceError, SpecError
from rotation.issuance.bundle import CertBundle, join_pem
from rotation.issuance.issuers.base import IssueRequest, SlotBooker, WaitBudget, idempotency_token, paced_calls
from rotation.issuance.keys import load_private_key
from rotation.issuance.plan import Plan, is_due
from rotation.telemetry import logger
from rotation.throttling import retrying_throttles

if TYPE_CHECKING:  # pragma: no cover - the ledger module loads only where one is configured (cold start)
    from rotation.fleet.ledger import Ledger
    from rotation.issuance.policy import Rule

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


def check_owner(ledger: Ledger, description: dict[str, Any], certificate_arn: str, secret_arn: str) -> None:
    """Refuse a certificate the ledger does not record as requested by this secret's rotation.

    Raises:
        SpecError: naming CERTIFICATE_ARN; nothing was exported, renewed or tagged.
        LedgerUnprotected: the ledger table lost its protections; nothing was exported either.
    """
    ledger.require_protected()  # a table that lost its protections proves nothing
    serials = [format(s, "X") for s in _serial_readings(description)]
    if not ledger.owns_certificate(secret_arn, certificate_arn, serials):
        raise SpecError(
            "CERTIFICATE_ARN",
            certificate_arn,
            "the issuance ledger has no record that this secret's rotation requested that certificate "
            "(tags prove nothing); it is neither exported nor renewed",
            "the ARN this secret's rotation wrote, or no CERTIFICATE_ARN (then a new certificate is "
            "requested and recorded: the one-time migration of certificates older than the ledger)",
        )


def check_names(rule: Rule, description: dict[str, Any], certificate_arn: str) -> None:
    """Defence in depth beside the ledger: an existing ACM certificate is exported or renewed only when
    every name ACM describes it with (``DomainName``, ``SubjectAlternativeNames``) is inside the rule
    that governs the secret, so even a forged ownership proof yields nothing outside the secret's
    rule (the exported certificate is checked again after export, :func:`check_issued`; this keeps
    the key inside ACM).

    Raises:
        SpecError: naming CERTIFICATE_ARN and the first name outside the rule.
    """
    names = [
        str(description.get("DomainName") or ""),
        *(str(n) for n in description.get("SubjectAlternativeNames") or []),
    ]
    for name in dict.fromkeys(n for n in names if n):
        if not rule.allows_name(name):
            raise SpecError(
                "CERTIFICATE_ARN",
                certificate_arn,
                f"that certificate names {name!r}, outside issuance policy rule {rule.name!r}; it is neither "
                "exported nor renewed",
                "a certificate whose names the rule covers",
            )


_FAILED = {"FAILED", "REVOKED", "VALIDATION_TIMED_OUT", "INACTIVE", "EXPIRED"}


class AcmIssuer:
    def __init__(
        self, client_for_region: Callable[[str], Any], ledger: Ledger | None = None, pacer: SlotBooker | None = None
    ) -> None:
        self._client_for_region = client_for_region
        self._ledger = ledger
        self._pacer = pacer

    def issue(self, request: IssueRequest, budget: WaitBudget) -> CertBundle:
        if self._ledger is None:
            raise SpecError(
                "CERTIFICATE_TYPE",
                "ACM_ISSUED",
                "ACM certificates need the issuance ledger to prove which secret requested them, and "
                "none is configured (CERTROTATE_LEDGER_TABLE is unset)",
                "PCA_ISSUED, or a deployment with the ledger table (the central stack creates it)",
            )
        client = retrying_throttles(
            self._client_for_region(request.spec.ca_region), budget, paced_calls(self._pacer, request, budget)
        )
        current = request.current
        if request.plan is Plan.ISSUE or current is None or not current.certificate_arn:
            arn = self._request(client, request)
            description = budget.poll(lambda: self._issued(client, arn, None), f"ACM certificate {arn} to be issued")
            return self._export(client, arn, description)
        arn = current.certificate_arn
        serial = current.certificate.serial_number
        description = self._describe(client, arn)
        check_owner(self._ledger, description, arn, request.secret_arn)  # before any export or renewal of arn
        if request.rule is not None:
            check_names(request.rule, description, arn)
        if request.plan is Plan.REFRESH:
            if not _has_serial(description, serial) and description.get("Status") == "ISSUED":
                logger.info("ACM renewed the certificate; exporting it", extra={"certificate_arn": arn})
                return self._export(client, arn, description)
            if not is_due(current, request.spec, request.now):
                return current
            logger.info("certificate is inside its renewal window and ACM has not renewed it; renewing")
        with aws_call(_SERVICE, "RenewCertificate"):
            client.renew_certificate(CertificateArn=arn)
        description = budget.poll(lambda: self._issued(client, arn, serial), f"ACM renewal of {arn}")
        return self._export(client, arn, description)

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

    def _issued(self, client: Any, arn: str, old_serial: int | None) -> dict[str, Any] | None:
        """The description once ``arn`` is ISSUED (with a serial other than ``old_serial``); None to keep waiting."""
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
            return description
        return None

    @staticmethod
    def _export(client: Any, arn: str, description: dict[str, Any]) -> CertBundle:
        passphrase = secrets.token_urlsafe(32).encode("ascii")
        with aws_call(_SERVICE, "ExportCertificate"):
            response = client.export_certificate(CertificateArn=arn, Passphrase=passphrase)
        try:
            key = load_private_key(response["PrivateKey"], password=passphrase)
        except ValueError as exc:
            raise IssuanceError(f"ACM exported a private key for {arn} that cannot be decrypted: {exc}") from None
        chain = join_pem(response.get("CertificateChain", ""))
        issuer = str(description.get("CertificateAuthorityArn") or "")
        return CertBundle.with_key(join_pem(response["Certificate"]), key, chain, arn, issuer)


def _has_serial(description: dict[str, Any], serial: int) -> bool:
    """Whether ACM describes the certificate with ``serial``.

    ACM writes serials as colon-separated hex; moto writes them in decimal. Either reading that
    matches counts, so the comparison holds against both.
    """
    return serial in _serial_readings(description)


def _serial_readings(description: dict[str, Any]) -> set[int]:
    raw = str(description.get("Serial") or "")
    readings: set[int] = set()
    if raw.replace(":", "") and all(c in "0123456789abcdefABCDEF:" for c in raw):
        readings.add(int(raw.replace(":", ""), 16))
    if raw.isdigit():
        readings.add(int(raw))
    return readings
