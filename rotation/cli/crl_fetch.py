"""Download a CRL the way a client does: the one fetch function, with the emulation's mapping isolated.

A TLS client that checks revocation reads the URL in the certificate's CRL Distribution Points
extension with a plain, anonymous HTTP GET. Against AWS that is what :func:`fetch_crl` does. When the
command line talks to an emulated AWS (``--endpoint-url`` / ``AWS_ENDPOINT_URL``: the sandbox, the
tests) the URL's host does not exist: :func:`_emulated_get` maps an S3 URL
(``http://<bucket>.s3.<region>.amazonaws.com/<key>``, or a CA's custom CNAME, whose bucket the CA's
configuration names) to the bucket and key, and reads them anonymously from the emulated S3.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping

from rotation.errors import CertRotateError
from rotation.fleet.crl_facts import s3_location

#: Seconds one download may take (a client's CRL fetch is a short GET).
FETCH_TIMEOUT = 10.0
#: Bytes read at most: a CRL larger than this is reported as such, not kept in memory.
MAX_CRL_BYTES = 64 * 1024 * 1024


class CrlFetchError(CertRotateError):
    """The CRL URL did not give a CRL to an anonymous client."""


def fetch_crl(url: str, *, endpoint_url: str | None, cnames: Mapping[str, str] | None = None) -> bytes:
    """The bytes a client gets from ``url``.

    Args:
        url: the URL from a certificate's CDP extension (or the CA's configuration).
        endpoint_url: the emulated AWS endpoint, when the CLI talks to one; None for AWS.
        cnames: custom CNAME host → bucket, from the CAs' configurations (used by the emulation only).

    Raises:
        CrlFetchError: the URL is not http(s), unreachable, or answers with an error.
    """
    if not url.lower().startswith(("http://", "https://")):
        raise CrlFetchError(f"CRL URL {url!r} is not http(s): clients cannot download it")
    if endpoint_url:
        return _emulated_get(url, endpoint_url, cnames or {})
    request = urllib.request.Request(url, headers={"User-Agent": "certrotate-crl-check"})  # noqa: S310 - http(s) only
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as response:  # noqa: S310
            return bytes(response.read(MAX_CRL_BYTES + 1))
    except urllib.error.HTTPError as exc:
        raise CrlFetchError(f"GET {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise CrlFetchError(f"GET {url}: {getattr(exc, 'reason', exc)}") from None


def _emulated_get(url: str, endpoint_url: str, cnames: Mapping[str, str]) -> bytes:
    """The emulation's stand-in for DNS + HTTP: the S3 object behind ``url``, read without credentials."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    location = s3_location(url, cnames)
    if location is None:
        raise CrlFetchError(f"GET {url}: not an S3 or configured CNAME URL, unreachable in the emulation")
    bucket, key = location
    config = Config(signature_version=UNSIGNED, connect_timeout=FETCH_TIMEOUT, read_timeout=FETCH_TIMEOUT)
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint_url, config=config)
    try:
        return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read(MAX_CRL_BYTES + 1))
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise CrlFetchError(f"GET {url}: {error.get('Code', '?')} ({bucket}/{key})") from None
    except BotoCoreError as exc:
        raise CrlFetchError(f"GET {url}: {exc}") from None
