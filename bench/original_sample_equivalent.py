"""A RE-IMPLEMENTATION, for measurement only, of what the original sample's rotation does per PCA rotation.

Written from scratch from the behaviour described in the AWS blog post and issue 8 (none of the
sample's code is used): one private key kept for the secret's life, a CSR, ``IssueCertificate``,
the ``certificate_issued`` waiter, ``GetCertificate``, ``PutSecretValue``, and nothing verified
(testSecret and setSecret only run the contract check). Each step starts with ``DescribeSecret``
as the Secrets Manager rotation template does, and finishSecret describes the secret once more to
find the current version. It exists so ``bench/rotation_bench.py`` can time certrotate side by
side with the original's work on the same moto backend; it is not part of the product.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

TEMPLATE = "arn:aws:acm-pca:::template/EndEntityCertificate/V1"


def handle(event: dict[str, str], sm: Any, pca: Any) -> None:
    """One rotation step, as the original's Lambda handler would run it."""
    arn, token, step = event["SecretId"], event["ClientRequestToken"], event["Step"]
    metadata = sm.describe_secret(SecretId=arn)
    if not metadata.get("RotationEnabled"):
        raise ValueError("rotation is not enabled")
    versions = metadata["VersionIdsToStages"]
    if token not in versions:
        raise ValueError("no such version")
    if "AWSCURRENT" in versions[token]:
        return
    if "AWSPENDING" not in versions[token]:
        raise ValueError("version is not pending")
    if step == "createSecret":
        _create(sm, pca, arn, token)
    elif step == "finishSecret":
        _finish(sm, arn, token)


def _create(sm: Any, pca: Any, arn: str, token: str) -> None:
    fields = json.loads(sm.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"])
    try:
        sm.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")
        return
    except sm.exceptions.ResourceNotFoundException:
        pass
    if fields.get("PRIVATE_KEY_PEM"):  # the one key, kept for the secret's life
        key = serialization.load_pem_private_key(fields["PRIVATE_KEY_PEM"].encode(), password=None)
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert isinstance(key, rsa.RSAPrivateKey)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, fields["COMMON_NAME"])]))
        .sign(key, hashes.SHA256())
    )
    ca = fields["CA_ARN"]
    certificate_arn = pca.issue_certificate(
        CertificateAuthorityArn=ca,
        Csr=csr.public_bytes(serialization.Encoding.PEM),
        SigningAlgorithm="SHA256WITHRSA",
        TemplateArn=TEMPLATE,
        Validity={"Value": 365, "Type": "DAYS"},
        IdempotencyToken=token[:36],
    )["CertificateArn"]
    pca.get_waiter("certificate_issued").wait(CertificateAuthorityArn=ca, CertificateArn=certificate_arn)
    issued = pca.get_certificate(CertificateAuthorityArn=ca, CertificateArn=certificate_arn)
    fields.update(
        CERTIFICATE_PEM=issued["Certificate"],
        CERTIFICATE_CHAIN_PEM=issued["CertificateChain"],
        CERTIFICATE_ARN=certificate_arn,
        PRIVATE_KEY_PEM=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
    )
    sm.put_secret_value(
        SecretId=arn, ClientRequestToken=token, SecretString=json.dumps(fields), VersionStages=["AWSPENDING"]
    )


def _finish(sm: Any, arn: str, token: str) -> None:
    versions = sm.describe_secret(SecretId=arn)["VersionIdsToStages"]
    current = next((v for v, stages in versions.items() if "AWSCURRENT" in stages), None)
    if current == token:
        return
    sm.update_secret_version_stage(
        SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=current
    )
