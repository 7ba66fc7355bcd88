"""``doctor``'s revocation checks, per CA: gather what a client would see, then the pure rules judge it.

For each CA the secrets use: its RevocationConfiguration (DescribeCertificateAuthority), the CRL
bucket and its policy (HeadBucket, GetBucketLocation, GetBucketPolicy), the CA certificate, the
CDP/AIA extensions of each secret's current certificate, and each CRL URL downloaded as a client
downloads it (:func:`rotation.cli.crl_fetch.fetch_crl`). :func:`rotation.fleet.revocation_findings.findings`
says what is wrong and the fix; each finding is a FAIL line named ``CA <arn> revocation/<kind>``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from rotation.aws import aws_call
from rotation.cli.check import UNREACHABLE as _UNREACHABLE
from rotation.cli.check import Check, Outcome
from rotation.cli.crl_fetch import CrlFetchError, fetch_crl
from rotation.cli.inventory import SecretRecord
from rotation.cli.session import AwsContext
from rotation.errors import AwsCallError, CertRotateError
from rotation.fleet.crl_facts import (
    CrlParseError,
    CrlSettings,
    PublishedCrl,
    crl_url,
    fetchable,
    leaf_pointers,
    missing_write_permissions,
    object_key,
    read_crl,
)
from rotation.fleet.revocation_findings import CaRevocation, Leaf, findings


def check_ca(aws: AwsContext, ca_arn: str, using: Sequence[SecretRecord]) -> Iterator[Check]:
    """One ``ok`` line for the CA, or one FAIL line per finding (an AWS error is its own FAIL line)."""
    name = f"CA {ca_arn} revocation"
    try:
        facts = gather(aws, ca_arn, using)
        if facts is None:
            yield Check(name, Outcome.SKIP, "the CA is not ACTIVE (its own line says why): revocation not checked")
            return
    except (AwsCallError, CertRotateError) as exc:
        if isinstance(exc, AwsCallError) and exc.code in _UNREACHABLE:
            raise  # doctor stops: AWS is unreachable (exit 4)
        yield Check(name, Outcome.FAIL, f"could not be checked: {exc}")
        return
    found = findings(facts, datetime.now(UTC))
    for finding in found:
        yield Check(f"{name}/{finding.kind.value}", Outcome.FAIL, f"{finding.problem}; fix: {finding.fix}")
    if not found:
        yield Check(name, Outcome.OK, _summary(facts))


def _summary(facts: CaRevocation) -> str:
    s = facts.settings
    parts = [f"CRL in {s.bucket}" if s.enabled else "no CRL", "OCSP" if s.ocsp_enabled else "no OCSP"]
    for url, crl in facts.fetched.items():
        if isinstance(crl, PublishedCrl):
            parts.append(
                f"{url}: {len(crl.serials)} revoked, {crl.size:,} bytes, "
                f"this update {crl.this_update:%Y-%m-%d %H:%M}Z, next {crl.next_update:%Y-%m-%d %H:%M}Z"
            )
    parts.append(f"{len(facts.leaves)} current certificate(s) point to it")
    return "; ".join(parts)


def gather(aws: AwsContext, ca_arn: str, using: Sequence[SecretRecord]) -> CaRevocation | None:
    """What the rules need for one CA; None for a CA that is not ACTIVE.

    Raises:
        AwsCallError: DescribeCertificateAuthority or GetCertificateAuthorityCertificate failed.
    """
    region = ca_arn.split(":")[3] if ca_arn.count(":") >= 5 else None
    pca = aws.client("acm-pca", region)
    with aws_call("acm-pca", "DescribeCertificateAuthority"):
        authority = pca.describe_certificate_authority(CertificateAuthorityArn=ca_arn)["CertificateAuthority"]
    settings = CrlSettings.parse(authority.get("RevocationConfiguration"))
    if authority.get("Status") != "ACTIVE":
        return None
    with aws_call("acm-pca", "GetCertificateAuthorityCertificate"):
        pem = pca.get_certificate_authority_certificate(CertificateAuthorityArn=ca_arn)["Certificate"]
    ca_certificate = x509.load_pem_x509_certificate(str(pem).encode())
    leaves = tuple(_leaves(using))
    exists, missing, bucket_region = False, list[str](), region or aws.region_name
    if settings.enabled:
        exists, missing, bucket_region = _bucket(aws, settings, ca_arn, bucket_region)
    urls = list(dict.fromkeys(url for leaf in leaves for url in leaf.pointers.crl_urls))
    if settings.enabled and exists and not urls:
        urls = [crl_url(settings, ca_arn, bucket_region)]  # where clients would be told to look
    cnames = {settings.custom_cname.lower(): settings.bucket} if settings.custom_cname else {}
    fetched: dict[str, PublishedCrl | str] = {}
    for url in urls:
        if not fetchable(url, settings):
            fetched[url] = f"{url} is neither an S3 URL nor the CA's CustomCname: not downloaded"
            continue
        try:
            fetched[url] = read_crl(fetch_crl(url, endpoint_url=aws.endpoint_url, cnames=cnames), ca_certificate)
        except (CrlFetchError, CrlParseError) as exc:
            fetched[url] = str(exc)
    return CaRevocation(ca_arn, settings, exists, tuple(missing), leaves, fetched)


def _leaves(using: Sequence[SecretRecord]) -> Iterator[Leaf]:
    for record in using:
        pem = (record.fields or {}).get("CERTIFICATE_PEM")
        if not isinstance(pem, str) or not pem:
            continue
        try:
            certificate = x509.load_pem_x509_certificate(pem.encode())
        except ValueError:
            continue  # the secret checks name an unreadable certificate
        yield Leaf(record.name, format(certificate.serial_number, "X"), leaf_pointers(certificate))


def _bucket(aws: AwsContext, settings: CrlSettings, ca_arn: str, region: str) -> tuple[bool, list[str], str]:
    """(exists, the write permissions its policy lacks for Private CA, its region)."""
    s3: Any = aws.client("s3")
    try:
        with aws_call("s3", "HeadBucket"):
            s3.head_bucket(Bucket=settings.bucket)
    except AwsCallError as exc:
        if exc.code in ("404", "NoSuchBucket", "NotFound"):
            return False, [], region
        raise
    with aws_call("s3", "GetBucketLocation"):
        location = s3.get_bucket_location(Bucket=settings.bucket).get("LocationConstraint") or "us-east-1"
    try:
        with aws_call("s3", "GetBucketPolicy"):
            policy = s3.get_bucket_policy(Bucket=settings.bucket)["Policy"]
    except AwsCallError as exc:
        if exc.code != "NoSuchBucketPolicy":
            raise
        policy = None
    return True, missing_write_permissions(policy, settings.bucket, ca_arn, object_key(settings, ca_arn)), location
