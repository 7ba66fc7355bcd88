"""Facts about the issuing Private CA, read once per container and cached.

The CA's key family (which decides the signing algorithm) is read from the CA certificate that
GetCertificateAuthorityCertificate returns: that is the CA's actual key, and the same call gives
the trust anchor every verification needs, so one cached call serves issuance and testSecret.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from rotation.aws import aws_call
from rotation.errors import AwsCallError, CertificateAuthorityError
from rotation.issuance.spec import KeyFamily
from rotation.redaction import quote

_SERVICE = "acm-pca"
DEFAULT_TTL_SECONDS = 900.0


@dataclass(frozen=True)
class CaFacts:
    arn: str
    certificate: x509.Certificate
    chain_pem: str
    key_family: KeyFamily


class CertificateAuthorities:
    """A per-container cache of :class:`CaFacts`, keyed by CA ARN."""

    def __init__(
        self,
        client_for_region: Callable[[str], Any],
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client_for_region = client_for_region
        self._ttl = ttl_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, CaFacts]] = {}
        self._lock = threading.Lock()

    def get(self, ca_arn: str) -> CaFacts:
        """The CA's certificate and key family.

        Raises:
            CertificateAuthorityError: the CA does not exist, is not ACTIVE, has a key of an
                unknown family, or cannot be read.
        """
        with self._lock:
            cached = self._cache.get(ca_arn)
        if cached and self._clock() - cached[0] < self._ttl:
            return cached[1]
        facts = self._load(ca_arn)
        with self._lock:
            self._cache[ca_arn] = (self._clock(), facts)
        return facts

    def forget(self, ca_arn: str) -> None:
        with self._lock:
            self._cache.pop(ca_arn, None)

    def _load(self, ca_arn: str) -> CaFacts:
        client = self._client_for_region(ca_arn.split(":")[3])
        try:
            with aws_call(_SERVICE, "GetCertificateAuthorityCertificate"):
                response = client.get_certificate_authority_certificate(CertificateAuthorityArn=ca_arn)
        except AwsCallError as exc:
            raise ca_error(ca_arn, exc) from exc
        certificate = x509.load_pem_x509_certificate(response["Certificate"].encode("ascii"))
        public_key = certificate.public_key()
        if isinstance(public_key, rsa.RSAPublicKey):
            family = KeyFamily.RSA
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            family = KeyFamily.ECDSA
        else:
            raise CertificateAuthorityError(
                f"CA_ARN={quote(ca_arn)}: CA key type {type(public_key).__name__} is not RSA or ECDSA"
            )
        return CaFacts(ca_arn, certificate, response.get("CertificateChain") or "", family)


_CA_PROBLEMS = {
    "ResourceNotFoundException": "no such Private CA in this account and region",
    "InvalidStateException": "the Private CA is not ACTIVE (pending certificate, disabled, expired or deleted)",
    "AccessDeniedException": "the rotation role may not use this Private CA",
    "InvalidArnException": "not a valid Private CA ARN",
}


def ca_error(ca_arn: str, exc: AwsCallError) -> CertificateAuthorityError | AwsCallError:
    """A clear error for CA problems; other failures (throttling, 5xx) pass through as they are."""
    problem = _CA_PROBLEMS.get(exc.code)
    if problem is None:
        return exc
    return CertificateAuthorityError(f"CA_ARN={quote(ca_arn)}: {problem} ({exc.operation}: {exc.code})")
