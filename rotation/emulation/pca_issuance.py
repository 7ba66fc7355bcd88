"""moto's Private CA IssueCertificate made to issue as AWS Private CA does: validity, backdating, refusals.

moto 5.2 ignores ``Validity``, ``ValidityNotBefore``, ``SigningAlgorithm`` and ``IdempotencyToken``
(every certificate lives 365 days from the second of issue and is signed with SHA-512), issues from a
CA in any state and past the CA's own expiry. :func:`teach_moto_private_ca_issuance` replaces
moto's IssueCertificate handler with one that follows the Private CA API reference (IssueCertificate
and the ``Validity`` data type; the same text is in botocore's ``acm-pca`` model, service-2.json):

- notBefore is the issue time minus 60 minutes unless ``ValidityNotBefore`` (type ABSOLUTE) says
  otherwise ("compensates for clock inconsistencies"; AWS knowledge center "private-ca-validity-period");
- notAfter comes from ``Validity``: DAYS, MONTHS and YEARS count from the moment of issuance (whole
  calendar months and years; at a month's end the day is clamped to the month's last day, as
  ``java.time`` does: the reference gives no rule for it), ABSOLUTE is seconds since the Unix epoch,
  END_DATE is UTCTime ``YYMMDDHHMMSS`` (YY >= 50 means 19YY) or GeneralizedTime ``YYYYMMDDHHMMSS``;
  a relative validity is at least one day, an absolute one at least one second;
- "The end of the validity period configured on a certificate must not exceed the limit set on its
  parents in the CA hierarchy": past the CA certificate's notAfter the call fails with
  ``ValidationException`` (the user guide's exception table, PCATsExceptions, and ACM's
  ``PCA_INVALID_DURATION``, which it says comes from Private CA's ValidationException);
- the signing algorithm's family "must match the algorithm family of the CA's secret key", else
  ``InvalidArgsException`` (PCATsExceptions: check that the signing algorithm can be used with the
  CA's key type); the certificate is signed with the hash it names;
- a CA that is not ACTIVE issues nothing (``InvalidStateException``), except a CA waiting for its
  certificate signing its own root certificate; a CSR that does not parse or whose signature does
  not verify is a ``MalformedCSRException``;
- the same ``IdempotencyToken`` within five minutes returns the certificate already issued.

Templates are moto's (with :func:`rotation.emulation.pki.teach_moto_server_auth_templates`).
"""

from __future__ import annotations

import base64
import calendar
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from moto.core.utils import utcnow
from moto.moto_api._internal import mock_random

from rotation.emulation.pca_errors import PrivateCaError

#: notBefore = issue time - BACKDATE unless ValidityNotBefore is given.
BACKDATE = timedelta(minutes=60)
#: How long an IdempotencyToken returns the same certificate.
IDEMPOTENCY_WINDOW = timedelta(minutes=5)
ROOT_TEMPLATE = "arn:aws:acm-pca:::template/RootCACertificate/V1"
_HASHES: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "SHA256": hashes.SHA256,
    "SHA384": hashes.SHA384,
    "SHA512": hashes.SHA512,
}
_SIGNING = re.compile(r"^(SHA256|SHA384|SHA512)WITH(RSA|ECDSA)$")
_END_DATE = {12: "%y%m%d%H%M%S", 14: "%Y%m%d%H%M%S"}


def _validation(message: str) -> PrivateCaError:
    return PrivateCaError("ValidationException", message)


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    if year > 9999:
        raise _validation(f"Validity ends after the year 9999 ({months} months)")
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def validity_time(validity: Mapping[str, Any], issued_at: datetime, *, name: str = "Validity") -> datetime:
    """The moment ``validity`` names for a certificate issued at ``issued_at``.

    Raises:
        PrivateCaError: ValidationException for an unknown type or a value the type cannot mean.
    """
    kind, value = validity.get("Type"), validity.get("Value")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _validation(f"{name}.Value {value!r} is not a positive integer")
    try:
        if kind == "DAYS":
            return issued_at + timedelta(days=value)
        if kind in ("MONTHS", "YEARS"):
            return _add_months(issued_at, value * (12 if kind == "YEARS" else 1))
        if kind == "ABSOLUTE":
            return datetime.fromtimestamp(value, UTC)
        if kind == "END_DATE" and len(str(value)) in _END_DATE:
            return datetime.strptime(str(value), _END_DATE[len(str(value))]).replace(tzinfo=UTC)
    except (OverflowError, ValueError, OSError):
        raise _validation(f"{name} {kind} {value} is not a valid time") from None
    raise _validation(f"{name}.Type {kind!r} with value {value} is not END_DATE, ABSOLUTE, DAYS, MONTHS or YEARS")


def _csr(encoded: str) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_pem_x509_csr(base64.b64decode(encoded))
    except ValueError:
        raise PrivateCaError("MalformedCSRException", "the certificate signing request does not parse") from None
    if not csr.is_signature_valid:
        raise PrivateCaError("MalformedCSRException", "the certificate signing request's signature does not verify")
    return csr


def _hash_for(ca: Any, algorithm: str) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512:
    match = _SIGNING.fullmatch(algorithm or "")
    key = ca.key
    family = (
        "RSA" if isinstance(key, rsa.RSAPrivateKey) else "ECDSA" if isinstance(key, ec.EllipticCurvePrivateKey) else ""
    )
    if match is None or match.group(2) != family:
        raise PrivateCaError(
            "InvalidArgsException",
            f"SigningAlgorithm {algorithm!r} cannot be used with this CA's {family or 'unknown'} key",
        )
    return _HASHES[match.group(1)]()


def _check_state(ca: Any, template_arn: str | None) -> None:
    if ca.status == "ACTIVE" or (ca.status == "PENDING_CERTIFICATE" and template_arn == ROOT_TEMPLATE):
        return
    raise PrivateCaError("InvalidStateException", f"the certificate authority {ca.arn} is {ca.status}, not ACTIVE")


def _validity_window(ca: Any, params: Mapping[str, Any], issued_at: datetime) -> tuple[datetime, datetime]:
    not_after = validity_time(params.get("Validity") or {}, issued_at)
    start = params.get("ValidityNotBefore")
    if start is not None and start.get("Type") != "ABSOLUTE":
        raise _validation(f"ValidityNotBefore.Type {start.get('Type')!r}: only ABSOLUTE is accepted")
    not_before = validity_time(start, issued_at, name="ValidityNotBefore") if start else issued_at - BACKDATE
    if not_after < issued_at + timedelta(seconds=1):
        raise _validation(f"Validity ends at {not_after.isoformat()}, before the issue time")
    if not_before >= not_after:
        raise _validation("ValidityNotBefore is not before the end of Validity")
    parent = ca.certificate
    if parent is not None and not_after > parent.not_valid_after_utc:
        raise _validation(
            f"Validity ends at {not_after.isoformat()}, after the issuing CA certificate's "
            f"{parent.not_valid_after_utc.isoformat()}"
        )
    return not_before, not_after


def issue(ca: Any, params: Mapping[str, Any], issued_at: datetime) -> str:
    """IssueCertificate on moto's CA object; returns the certificate ARN.

    Raises:
        PrivateCaError: what Private CA refuses (see the module docstring).
    """
    token = params.get("IdempotencyToken")
    tokens: dict[str, tuple[datetime, str]] = ca.__dict__.setdefault("certrotate_idempotency", {})
    if token and token in tokens and issued_at - tokens[token][0] < IDEMPOTENCY_WINDOW:
        return tokens[token][1]
    template_arn = params.get("TemplateArn")
    _check_state(ca, template_arn)
    digest = _hash_for(ca, str(params.get("SigningAlgorithm") or ""))
    not_before, not_after = _validity_window(ca, params, issued_at)
    csr = _csr(str(params.get("Csr") or ""))
    builder = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca.issuer)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for extension, critical in ca._x509_extensions(csr, template_arn):
        builder = builder.add_extension(extension, critical)
    if template_arn != ROOT_TEMPLATE:
        from rotation.emulation.pca_crl import revocation_extensions

        for extension, critical in revocation_extensions(ca):  # CDP / AIA, as the CA's configuration says
            builder = builder.add_extension(extension, critical)
    certificate = builder.sign(ca.key, digest).public_bytes(serialization.Encoding.PEM)
    arn = f"{ca.arn}/certificate/{str(mock_random.uuid4()).replace('-', '')}"
    ca.issued_certificates[arn] = certificate
    if template_arn != ROOT_TEMPLATE:
        ca.issued_certificates_certificate_chains[arn] = ca.certificate_bytes
    if token:
        tokens[token] = (issued_at, arn)
    return arn


def teach_moto_private_ca_issuance() -> None:
    """Replace moto's IssueCertificate handler with :func:`issue` (idempotent, for the process)."""
    import json

    from moto.acmpca.responses import ACMPCAResponse

    if getattr(ACMPCAResponse.issue_certificate, "certrotate_issuance", False):
        return

    def issue_certificate(self: Any) -> str:
        params = json.loads(self.body)
        ca = self.acmpca_backend.describe_certificate_authority(params.get("CertificateAuthorityArn"))
        return json.dumps({"CertificateArn": issue(ca, params, utcnow().replace(tzinfo=UTC, microsecond=0))})

    issue_certificate.certrotate_issuance = True
    ACMPCAResponse.issue_certificate = issue_certificate  # type: ignore[method-assign]


__all__ = [
    "BACKDATE",
    "IDEMPOTENCY_WINDOW",
    "PrivateCaError",
    "issue",
    "teach_moto_private_ca_issuance",
    "validity_time",
]
