"""Facts about Private CA certificate revocation lists: where they live, what one says. Pure: no boto3.

Shared by the emulated Private CA (:mod:`rotation.emulation.pca_crl`, which publishes CRLs), ``certrotate
doctor`` (:mod:`rotation.cli.revocation_checks`) and ``certrotate revoke --compromised`` (its "published"
step). The layout follows the Private CA user guide, "Set up a CRL for AWS Private CA" (crl-planning):

- a complete CRL is the object ``crl/<CA id>.crl`` of the configured bucket; its URL, copied into each
  issued certificate's CRL Distribution Points extension, is ``http://<bucket>.s3.<bucket's region>
  .amazonaws.com/crl/<CA id>.crl``, or ``http://<CustomCname>/crl/<CA id>.crl`` with a custom CNAME;
  ``CustomPath`` replaces the ``crl`` directory (API reference, CrlConfiguration);
- a partitioned CRL lives under ``crl/<CA id>/<partition>.crl`` and carries a critical Issuing
  Distribution Point extension naming that URL, which a client must be able to process;
- a CRL is DER, version 2, signed by the CA; ``nextUpdate`` is ``thisUpdate`` + ``ExpirationInDays``.

The bucket policy must let the service principal ``acm-pca.amazonaws.com`` put objects in the bucket
(user guide, "Access policies for CRLs in Amazon S3"; the knowledge-center article
"acm-ca-crl-s3-getbucketacl" shows the statement and the error Private CA returns without it).
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

PCA_PRINCIPAL = "acm-pca.amazonaws.com"
#: ExpirationInDays when the configuration gives none (the value the user guide's examples use).
DEFAULT_EXPIRATION_DAYS = 7
#: "A CRL is typically updated approximately 30 minutes after a certificate is revoked" (CrlConfiguration).
PUBLICATION_DELAY = timedelta(minutes=30)
#: "If for any reason a CRL update fails, [Private CA] makes further attempts every 15 minutes."
RETRY_INTERVAL = timedelta(minutes=15)
#: What ``doctor`` calls a large CRL: every client downloads it whole at each refresh.
LARGE_CRL_BYTES = 1024 * 1024
#: Write actions Private CA needs on the bucket (PutObject on its objects, GetBucketAcl on the bucket).
WRITE_ACTIONS = (("s3:PutObject", "object"), ("s3:GetBucketAcl", "bucket"))
_S3_HOST = re.compile(r"^(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\.s3[.-](?P<region>[a-z0-9-]+)\.amazonaws\.com$")


class CrlType(StrEnum):
    COMPLETE = "COMPLETE"
    PARTITIONED = "PARTITIONED"


@dataclass(frozen=True)
class CrlSettings:
    """A CA's ``RevocationConfiguration`` as DescribeCertificateAuthority returns it, parsed once."""

    enabled: bool
    bucket: str = ""
    expiration_days: int = DEFAULT_EXPIRATION_DAYS
    custom_cname: str = ""
    custom_path: str = ""
    object_acl: str = "PUBLIC_READ"
    omit_extension: bool = False
    crl_type: CrlType = CrlType.COMPLETE
    ocsp_enabled: bool = False
    ocsp_cname: str = ""

    @classmethod
    def parse(cls, revocation: Mapping[str, Any] | None) -> CrlSettings:
        crl = dict((revocation or {}).get("CrlConfiguration") or {})
        ocsp = dict((revocation or {}).get("OcspConfiguration") or {})
        cdp = dict(crl.get("CrlDistributionPointExtensionConfiguration") or {})
        return cls(
            enabled=bool(crl.get("Enabled")),
            bucket=str(crl.get("S3BucketName") or ""),
            expiration_days=int(crl.get("ExpirationInDays") or DEFAULT_EXPIRATION_DAYS),
            custom_cname=str(crl.get("CustomCname") or ""),
            custom_path=str(crl.get("CustomPath") or "").strip("/"),
            object_acl=str(crl.get("S3ObjectAcl") or "PUBLIC_READ"),
            omit_extension=bool(cdp.get("OmitExtension")),
            crl_type=CrlType(str(crl.get("CrlType") or "COMPLETE")),
            ocsp_enabled=bool(ocsp.get("Enabled")),
            ocsp_cname=str(ocsp.get("OcspCustomCname") or ""),
        )

    @property
    def validity(self) -> timedelta:
        return timedelta(days=self.expiration_days)


def ca_id(ca_arn: str) -> str:
    """The CA's id: the last part of its ARN (``…:certificate-authority/<id>``)."""
    return ca_arn.rsplit("/", 1)[-1]


def partition_id(ca_arn: str) -> str:
    """The one partition the emulation keeps per CA (Private CA names partitions by a GUID)."""
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, ca_arn))


def object_key(settings: CrlSettings, ca_arn: str) -> str:
    """The CRL's key in the bucket."""
    if settings.crl_type is CrlType.PARTITIONED:
        folder = settings.custom_path or f"crl/{ca_id(ca_arn)}"
        return f"{folder}/{partition_id(ca_arn)}.crl"
    return f"{settings.custom_path or 'crl'}/{ca_id(ca_arn)}.crl"


def crl_url(settings: CrlSettings, ca_arn: str, bucket_region: str) -> str:
    """The URL Private CA writes into the CDP extension of the certificates it issues."""
    host = settings.custom_cname or f"{settings.bucket}.s3.{bucket_region}.amazonaws.com"
    return f"http://{host}/{object_key(settings, ca_arn)}"


def s3_location(url: str, cnames: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """(bucket, key) of an ``http://<bucket>.s3.<region>.amazonaws.com/<key>`` URL, or of a custom
    CNAME's URL when ``cnames`` maps that host to its bucket; None for any other URL."""
    match = re.fullmatch(r"https?://([^/]+)/(.+)", url)
    if match is None:
        return None
    host, key = match.group(1).lower(), match.group(2)
    if host in (cnames or {}):
        return (cnames or {})[host], key
    s3 = _S3_HOST.fullmatch(host)
    return (s3.group("bucket"), key) if s3 else None


def fetchable(url: str, settings: CrlSettings) -> bool:
    """Whether certrotate downloads ``url``: an S3 URL or the CA's own custom CNAME, nothing else.

    A certificate's CDP comes from the secret's value, which its writer controls: a URL naming any
    other host (an internal service, a metadata endpoint) is reported, never requested.
    """
    cnames = {settings.custom_cname.lower(): settings.bucket} if settings.custom_cname else {}
    return s3_location(url, cnames) is not None


@dataclass(frozen=True)
class PublishedCrl:
    """What a client learns from one downloaded CRL."""

    size: int
    issuer: str
    this_update: datetime
    next_update: datetime | None
    serials: frozenset[int]
    signature_ok: bool
    idp_critical: bool
    idp_urls: tuple[str, ...]

    def age(self, now: datetime) -> timedelta:
        return now - self.this_update

    def stale(self, now: datetime) -> bool:
        """Past its nextUpdate: a client that checks revocation refuses every certificate of the CA."""
        return self.next_update is None or now > self.next_update

    def overdue(self, now: datetime) -> bool:
        """Older than half its validity plus one retry: Private CA should have replaced it by now."""
        if self.next_update is None:
            return True
        return now > self.this_update + (self.next_update - self.this_update) / 2 + RETRY_INTERVAL


class CrlParseError(ValueError):
    """The bytes at a CRL URL are not a DER CRL."""


def read_crl(data: bytes, ca_certificate: x509.Certificate | None) -> PublishedCrl:
    """Parse a DER CRL; its signature is checked against ``ca_certificate`` when given.

    Raises:
        CrlParseError: the bytes are not a DER certificate revocation list.
    """
    try:
        crl = x509.load_der_x509_crl(data)
    except ValueError:
        raise CrlParseError(f"{len(data)} bytes that are not a DER CRL") from None
    signature_ok = False
    if ca_certificate is not None:
        key = ca_certificate.public_key()
        signature_ok = isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey) and crl.is_signature_valid(key)
    idp_critical, urls = False, tuple[str, ...]()
    try:
        idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
    except x509.ExtensionNotFound:
        pass
    else:
        idp_critical = idp.critical
        urls = tuple(str(n.value) for n in idp.value.full_name or () if isinstance(n, x509.UniformResourceIdentifier))
    return PublishedCrl(
        size=len(data),
        issuer=crl.issuer.rfc4514_string(),
        this_update=crl.last_update_utc,
        next_update=crl.next_update_utc,
        serials=frozenset(r.serial_number for r in crl),
        signature_ok=signature_ok,
        idp_critical=idp_critical,
        idp_urls=urls,
    )


@dataclass(frozen=True)
class LeafPointers:
    """Where a certificate tells a client to look for its revocation status."""

    crl_urls: tuple[str, ...]
    ocsp_urls: tuple[str, ...]


def leaf_pointers(certificate: x509.Certificate) -> LeafPointers:
    crl_urls: list[str] = []
    ocsp_urls: list[str] = []
    try:
        points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        points = x509.CRLDistributionPoints([])
    for point in points:
        crl_urls += [str(n.value) for n in point.full_name or () if isinstance(n, x509.UniformResourceIdentifier)]
    try:
        access = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        access = x509.AuthorityInformationAccess([])
    for description in access:
        if description.access_method == x509.oid.AuthorityInformationAccessOID.OCSP:
            ocsp_urls.append(str(description.access_location.value))
    return LeafPointers(tuple(crl_urls), tuple(ocsp_urls))


def pca_serial(serial: str) -> int:
    """A serial as Private CA takes it (``0a:1b:…`` hex, colons optional) as an integer."""
    return int(serial.replace(":", "").strip() or "0", 16)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [] if value is None else [value]


def _matches(patterns: Any, value: str) -> bool:
    return any(fnmatch.fnmatchcase(value.lower(), str(p).lower()) for p in _as_list(patterns))


def _condition_holds(condition: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    """Only StringEquals/StringLike/ArnEquals/ArnLike on keys the context knows; anything else fails
    (a condition this check cannot evaluate proves nothing)."""
    for operator, tests in condition.items():
        if operator not in ("StringEquals", "StringLike", "ArnEquals", "ArnLike") or not isinstance(tests, Mapping):
            return False
        for key, expected in tests.items():
            actual = context.get(str(key).lower())
            if actual is None:
                return False
            like = operator.endswith("Like")
            if not any(fnmatch.fnmatchcase(actual, str(e)) if like else actual == str(e) for e in _as_list(expected)):
                return False
    return True


def _statement_applies(statement: Mapping[str, Any], action: str, resource: str, context: Mapping[str, str]) -> bool:
    principal = statement.get("Principal")
    services = _as_list(principal.get("Service")) if isinstance(principal, Mapping) else _as_list(principal)
    if principal != "*" and PCA_PRINCIPAL not in services:
        return False
    if not _matches(statement.get("Action"), action) or not _matches(statement.get("Resource"), resource):
        return False
    return _condition_holds(statement.get("Condition") or {}, context)


def missing_write_permissions(policy_text: str | None, bucket: str, ca_arn: str, key: str) -> list[str]:
    """The actions the bucket policy does not let ``acm-pca.amazonaws.com`` perform for this CA
    (empty: it may write its CRLs). An explicit Deny wins; conditions on ``aws:SourceArn`` and
    ``aws:SourceAccount`` are evaluated against the CA."""
    try:
        policy = json.loads(policy_text or "{}")
    except ValueError:
        policy = {}
    statements = [s for s in _as_list(policy.get("Statement")) if isinstance(s, Mapping)]
    context = {"aws:sourcearn": ca_arn, "aws:sourceaccount": ca_arn.split(":")[4] if ca_arn.count(":") >= 5 else ""}
    missing = []
    for action, target in WRITE_ACTIONS:
        resource = f"arn:aws:s3:::{bucket}" + (f"/{key}" if target == "object" else "")
        applies = [s for s in statements if _statement_applies(s, action, resource, context)]
        if any(s.get("Effect") == "Deny" for s in applies) or not any(s.get("Effect") == "Allow" for s in applies):
            missing.append(action)
    return missing


def write_policy_statement(bucket: str, ca_arn: str) -> dict[str, Any]:
    """The bucket-policy statement that lets this CA write its CRLs (the user guide's, scoped to the CA)."""
    return {
        "Sid": "PrivateCaWritesCrl",
        "Effect": "Allow",
        "Principal": {"Service": PCA_PRINCIPAL},
        "Action": ["s3:PutObject", "s3:PutObjectAcl", "s3:GetBucketAcl", "s3:GetBucketLocation"],
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        "Condition": {"StringEquals": {"aws:SourceArn": ca_arn}},
    }
