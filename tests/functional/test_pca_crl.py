"""Issue 28 item 2: the emulated Private CA publishes CRLs into moto's S3 as AWS Private CA does.

What runs for real: moto in process (Private CA, S3), rotation.emulation's Private CA (issuance, CRL
publication), cryptography parsing the DER CRL and checking its signature with the CA certificate.
Emulated: time (each publication is driven at a chosen ``now``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from rotation.emulation.pca_crl import publish_due_crls, published_state
from rotation.emulation.pki import create_ca, moto_ca
from rotation.fleet.crl_facts import leaf_pointers, read_crl, s3_location, write_policy_statement
from tests.conftest import REGION, AwsClients

END_ENTITY = "arn:aws:acm-pca:::template/EndEntityCertificate/V1"
ACCOUNT = "123456789012"


def crl_bucket(name: str, *, policy: bool = True) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=name)
    if policy:
        statement = {**write_policy_statement(name, "unused")}
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
        s3.put_bucket_policy(Bucket=name, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]}))


def crl_config(bucket: str, **extra: Any) -> dict[str, Any]:
    return {"CrlConfiguration": {"Enabled": True, "S3BucketName": bucket, "ExpirationInDays": 7, **extra}}


def issue(pca: Any, ca: str, days: int = 30) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "app.example.internal")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    arn = pca.issue_certificate(
        CertificateAuthorityArn=ca,
        Csr=csr.public_bytes(serialization.Encoding.PEM),
        SigningAlgorithm="SHA256WITHRSA",
        TemplateArn=END_ENTITY,
        Validity={"Value": days, "Type": "DAYS"},
    )["CertificateArn"]
    pem = pca.get_certificate(CertificateAuthorityArn=ca, CertificateArn=arn)["Certificate"]
    return x509.load_pem_x509_certificate(pem.encode())


def revoke(pca: Any, ca: str, certificate: x509.Certificate) -> None:
    serial = format(certificate.serial_number, "x")
    serial = serial.zfill(len(serial) + len(serial) % 2)
    pca.revoke_certificate(
        CertificateAuthorityArn=ca,
        CertificateSerial=":".join(serial[i : i + 2] for i in range(0, len(serial), 2)),
        RevocationReason="KEY_COMPROMISE",
    )


def published(pca: Any, ca: str, url: str) -> Any:
    bucket, key = s3_location(url) or ("", "")
    data = boto3.client("s3", region_name=REGION).get_object(Bucket=bucket, Key=key)["Body"].read()
    pem = pca.get_certificate_authority_certificate(CertificateAuthorityArn=ca)["Certificate"]
    return read_crl(data, x509.load_pem_x509_certificate(pem.encode()))


@pytest.mark.parametrize(
    ("setup", "revocation", "refusal"),
    [
        ("none", crl_config("crl-missing"), "the bucket does not exist"),
        ("no-policy", crl_config("crl-bucket"), "'s3:PutObject', 's3:GetBucketAcl'"),
        ("policy", {"CrlConfiguration": {"Enabled": True}}, "S3BucketName is required"),
        (
            "policy",
            crl_config(
                "crl-bucket",
                CustomCname="crl.example.com",
                CrlDistributionPointExtensionConfiguration={"OmitExtension": True},
            ),
            "OmitExtension cannot be true with a CustomCname",
        ),
        ("policy", crl_config("crl-bucket", CustomCname="http://crl.example.com"), "must not include a protocol"),
    ],
)
def test_a_crl_configuration_private_ca_refuses_is_refused(
    aws: AwsClients, setup: str, revocation: dict[str, Any], refusal: str
) -> None:
    """Create and Update refuse a bucket Private CA could not write (InvalidArgsException), and leave no CA."""
    if setup != "none":
        crl_bucket("crl-bucket", policy=setup == "policy")
    with pytest.raises(ClientError) as raised:
        create_ca(aws.pca, revocation=revocation)
    assert raised.value.response["Error"]["Code"] == "InvalidArgsException"
    assert refusal in raised.value.response["Error"]["Message"]
    assert aws.pca.list_certificate_authorities()["CertificateAuthorities"] == []
    ca = create_ca(aws.pca)
    with pytest.raises(ClientError) as raised:
        aws.pca.update_certificate_authority(CertificateAuthorityArn=ca, RevocationConfiguration=revocation)
    assert refusal in raised.value.response["Error"]["Message"]


def test_revocation_is_published_on_the_documented_schedule_in_a_signed_der_crl(aws: AwsClients) -> None:
    crl_bucket("crl-bucket")
    ca = create_ca(aws.pca, revocation=crl_config("crl-bucket"))
    ca_id = ca.rsplit("/", 1)[-1]
    leaf, other = issue(aws.pca, ca), issue(aws.pca, ca)
    (url,) = leaf_pointers(leaf).crl_urls
    assert url == f"http://crl-bucket.s3.{REGION}.amazonaws.com/crl/{ca_id}.crl"
    start = datetime.now(UTC).replace(microsecond=0)
    assert published(aws.pca, ca, url).serials == frozenset()  # the first, empty CRL, written at activation
    assert publish_due_crls(start) == []

    revoke(aws.pca, ca, leaf)
    assert publish_due_crls(start + timedelta(minutes=20)) == []  # "approximately 30 minutes after"
    assert published(aws.pca, ca, url).serials == frozenset()
    (publication,) = publish_due_crls(start + timedelta(minutes=31))
    assert publication.reason == "revocation" and publication.error == ""
    crl = published(aws.pca, ca, url)
    assert crl.serials == {leaf.serial_number} and other.serial_number not in crl.serials
    assert crl.signature_ok and not crl.idp_critical
    assert crl.this_update == start + timedelta(minutes=31)
    assert crl.next_update == crl.this_update + timedelta(days=7)  # ExpirationInDays
    der = x509.load_der_x509_crl(
        boto3.client("s3").get_object(Bucket="crl-bucket", Key=f"crl/{ca_id}.crl")["Body"].read()
    )
    entry = der.get_revoked_certificate_by_serial_number(leaf.serial_number)
    assert (
        entry is not None
        and entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise
    )

    # Nothing new: no CRL until half its validity, then a refresh.
    assert publish_due_crls(start + timedelta(days=3)) == []
    assert [p.reason for p in publish_due_crls(start + timedelta(days=3, hours=13))] == ["refresh"]


def test_a_failed_write_is_retried_every_15_minutes_and_the_old_crl_stays(aws: AwsClients) -> None:
    crl_bucket("crl-bucket")
    ca = create_ca(aws.pca, revocation=crl_config("crl-bucket"))
    leaf = issue(aws.pca, ca)
    start = datetime.now(UTC).replace(microsecond=0)
    publish_due_crls(start)
    boto3.client("s3", region_name=REGION).delete_bucket_policy(Bucket="crl-bucket")  # the write permission removed
    revoke(aws.pca, ca, leaf)
    (failed,) = publish_due_crls(start + timedelta(minutes=31))
    assert "denies acm-pca.amazonaws.com s3:PutObject" in failed.error
    (url,) = leaf_pointers(leaf).crl_urls
    assert published(aws.pca, ca, url).serials == frozenset()  # clients still see the old CRL
    assert publish_due_crls(start + timedelta(minutes=40)) == []
    crl_bucket_policy = {**write_policy_statement("crl-bucket", ca)}
    boto3.client("s3").put_bucket_policy(Bucket="crl-bucket", Policy=json.dumps({"Statement": [crl_bucket_policy]}))
    (retried,) = publish_due_crls(start + timedelta(minutes=46))
    assert retried.reason == "retry" and retried.error == ""
    assert published(aws.pca, ca, url).serials == {leaf.serial_number}


def test_custom_cname_partitioned_and_omitted_extension(aws: AwsClients) -> None:
    crl_bucket("crl-bucket")
    cname = create_ca(aws.pca, revocation=crl_config("crl-bucket", CustomCname="crl.example.com"))
    (url,) = leaf_pointers(issue(aws.pca, cname)).crl_urls
    assert url == f"http://crl.example.com/crl/{cname.rsplit('/', 1)[-1]}.crl"

    partitioned = create_ca(aws.pca, revocation=crl_config("crl-bucket", CrlType="PARTITIONED"))
    (url,) = leaf_pointers(issue(aws.pca, partitioned)).crl_urls
    assert url.startswith(f"http://crl-bucket.s3.{REGION}.amazonaws.com/crl/{partitioned.rsplit('/', 1)[-1]}/")
    publish_due_crls(datetime.now(UTC).replace(microsecond=0))
    crl = published(aws.pca, partitioned, url)
    assert crl.idp_critical and crl.idp_urls == (url,)

    omitted = create_ca(
        aws.pca, revocation=crl_config("crl-bucket", CrlDistributionPointExtensionConfiguration={"OmitExtension": True})
    )
    assert leaf_pointers(issue(aws.pca, omitted)).crl_urls == ()
    ocsp = create_ca(aws.pca, revocation={"OcspConfiguration": {"Enabled": True}})
    assert leaf_pointers(issue(aws.pca, ocsp)).ocsp_urls == (f"http://ocsp.acm-pca.{REGION}.amazonaws.com",)


def test_an_expired_revoked_certificate_appears_in_one_more_crl_then_leaves(aws: AwsClients) -> None:
    crl_bucket("crl-bucket")
    ca = create_ca(aws.pca, revocation=crl_config("crl-bucket", ExpirationInDays=2))
    leaf = issue(aws.pca, ca, days=1)
    start = datetime.now(UTC).replace(microsecond=0)
    revoke(aws.pca, ca, leaf)
    publish_due_crls(start + timedelta(minutes=31))
    assert published_state(moto_ca(ca)).listed == {leaf.serial_number}
    publish_due_crls(start + timedelta(days=1, hours=1))  # refresh after it expired: listed once more
    assert published_state(moto_ca(ca)).listed == {leaf.serial_number}
    publish_due_crls(start + timedelta(days=2, hours=2))
    assert published_state(moto_ca(ca)).listed == frozenset()
