"""A Private CA hierarchy in moto, and the fixtures that fill moto's gaps for ACM.

moto's Private CA always holds an RSA-2048 key; :func:`create_ca` can give it an EC key (the
key lives in moto's backend) so ECDSA signing is exercised for real. moto's ACM signs private
certificates with a fake self-made "Amazon" issuer, ignores ``KeyAlgorithm`` and does not
implement ``RenewCertificate``: :func:`real_acm_chain` makes ACM issue (and renew) certificates
really signed by the Private CA named in the request, with the requested key algorithm. These
patch moto only where it cannot behave as the service does; :mod:`rotation.emulation.pca_issuance`
makes moto's IssueCertificate honour Validity, backdating and the service's refusals.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Iterator
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from moto.acm import models as acm_models
from moto.acm import responses as acm_responses
from moto.acmpca.models import acmpca_backends
from moto.core import DEFAULT_ACCOUNT_ID

from rotation.emulation.certificates import ca_certificate, leaf_certificate
from rotation.emulation.moto_patch import replaced
from rotation.emulation.pca_issuance import teach_moto_private_ca_issuance

ROOT_TEMPLATE = "arn:aws:acm-pca:::template/RootCACertificate/V1"


@contextlib.contextmanager
def cached_moto_ca_keys() -> Iterator[None]:
    """Let moto's Private CA keep its key loaded instead of decrypting its PEM on every access.

    moto re-reads the CA's encrypted RSA key (with full key validation) twice per
    IssueCertificate, ~35 ms each: emulator cost that a real Private CA (an HSM) does not have.
    Benchmarks use this to measure certrotate rather than moto; they print both figures.
    """
    from moto.acmpca.models import CertificateAuthority

    original = CertificateAuthority.key
    cache: dict[tuple[int, bytes], Any] = {}

    def key(self: Any) -> Any:
        marker = (id(self), self.private_bytes)
        if marker not in cache:
            cache[marker] = original.fget(self)
        return cache[marker]

    with replaced(CertificateAuthority, key=property(key)):
        yield


_END_ENTITY_V1 = "arn:aws:acm-pca:::template/EndEntityCertificate/V1"
_SERVER_AUTH_PREFIX = "arn:aws:acm-pca:::template/EndEntityServerAuthCertificate"


def teach_moto_server_auth_templates() -> None:
    """Make moto's Private CA issue the EndEntityServerAuthCertificate templates as Private CA does.

    moto 5.2 knows only ``EndEntityCertificate/V1`` among end-entity templates and issues a bare
    certificate (no basicConstraints, key usage or EKU) for any other. Private CA's template
    reference gives ``EndEntityServerAuthCertificate/V1`` the same extensions with serverAuth alone
    (its passthrough varieties likewise). Idempotent; called by :func:`create_ca`.
    """
    from moto.acmpca.models import CertificateAuthority

    original = CertificateAuthority._x509_extensions
    if getattr(original, "certrotate_server_auth", False):
        return

    def extensions(self: Any, csr: Any, template_arn: str | None) -> Any:
        if template_arn is None or not template_arn.startswith(_SERVER_AUTH_PREFIX):
            return original(self, csr, template_arn)
        found = original(self, csr, _END_ENTITY_V1)
        return [
            (x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical)
            if isinstance(value, x509.ExtendedKeyUsage)
            else (value, critical)
            for value, critical in found
        ]

    extensions.certrotate_server_auth = True
    CertificateAuthority._x509_extensions = extensions  # type: ignore[method-assign]


def moto_ca(arn: str) -> Any:
    region = arn.split(":")[3]
    return acmpca_backends[DEFAULT_ACCOUNT_ID][region].certificate_authorities[arn]


def create_ca(
    pca: Any,
    *,
    key: str = "RSA",
    parent: str | None = None,
    name: str = "certrotate Test Root CA",
    revocation: dict[str, Any] | None = None,
) -> str:
    """An ACTIVE CA in moto: a root, or a subordinate signed by ``parent``, with ``revocation`` as its
    RevocationConfiguration (CRLs published by :mod:`rotation.emulation.pca_crl`).

    Its IssueCertificate behaves as Private CA's (:mod:`rotation.emulation.pca_issuance`).
    """
    from rotation.emulation.pca_crl import teach_moto_crl

    teach_moto_server_auth_templates()
    teach_moto_private_ca_issuance()
    teach_moto_crl()
    algorithm = {"RSA": ("RSA_2048", "SHA256WITHRSA"), "EC": ("EC_prime256v1", "SHA256WITHECDSA")}[key]
    arn = pca.create_certificate_authority(
        CertificateAuthorityConfiguration={
            "KeyAlgorithm": algorithm[0],
            "SigningAlgorithm": algorithm[1],
            "Subject": {"CommonName": name, "Organization": "certrotate tests"},
        },
        CertificateAuthorityType="ROOT" if parent is None else "SUBORDINATE",
        **({"RevocationConfiguration": revocation} if revocation else {}),
    )["CertificateAuthorityArn"]
    ca = moto_ca(arn)
    if key == "EC":
        ca.private_bytes = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.BestAvailableEncryption(ca.password),
        )
    if parent is None:
        csr = pca.get_certificate_authority_csr(CertificateAuthorityArn=arn)["Csr"]
        cert_arn = pca.issue_certificate(
            CertificateAuthorityArn=arn,
            Csr=csr.encode(),
            SigningAlgorithm=algorithm[1],
            TemplateArn=ROOT_TEMPLATE,
            Validity={"Value": 10, "Type": "YEARS"},
        )["CertificateArn"]
        certificate = pca.get_certificate(CertificateAuthorityArn=arn, CertificateArn=cert_arn)["Certificate"]
        pca.import_certificate_authority_certificate(CertificateAuthorityArn=arn, Certificate=certificate.encode())
    else:
        # moto's SubordinateCACertificate templates add no CA extensions; sign it as Private CA would.
        issuer = moto_ca(parent)
        certificate = _ca_certificate(issuer, ca.key.public_key(), ca.issuer).decode()
        pca.import_certificate_authority_certificate(
            CertificateAuthorityArn=arn, Certificate=certificate.encode(), CertificateChain=issuer.certificate_bytes
        )
    return arn


def _ca_certificate(issuer: Any, public_key: Any, subject: x509.Name) -> bytes:
    now = dt.datetime.now(dt.UTC)
    cert = ca_certificate(
        subject,
        public_key,
        issuer.certificate.subject,
        issuer.key,
        path_length=0,
        not_before=now - dt.timedelta(minutes=5),
        not_after=now + dt.timedelta(days=1800),
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def leaf_signed_by(ca: Any, names: list[str], key: Any, *, days: int = 395) -> bytes:
    """An end-entity certificate for ``names`` signed by the moto CA ``ca`` (as ACM's would be)."""
    now = dt.datetime.now(dt.UTC)
    cert = leaf_certificate(
        names,
        key.public_key(),
        ca.certificate.subject,
        ca.key,
        not_before=now - dt.timedelta(minutes=1),
        not_after=now + dt.timedelta(days=days),
    )
    return cert.public_bytes(serialization.Encoding.PEM)


_ACM_KEYS = {
    "RSA_2048": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "EC_prime256v1": lambda: ec.generate_private_key(ec.SECP256R1()),
    "EC_secp384r1": lambda: ec.generate_private_key(ec.SECP384R1()),
}


def _pem_key(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )


@contextlib.contextmanager
def real_acm_chain() -> Iterator[dict[str, int]]:
    """Make moto's ACM issue private certificates signed by the requested Private CA.

    Yields a counter of renewals performed, for assertions.
    """
    state = threading.local()
    renewals = {"count": 0}
    original_request = acm_responses.AWSCertificateManagerResponse.request_certificate
    original_generate = acm_models.CertBundle.generate_cert

    def request_certificate(self: Any) -> Any:
        state.key_algorithm = self._get_param("KeyAlgorithm") or "RSA_2048"
        return original_request(self)

    def generate_cert(
        cls: Any,
        domain_name: str,
        account_id: str,
        region: str,
        sans: Any = None,
        cert_authority_arn: str | None = None,
    ) -> Any:
        ca = moto_ca(cert_authority_arn) if cert_authority_arn else None
        if ca is None:
            return original_generate.__func__(cls, domain_name, account_id, region, sans, cert_authority_arn)
        key = _ACM_KEYS[getattr(state, "key_algorithm", "RSA_2048")]()
        names = [domain_name, *[s for s in (sans or []) if s != domain_name]]
        return cls(
            certificate=leaf_signed_by(ca, names, key),
            private_key=_pem_key(key),
            chain=ca.certificate_bytes,
            cert_type="PRIVATE",
            cert_status="ISSUED",
            cert_authority_arn=cert_authority_arn,
            account_id=account_id,
            region=region,
        )

    def renew_certificate(self: Any) -> str:
        bundle = self.acm_backend.get_certificate(self._get_param("CertificateArn"))
        ca = moto_ca(bundle.cert_authority_arn)
        old = bundle._cert
        key_kind = (
            "RSA_2048"
            if isinstance(old.public_key(), rsa.RSAPublicKey)
            else {"secp256r1": "EC_prime256v1", "secp384r1": "EC_secp384r1"}[old.public_key().curve.name]
        )
        key = _ACM_KEYS[key_kind]()
        names = [str(n.value) for n in old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value]
        bundle.cert = leaf_signed_by(ca, names, key)
        bundle.key = _pem_key(key)
        bundle._key = bundle.validate_pk()
        bundle._cert = bundle.validate_certificate()
        renewals["count"] += 1
        return "{}"

    with (
        replaced(
            acm_responses.AWSCertificateManagerResponse,
            request_certificate=request_certificate,
            renew_certificate=renew_certificate,
        ),
        replaced(acm_models.CertBundle, generate_cert=classmethod(generate_cert)),
    ):
        yield renewals
