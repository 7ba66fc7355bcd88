"""moto's Private CA made to publish certificate revocation lists into moto's S3 as AWS Private CA does.

moto 5.2 stores a CA's ``RevocationConfiguration`` and the serials RevokeCertificate was given, and does
nothing else with them: no CRL, no CDP extension, no check of the bucket. Following the Private CA API
reference (CrlConfiguration, RevocationConfiguration, CreateCertificateAuthority; the same text is in
botocore's ``acm-pca`` model) and the user guide's "Set up a CRL" page (see :mod:`rotation.fleet.crl_facts`):

- CreateCertificateAuthority and UpdateCertificateAuthority with ``CrlConfiguration.Enabled`` fail with
  ``InvalidArgsException`` when ``S3BucketName`` is missing, the bucket does not exist, or its policy
  does not let ``acm-pca.amazonaws.com`` write (``s3:PutObject``; ``s3:GetBucketAcl``, the permission the
  service's error names in the knowledge-center article "acm-ca-crl-s3-getbucketacl"); also when
  ``OmitExtension`` is set with a ``CustomCname`` ("cannot be enabled with a custom CNAME set"), when
  the CNAME carries a protocol prefix, ``ExpirationInDays`` is outside 1..5000, or ``S3ObjectAcl`` is
  PUBLIC_READ (the default) on a bucket whose Block Public Access blocks public ACLs (S3ObjectAcl's text);
- the CRL object gets the canned ACL ``S3ObjectAcl`` names: public-read, or bucket-owner-full-control,
  which an anonymous client cannot read (moto's S3 enforces it on unsigned GETs);
- each certificate the CA issues carries the CRL Distribution Points extension with the CRL's URL
  unless ``OmitExtension``, and, with OCSP enabled, an Authority Information Access extension naming
  the OCSP responder (``http://ocsp.acm-pca.<region>.amazonaws.com`` or ``OcspCustomCname``);
- the CA writes a DER CRL, signed with its key, to ``crl/<CA id>.crl`` (partitioned: under
  ``crl/<CA id>/``, with a critical Issuing Distribution Point extension): at once when the CA
  becomes ACTIVE with CRLs enabled or an update changes its CRL configuration, "approximately 30
  minutes after a certificate is revoked", and at half the CRL's validity (``nextUpdate`` =
  ``thisUpdate`` + ``ExpirationInDays``); a write that fails (bucket gone, policy changed) is tried
  again every 15 minutes. A revoked certificate stays listed until it expires and in one more CRL.

Time is emulated: :func:`publish_due_crls` publishes what is due at the ``now`` it is given, on a
:class:`CrlSchedule` (the documented one by default; the sandbox and tests compress it), and
:func:`crl_publisher` calls it from a thread, as the service's own scheduler would run.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from rotation.emulation.pca_clock import ca_now
from rotation.emulation.pca_errors import PrivateCaError
from rotation.fleet.crl_facts import (
    PUBLICATION_DELAY,
    RETRY_INTERVAL,
    CrlSettings,
    CrlType,
    crl_url,
    missing_write_permissions,
    object_key,
    pca_serial,
)

_REASONS = {
    "UNSPECIFIED": x509.ReasonFlags.unspecified,
    "KEY_COMPROMISE": x509.ReasonFlags.key_compromise,
    "CERTIFICATE_AUTHORITY_COMPROMISE": x509.ReasonFlags.ca_compromise,
    "AFFILIATION_CHANGED": x509.ReasonFlags.affiliation_changed,
    "SUPERSEDED": x509.ReasonFlags.superseded,
    "CESSATION_OF_OPERATION": x509.ReasonFlags.cessation_of_operation,
    "PRIVILEGE_WITHDRAWN": x509.ReasonFlags.privilege_withdrawn,
    "A_A_COMPROMISE": x509.ReasonFlags.aa_compromise,
}
_HASHES: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "SHA256": hashes.SHA256,
    "SHA384": hashes.SHA384,
    "SHA512": hashes.SHA512,
}


@dataclass(frozen=True)
class CrlSchedule:
    """When the emulated CA writes a CRL: the documented delays, or compressed ones."""

    after_revocation: timedelta = PUBLICATION_DELAY
    retry: timedelta = RETRY_INTERVAL


@dataclass(frozen=True)
class CrlState:
    """What one CA has published (kept on moto's CA object)."""

    published_at: datetime | None = None
    listed: frozenset[int] = frozenset()
    number: int = 0
    failed_at: datetime | None = None
    error: str = ""
    history: tuple[datetime, ...] = field(default=(), repr=False)


def _s3(account_id: str) -> Any:
    from moto.s3.models import s3_backends

    return s3_backends[account_id]["aws"]


def _invalid(message: str) -> PrivateCaError:
    return PrivateCaError("InvalidArgsException", message)


def check_revocation_configuration(revocation: Mapping[str, Any] | None, ca_arn: str) -> None:
    """Refuse what Private CA refuses in a RevocationConfiguration (see the module docstring).

    Raises:
        PrivateCaError: InvalidArgsException naming the field, its value and what is needed.
    """
    crl = dict((revocation or {}).get("CrlConfiguration") or {})
    if not crl.get("Enabled"):
        return
    days = crl.get("ExpirationInDays")
    if days is not None and not 1 <= int(days) <= 5000:
        raise _invalid(f"CrlConfiguration.ExpirationInDays {days} is outside 1..5000")
    cname = str(crl.get("CustomCname") or "")
    if cname.lower().startswith(("http://", "https://")):
        raise _invalid(f"CrlConfiguration.CustomCname {cname!r} must not include a protocol prefix")
    if cname and (crl.get("CrlDistributionPointExtensionConfiguration") or {}).get("OmitExtension"):
        raise _invalid("CrlDistributionPointExtensionConfiguration.OmitExtension cannot be true with a CustomCname")
    bucket_name = str(crl.get("S3BucketName") or "")
    if not bucket_name:
        raise _invalid("CrlConfiguration.S3BucketName is required when CRLs are enabled")
    bucket = _s3(ca_arn.split(":")[4]).buckets.get(bucket_name)
    if bucket is None:
        raise _invalid(f"CrlConfiguration.S3BucketName {bucket_name!r}: the bucket does not exist")
    settings = CrlSettings.parse(revocation)
    block = bucket.public_access_block
    if settings.object_acl == "PUBLIC_READ" and block is not None and block.block_public_acls:
        raise _invalid(
            f"CrlConfiguration.S3ObjectAcl PUBLIC_READ: bucket {bucket_name!r} blocks public ACLs "
            "(Block Public Access); use BUCKET_OWNER_FULL_CONTROL"
        )
    policy = bucket.policy.decode() if bucket.policy else None
    missing = missing_write_permissions(policy, bucket_name, ca_arn, object_key(settings, ca_arn))
    if missing:
        raise _invalid(
            f"The Private CA service principal 'acm-pca.amazonaws.com' requires {', '.join(map(repr, missing))} "
            f"permissions on bucket {bucket_name!r}"
        )


def revocation_extensions(ca: Any) -> list[tuple[x509.ExtensionType, bool]]:
    """The CDP (and, with OCSP, AIA) extensions Private CA adds to what ``ca`` issues."""
    settings = CrlSettings.parse(ca.revocation_configuration)
    found: list[tuple[x509.ExtensionType, bool]] = []
    if settings.enabled and not settings.omit_extension:
        bucket = _s3(ca.account_id).buckets.get(settings.bucket)
        url = crl_url(settings, ca.arn, bucket.region_name if bucket is not None else ca.region_name)
        point = x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None)
        found.append((x509.CRLDistributionPoints([point]), False))
    if settings.ocsp_enabled:
        host = settings.ocsp_cname or f"ocsp.acm-pca.{ca.region_name}.amazonaws.com"
        location = x509.UniformResourceIdentifier(f"http://{host}")
        found.append(
            (
                x509.AuthorityInformationAccess(
                    [x509.AccessDescription(x509.oid.AuthorityInformationAccessOID.OCSP, location)]
                ),
                False,
            )
        )
    return found


def _state(ca: Any) -> CrlState:
    state: CrlState = ca.__dict__.get("certrotate_crl", CrlState())
    return state


def _revoked(ca: Any) -> dict[int, tuple[datetime, str]]:
    return {
        pca_serial(serial): (
            datetime.fromtimestamp(float(entry["revocation_time"]), UTC),
            str(entry["revocation_reason"]),
        )
        for serial, entry in ca.revoked_certificates.items()
    }


def due(
    state: CrlState,
    revoked: Mapping[int, tuple[datetime, str]],
    validity: timedelta,
    now: datetime,
    schedule: CrlSchedule,
) -> str:
    """Why a CRL is due at ``now`` ("" when none is). Pure."""
    if state.failed_at is not None:
        return "retry" if now >= state.failed_at + schedule.retry else ""
    if state.published_at is None:
        return "enabled"
    waiting = [at for serial, (at, _) in revoked.items() if serial not in state.listed]
    if waiting and now >= min(waiting) + schedule.after_revocation:
        return "revocation"
    if now >= state.published_at + validity / 2:
        return "refresh"
    return ""


def _expiry_by_serial(ca: Any) -> dict[int, datetime]:
    found = {}
    for pem in ca.issued_certificates.values():
        certificate = x509.load_pem_x509_certificate(pem)
        found[certificate.serial_number] = certificate.not_valid_after_utc
    return found


def _sign(
    ca: Any, settings: CrlSettings, entries: Mapping[int, tuple[datetime, str]], now: datetime, number: int
) -> bytes:
    issuer = ca.certificate
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(now)
        .next_update(now + settings.validity)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
    )
    if settings.crl_type is CrlType.PARTITIONED:
        bucket = _s3(ca.account_id).buckets.get(settings.bucket)
        url = crl_url(settings, ca.arn, bucket.region_name if bucket is not None else ca.region_name)
        point = x509.IssuingDistributionPoint(
            [x509.UniformResourceIdentifier(url)], None, False, False, None, False, False
        )
        builder = builder.add_extension(point, critical=True)
    for serial, (at, reason) in sorted(entries.items()):
        revoked = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(at)
        flag = _REASONS.get(reason, x509.ReasonFlags.unspecified)
        builder = builder.add_revoked_certificate(revoked.add_extension(x509.CRLReason(flag), critical=False).build())
    algorithm = str(ca.certificate_authority_configuration.get("SigningAlgorithm") or "SHA256WITHRSA")
    digest = _HASHES.get(algorithm.split("WITH", maxsplit=1)[0], hashes.SHA256)()
    return builder.sign(ca.key, digest).public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True)
class Publication:
    """One CRL write the emulated CA attempted."""

    ca_arn: str
    reason: str
    at: datetime
    key: str
    serials: frozenset[int]
    error: str = ""


def publish(ca: Any, now: datetime, reason: str) -> Publication:
    """Write ``ca``'s CRL now, as the service does (its write is checked against the bucket policy)."""
    settings = CrlSettings.parse(ca.revocation_configuration)
    state = _state(ca)
    key = object_key(settings, ca.arn)
    s3 = _s3(ca.account_id)
    bucket = s3.buckets.get(settings.bucket)
    error = ""
    if bucket is None:
        error = f"bucket {settings.bucket!r} does not exist"
    else:
        missing = missing_write_permissions(
            bucket.policy.decode() if bucket.policy else None, settings.bucket, ca.arn, key
        )
        if missing:
            error = f"bucket {settings.bucket!r} policy denies acm-pca.amazonaws.com {', '.join(missing)}"
    if error:
        ca.certrotate_crl = replace(state, failed_at=now, error=error)
        return Publication(ca.arn, reason, now, key, frozenset(), error)
    expiry = _expiry_by_serial(ca)
    since = state.published_at or now
    entries = {s: v for s, v in _revoked(ca).items() if s not in expiry or expiry[s] >= since}
    number = max(state.number + 1, int(now.timestamp() * 1000))  # the guide's sample numbers CRLs in milliseconds
    from moto.s3.models import get_canned_acl

    written = s3.put_object(settings.bucket, key, _sign(ca, settings, entries, now, number))
    # S3ObjectAcl: PUBLIC_READ lets any client GET the CRL; BUCKET_OWNER_FULL_CONTROL does not.
    written.acl = get_canned_acl("public-read" if settings.object_acl == "PUBLIC_READ" else "bucket-owner-full-control")
    ca.certrotate_crl = CrlState(now, frozenset(entries), number, None, "", (*state.history, now))
    return Publication(ca.arn, reason, now, key, frozenset(entries))


def _authorities() -> Iterator[Any]:
    from moto.acmpca.models import acmpca_backends

    for account in list(acmpca_backends):
        for region in list(acmpca_backends[account]):
            yield from list(acmpca_backends[account][region].certificate_authorities.values())


def publish_due_crls(now: datetime, schedule: CrlSchedule = CrlSchedule()) -> list[Publication]:
    """Every CRL due at ``now`` in every emulated CA (ACTIVE or DISABLED, CRLs enabled), written."""
    done = []
    for ca in _authorities():
        settings = CrlSettings.parse(ca.revocation_configuration)
        if not settings.enabled or ca.status not in ("ACTIVE", "DISABLED") or ca.certificate is None:
            continue
        reason = due(_state(ca), _revoked(ca), settings.validity, now, schedule)
        if reason:
            done.append(publish(ca, now, reason))
    return done


def published_state(ca: Any) -> CrlState:
    """What ``ca`` has published so far (for tests and the sandbox's log)."""
    return _state(ca)


@contextlib.contextmanager
def crl_publisher(schedule: CrlSchedule = CrlSchedule(), tick: float = 0.2) -> Iterator[list[Publication]]:
    """Run :func:`publish_due_crls` on the wall clock from a thread; yields the publications so far."""
    teach_moto_crl()
    publications: list[Publication] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(tick):
            publications.extend(publish_due_crls(datetime.now(UTC).replace(microsecond=0), schedule))

    thread = threading.Thread(target=run, name="certrotate-crl-publisher", daemon=True)
    thread.start()
    try:
        yield publications
    finally:
        stop.set()
        thread.join(30)


def teach_moto_crl() -> None:
    """Make moto's Create/UpdateCertificateAuthority check the CRL configuration (idempotent)."""
    from moto.acmpca.responses import ACMPCAResponse

    if getattr(ACMPCAResponse.create_certificate_authority, "certrotate_crl", False):
        return
    original_create = ACMPCAResponse.create_certificate_authority
    original_update = ACMPCAResponse.update_certificate_authority
    original_import = ACMPCAResponse.import_certificate_authority_certificate

    def first_crl(ca: Any) -> None:
        """The CRL a CA writes as soon as it is ACTIVE with CRLs enabled."""
        settings = CrlSettings.parse(ca.revocation_configuration)
        if settings.enabled and ca.status == "ACTIVE" and _state(ca).published_at is None:
            publish(ca, ca_now(), "enabled")  # the wall clock, or the scenario's (pca_clock)

    def import_certificate_authority_certificate(self: Any) -> str:
        reply = str(original_import(self))
        first_crl(self.acmpca_backend.certificate_authorities[json.loads(self.body)["CertificateAuthorityArn"]])
        return reply

    def create_certificate_authority(self: Any) -> str:
        reply = str(original_create(self))
        arn = json.loads(reply)["CertificateAuthorityArn"]
        try:
            check_revocation_configuration(json.loads(self.body).get("RevocationConfiguration"), arn)
        except PrivateCaError:
            del self.acmpca_backend.certificate_authorities[arn]
            raise
        return reply

    def update_certificate_authority(self: Any) -> str:
        params = json.loads(self.body)
        arn = str(params.get("CertificateAuthorityArn"))
        self.acmpca_backend.describe_certificate_authority(arn)
        check_revocation_configuration(params.get("RevocationConfiguration"), arn)
        ca = self.acmpca_backend.certificate_authorities[arn]
        before = CrlSettings.parse(ca.revocation_configuration)
        reply = str(original_update(self))
        if CrlSettings.parse(ca.revocation_configuration) != before:
            ca.certrotate_crl = CrlState()  # a new configuration publishes anew
        first_crl(ca)
        return reply

    create_certificate_authority.certrotate_crl = True
    ACMPCAResponse.create_certificate_authority = create_certificate_authority  # type: ignore[method-assign]
    ACMPCAResponse.update_certificate_authority = update_certificate_authority  # type: ignore[method-assign]
    ACMPCAResponse.import_certificate_authority_certificate = (  # type: ignore[method-assign]
        import_certificate_authority_certificate
    )


__all__ = [
    "CrlSchedule",
    "CrlState",
    "Publication",
    "check_revocation_configuration",
    "crl_publisher",
    "due",
    "publish",
    "publish_due_crls",
    "published_state",
    "revocation_extensions",
    "teach_moto_crl",
]
