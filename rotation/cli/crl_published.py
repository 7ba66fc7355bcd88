"""``revoke --compromised``'s last step: wait until clients can see the revocation in the published CRL.

RevokeCertificate changes the CA's records; a client learns of it only from the next CRL, which
Private CA writes "approximately 30 minutes after a certificate is revoked" and, when that write
fails, tries again every 15 minutes (API reference, RevocationConfiguration). So the command polls
the CRL URL of the compromised certificate (its CRL Distribution Points extension; the CA's
configured URL when the certificate carries none), downloaded as a client downloads it
(:func:`rotation.cli.crl_fetch.fetch_crl`) and checked against the CA certificate, until the serial
is listed. The bound, :data:`PUBLISH_TIMEOUT` (60 minutes: the half hour plus two retries), is
``--publish-timeout``; past it, or when the CA publishes no CRL, :class:`NotPublishedError` (exit 5).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rotation.errors import CertRotateError

if TYPE_CHECKING:  # the parser reads this module's bound at every start: cryptography loads only when used
    from cryptography import x509

    from rotation.cli.session import AwsContext

#: Seconds ``revoke --compromised`` waits for the serial to appear in the published CRL (the documented bound).
PUBLISH_TIMEOUT = 3600.0
POLL_SECONDS = 5.0


class NotPublishedError(CertRotateError):
    """The revocation did not reach the CRL that clients download (exit code 5)."""


@dataclass(frozen=True)
class Published:
    """The CRL that first listed the serial."""

    url: str
    this_update: datetime
    seen_at: datetime
    entries: int


def crl_location(aws: AwsContext, ca_arn: str, certificate_pem: str) -> tuple[str, dict[str, str], x509.Certificate]:
    """(the URL a client of this certificate downloads, custom CNAME → bucket, the CA certificate).

    Raises:
        NotPublishedError: the CA publishes no CRL.
        AwsCallError: DescribeCertificateAuthority or GetCertificateAuthorityCertificate failed.
    """
    from cryptography import x509

    from rotation.aws import aws_call
    from rotation.fleet.crl_facts import CrlSettings, crl_url, fetchable, leaf_pointers

    pca: Any = aws.client("acm-pca", ca_arn.split(":")[3])
    with aws_call("acm-pca", "DescribeCertificateAuthority"):
        authority = pca.describe_certificate_authority(CertificateAuthorityArn=ca_arn)["CertificateAuthority"]
    settings = CrlSettings.parse(authority.get("RevocationConfiguration"))
    if not settings.enabled:
        raise NotPublishedError(
            f"the CA {ca_arn} publishes no CRL: no client can learn of this revocation from a CRL "
            "(`certrotate doctor` names the fix; --publish-timeout 0 skips this step)"
        )
    with aws_call("acm-pca", "GetCertificateAuthorityCertificate"):
        ca_pem = pca.get_certificate_authority_certificate(CertificateAuthorityArn=ca_arn)["Certificate"]
    urls: tuple[str, ...] = ()
    if certificate_pem:
        try:
            urls = leaf_pointers(x509.load_pem_x509_certificate(certificate_pem.encode())).crl_urls
        except ValueError:
            urls = ()
    urls = tuple(u for u in urls if fetchable(u, settings))  # the secret's writer chose the PEM: no other host
    url = urls[0] if urls else crl_url(settings, ca_arn, _bucket_region(aws, settings.bucket, ca_arn.split(":")[3]))
    cnames = {settings.custom_cname.lower(): settings.bucket} if settings.custom_cname else {}
    return url, cnames, x509.load_pem_x509_certificate(str(ca_pem).encode())


def _bucket_region(aws: AwsContext, bucket: str, default: str) -> str:
    from rotation.aws import aws_call

    try:
        with aws_call("s3", "GetBucketLocation"):
            return str(aws.client("s3").get_bucket_location(Bucket=bucket).get("LocationConstraint") or "us-east-1")
    except CertRotateError:
        return default


def wait_published(
    aws: AwsContext,
    ca_arn: str,
    serial: str,
    certificate_pem: str,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
) -> Published:
    """Poll the CRL until it lists ``serial`` (hex) in a CRL the CA signed.

    Raises:
        NotPublishedError: the CA publishes no CRL, or ``timeout`` seconds passed first (the message
            says what the URL last gave).
    """
    from rotation.cli.crl_fetch import CrlFetchError, fetch_crl
    from rotation.fleet.crl_facts import CrlParseError, read_crl

    url, cnames, ca_certificate = crl_location(aws, ca_arn, certificate_pem)
    wanted = int(serial.replace(":", ""), 16)
    deadline = time.monotonic() + timeout
    last = "nothing downloaded yet"
    while True:
        try:
            crl = read_crl(fetch_crl(url, endpoint_url=aws.endpoint_url, cnames=cnames), ca_certificate)
        except (CrlFetchError, CrlParseError) as exc:
            last = str(exc)
        else:
            if not crl.signature_ok:
                last = f"the CRL at {url} is not signed by the CA"
            elif wanted in crl.serials:
                return Published(url, crl.this_update, datetime.now(UTC), len(crl.serials))
            else:
                last = (
                    f"the CRL of {crl.this_update:%Y-%m-%d %H:%M:%S}Z does not list it yet ({len(crl.serials)} entries)"
                )
        if time.monotonic() >= deadline:
            raise NotPublishedError(
                f"serial {serial} revoked at the CA but not in the CRL clients download from {url} after "
                f"{timeout:g} s (Private CA publishes about 30 minutes after a revocation, retrying every "
                f"15 minutes): {last}; `certrotate doctor` checks the CRL bucket"
            )
        sleep(min(POLL_SECONDS, max(deadline - time.monotonic(), 0.1)))


def publish_timeout(value: str) -> float:
    """``--publish-timeout``: seconds, 0 (do not wait) or more."""
    import argparse
    import math

    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not math.isfinite(seconds) or seconds < 0:
        raise argparse.ArgumentTypeError(f"--publish-timeout {value!r}: expected seconds, 0 or more")
    return seconds


def published_step(
    aws: AwsContext,
    timeline: Any,
    ca_arn: str,
    serial: str,
    certificate_pem: str,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[dict[str, Any], NotPublishedError | None]:
    """Wait for the CRL, add the "published" line and the timeline summary; (the JSON fields, the failure).

    ``timeline`` is revoke's :class:`~rotation.cli.revoke.Timeline` (its events carry seconds from its start).
    """
    failure: NotPublishedError | None = None
    published: Published | None = None
    if timeout == 0:
        timeline.add("published", "not waited for (--publish-timeout 0)")
    else:
        try:
            published = wait_published(aws, ca_arn, serial, certificate_pem, timeout, sleep)
        except NotPublishedError as exc:
            failure = exc
            timeline.add("unpublished", f"serial {serial} not in the CRL after {timeout:g} s")
        else:
            timeline.add(
                "published",
                f"serial {serial} in the CRL at {published.url} (CRL of {published.this_update:%H:%M:%S}Z, "
                f"{published.entries} entries)",
            )
    times = _times(timeline, published)
    if not timeline.out.json_mode:
        for label, moment in times.items():
            timeline.out.say(f"{label.replace('_', ' '):<15} {moment or '-'}")
    fields: dict[str, Any] = {"times": times}
    if published is not None:
        fields["published"] = {
            "url": published.url,
            "crl_this_update": _stamp(published.this_update),
            "seen_at": _stamp(published.seen_at),
        }
    return fields, failure


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _times(timeline: Any, published: Published | None) -> dict[str, str | None]:
    """revoked at, published at (the CRL's thisUpdate, as a client sees it), hosts moved at (the last one)."""
    from datetime import timedelta

    start = datetime.now(UTC) - timedelta(seconds=time.monotonic() - timeline.started)

    def at(event: str) -> str | None:
        found = [e["seconds"] for e in timeline.events if e["event"] == event]
        return _stamp(start + timedelta(seconds=max(found))) if found else None

    return {
        "revoked_at": at("revoked"),
        "published_at": _stamp(published.this_update) if published else None,
        "hosts_moved_at": at("moved"),
    }
