"""AWS Private CA issuer: our key, our CSR, IssueCertificate with a template, GetCertificate."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from rotation.aws import aws_call
from rotation.errors import AwsCallError, IssuanceError
from rotation.issuance.bundle import CertBundle, join_pem
from rotation.issuance.certificate_authority import ca_error
from rotation.issuance.issuers.base import IssueRequest, SlotBooker, WaitBudget, idempotency_token, paced_calls
from rotation.issuance.keys import (
    SPARE_KEYS,
    PrivateKey,
    build_csr,
    key_algorithm_of,
    public_key_der,
    public_key_sha256,
)
from rotation.issuance.plan import Plan
from rotation.issuance.signing import signing_algorithm
from rotation.issuance.spec import CertSpec
from rotation.issuance.validity import check_within_ca
from rotation.telemetry import logger
from rotation.throttling import retrying_throttles

_SERVICE = "acm-pca"
PCA_TOKEN_LENGTH = 36
_ATTEMPTS = 2


class PcaIssuer:
    """Issues from AWS Private CA. A fresh key per issuance unless REUSE_PRIVATE_KEY is set."""

    def __init__(self, client_for_region: Callable[[str], Any], pacer: SlotBooker | None = None) -> None:
        self._client_for_region = client_for_region
        self._pacer = pacer

    def issue(self, request: IssueRequest, budget: WaitBudget) -> CertBundle:
        if request.plan is Plan.KEEP and request.current is not None:
            return request.current
        spec = request.spec
        client = retrying_throttles(
            self._client_for_region(spec.ca_region), budget, paced_calls(self._pacer, request, budget)
        )
        algorithm = signing_algorithm(spec, request.ca.key_family)
        check_within_ca(spec.validity, request.now, request.ca.certificate.not_valid_after_utc)
        key = self._key_for(request)
        csr = build_csr(key, spec)
        for attempt in range(_ATTEMPTS):
            # The token binds the request to this key: a retry after a crash (new key) gets a new
            # certificate, a botocore retry of the same call (same key) gets the same one.
            token = idempotency_token(request.token, public_key_sha256(key), str(attempt), length=PCA_TOKEN_LENGTH)
            arn = self._issue(client, spec.ca_arn, csr, spec, algorithm, token)
            certificate, chain = budget.poll(partial(self._fetch, client, spec.ca_arn, arn), f"certificate {arn}")
            bundle = CertBundle.with_key(join_pem(certificate), key, join_pem(chain), arn, spec.ca_arn)
            if public_key_der(bundle.certificate.public_key()) == public_key_der(key):
                return bundle
            logger.warning(
                "Private CA returned a certificate for another key; issuing again",
                extra={"certificate_arn": arn, "attempt": attempt},
            )
        raise IssuanceError(f"Private CA {spec.ca_arn} kept returning certificates that do not match our key")

    @staticmethod
    def _key_for(request: IssueRequest) -> PrivateKey:
        current = request.current
        if request.spec.reuse_private_key and current is not None:
            key = current.private_key
            if key_algorithm_of(key) is request.spec.key_algorithm:
                return key
        return SPARE_KEYS.take(request.spec.key_algorithm)

    @staticmethod
    def _issue(client: Any, ca_arn: str, csr: bytes, spec: CertSpec, algorithm: str, token: str) -> str:
        try:
            with aws_call(_SERVICE, "IssueCertificate"):
                response = client.issue_certificate(
                    CertificateAuthorityArn=ca_arn,
                    Csr=csr,
                    SigningAlgorithm=algorithm,
                    TemplateArn=spec.template_arn,
                    Validity=spec.validity.as_pca(),
                    IdempotencyToken=token,
                )
        except AwsCallError as exc:
            raise ca_error(ca_arn, exc) from exc
        return str(response["CertificateArn"])

    @staticmethod
    def _fetch(client: Any, ca_arn: str, arn: str) -> tuple[str, str] | None:
        try:
            with aws_call(_SERVICE, "GetCertificate"):
                response = client.get_certificate(CertificateAuthorityArn=ca_arn, CertificateArn=arn)
        except AwsCallError as exc:
            if exc.code == "RequestInProgressException":
                return None
            if exc.code == "RequestFailedException":
                raise IssuanceError(f"Private CA refused to issue {arn}: {exc}") from exc
            raise
        return response["Certificate"], response.get("CertificateChain", "")
