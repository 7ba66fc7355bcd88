"""Can a client learn that a CA's certificate was revoked? Each rule names what is wrong and the fix. Pure.

:mod:`rotation.cli.revocation_checks` gathers a :class:`CaRevocation` per CA (DescribeCertificateAuthority,
the bucket and its policy, the secrets' current certificates, each CRL URL fetched as a client
fetches it); :func:`findings` applies every rule and returns every finding at once.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from rotation.fleet.crl_facts import (
    LARGE_CRL_BYTES,
    CrlSettings,
    CrlType,
    LeafPointers,
    PublishedCrl,
    s3_location,
    write_policy_statement,
)


class Kind(StrEnum):
    """The closed list of revocation findings (the name ``doctor`` shows after ``revocation/``)."""

    NO_REVOCATION = "no-revocation"
    NO_BUCKET = "no-bucket"
    BUCKET_NOT_WRITABLE = "bucket-not-writable"
    PRIVATE_OBJECTS = "crl-not-public"
    UNREACHABLE = "crl-unreachable"
    NOT_THE_CA_CRL = "crl-not-the-ca-s"
    STALE = "crl-stale"
    OVERDUE = "crl-overdue"
    LARGE = "crl-large"
    PARTITIONED = "crl-partitioned"
    LEAF_WITHOUT_CDP = "leaf-without-cdp"
    LEAF_WITHOUT_AIA = "leaf-without-aia"


@dataclass(frozen=True)
class Finding:
    kind: Kind
    problem: str
    fix: str


@dataclass(frozen=True)
class Leaf:
    """One secret's current certificate, as far as revocation goes."""

    secret: str
    serial: str
    pointers: LeafPointers


@dataclass(frozen=True)
class CaRevocation:
    """Everything the rules look at for one CA."""

    ca_arn: str
    settings: CrlSettings
    bucket_exists: bool = False
    missing_permissions: tuple[str, ...] = ()
    leaves: tuple[Leaf, ...] = ()
    #: URL → the CRL found there, or the reason none was (a client's view).
    fetched: dict[str, PublishedCrl | str] = field(default_factory=dict)


def _update_command(ca_arn: str, settings: CrlSettings, bucket: str) -> str:
    crl = {"Enabled": True, "S3BucketName": bucket, "ExpirationInDays": settings.expiration_days}
    return (
        f"aws acm-pca update-certificate-authority --certificate-authority-arn {shlex.quote(ca_arn)} "
        f"--revocation-configuration {shlex.quote(json.dumps({'CrlConfiguration': crl}))}"
    )


def _policy_command(bucket: str, ca_arn: str) -> str:
    policy = {"Version": "2012-10-17", "Statement": [write_policy_statement(bucket, ca_arn)]}
    return f"aws s3api put-bucket-policy --bucket {shlex.quote(bucket)} --policy {shlex.quote(json.dumps(policy))}"


def _configuration(ca: CaRevocation) -> list[Finding]:
    s = ca.settings
    if not s.enabled and not s.ocsp_enabled:
        bucket = "BUCKET"
        return [
            Finding(
                Kind.NO_REVOCATION,
                "neither a CRL nor OCSP is enabled: a revoked certificate stays trusted by every client",
                f"`aws s3api create-bucket --bucket {bucket}`, then `{_policy_command(bucket, ca.ca_arn)}`, then "
                f"`{_update_command(ca.ca_arn, s, bucket)}`",
            )
        ]
    found = []
    if s.enabled and not ca.bucket_exists:
        found.append(
            Finding(
                Kind.NO_BUCKET,
                f"the CRL bucket {s.bucket!r} does not exist: Private CA cannot publish",
                f"`aws s3api create-bucket --bucket {shlex.quote(s.bucket)}`, "
                f"then `{_policy_command(s.bucket, ca.ca_arn)}`",
            )
        )
    elif s.enabled and ca.missing_permissions:
        found.append(
            Finding(
                Kind.BUCKET_NOT_WRITABLE,
                f"the policy of bucket {s.bucket!r} does not let acm-pca.amazonaws.com "
                f"{', '.join(ca.missing_permissions)}: new CRLs are not written",
                f"`{_policy_command(s.bucket, ca.ca_arn)}` (merge with the statements it has)",
            )
        )
    if s.enabled and s.object_acl == "BUCKET_OWNER_FULL_CONTROL" and not s.custom_cname:
        found.append(
            Finding(
                Kind.PRIVATE_OBJECTS,
                "S3ObjectAcl BUCKET_OWNER_FULL_CONTROL with no CustomCname: the S3 URL in the certificates is "
                "not readable by clients",
                "serve the bucket through CloudFront (origin access control) and set CustomCname to its name",
            )
        )
    return found


def _published(ca: CaRevocation, crl: PublishedCrl, url: str, now: datetime) -> list[Finding]:
    s, found = ca.settings, []
    if not crl.signature_ok:
        found.append(
            Finding(
                Kind.NOT_THE_CA_CRL,
                f"the CRL at {url} is not signed by this CA",
                f"find what else writes {url} (only acm-pca.amazonaws.com may write the CRL objects)",
            )
        )
    if crl.stale(now):
        found.append(
            Finding(
                Kind.STALE,
                f"the CRL at {url} is past its nextUpdate {crl.next_update}: clients that check revocation "
                "refuse every certificate of this CA, others see no revocation since "
                f"{crl.this_update:%Y-%m-%d %H:%M}Z",
                "check the bucket policy and the CloudWatch metrics CRLGenerated and MisconfiguredCRLBucket "
                "(AWS/ACMPrivateCA); behind a CDN, cache it for less than half of ExpirationInDays and invalidate",
            )
        )
    elif crl.overdue(now):
        found.append(
            Finding(
                Kind.OVERDUE,
                f"the CRL at {url} is {crl.age(now)} old: Private CA replaces it at half its validity",
                "check the CloudWatch metrics CRLGenerated and MisconfiguredCRLBucket; behind a CDN, lower its TTL",
            )
        )
    if crl.size > LARGE_CRL_BYTES:
        found.append(
            Finding(
                Kind.LARGE,
                f"the CRL at {url} is {crl.size:,} bytes ({len(crl.serials):,} entries): every client downloads "
                "it whole at each refresh",
                "set CrlType PARTITIONED (clients must handle its critical IDP) or issue shorter-lived "
                "certificates, so revoked entries leave the CRL sooner",
            )
        )
    if crl.idp_critical or s.crl_type is CrlType.PARTITIONED:
        found.append(
            Finding(
                Kind.PARTITIONED,
                f"the CRL at {url} is partitioned: its Issuing Distribution Point extension is critical, and "
                "a client that cannot process it rejects the CRL (and so the certificate)",
                "check every client library handles a critical IDP (OpenSSL 1.1+ does); else set CrlType COMPLETE",
            )
        )
    return found


def _leaves(ca: CaRevocation) -> list[Finding]:
    s, found = ca.settings, []
    bare = [leaf.secret for leaf in ca.leaves if not leaf.pointers.crl_urls]
    if s.enabled and bare and not s.ocsp_enabled:
        found.append(
            Finding(
                Kind.LEAF_WITHOUT_CDP,
                f"the current certificates of {', '.join(bare)} carry no CRL Distribution Points: clients cannot "
                "find the CRL",
                "set CrlDistributionPointExtensionConfiguration.OmitExtension to false (update-certificate-"
                f"authority), then `certrotate rotate {' '.join(shlex.quote(b) for b in bare)}`",
            )
        )
    no_aia = [leaf.secret for leaf in ca.leaves if not leaf.pointers.ocsp_urls]
    if s.ocsp_enabled and no_aia:
        found.append(
            Finding(
                Kind.LEAF_WITHOUT_AIA,
                f"OCSP is enabled but the current certificates of {', '.join(no_aia)} name no OCSP responder",
                f"`certrotate rotate {' '.join(shlex.quote(b) for b in no_aia)}` (certificates issued since OCSP "
                "was enabled carry it)",
            )
        )
    return found


def findings(ca: CaRevocation, now: datetime) -> list[Finding]:
    """Every revocation finding for one CA (empty: a client can learn of a revocation)."""
    found = _configuration(ca)
    for url, result in ca.fetched.items():
        if isinstance(result, str):
            location = s3_location(url)
            moved = ca.settings.enabled and location is not None and location[0] != ca.settings.bucket
            holders = [leaf.secret for leaf in ca.leaves if url in leaf.pointers.crl_urls]
            fix = (
                f"the certificates point to bucket {location[0] if location else '?'}, the CA now to "
                f"{ca.settings.bucket}: `certrotate rotate {' '.join(shlex.quote(h) for h in holders)}`"
                if moved
                else "Private CA writes a CRL about 30 minutes after CRLs are enabled or a revocation; check the "
                "bucket policy and the CloudWatch metric MisconfiguredCRLBucket"
            )
            found.append(Finding(Kind.UNREACHABLE, f"a client cannot download the CRL: {result}", fix))
        else:
            found.extend(_published(ca, result, url, now))
    found.extend(_leaves(ca))
    return found
