"""A Private CA with a CRL in the emulation: the bucket, its policy letting Private CA write, the CA."""

from __future__ import annotations

import json
import uuid
from typing import Any

from rotation.emulation.pki import create_ca
from rotation.fleet.crl_facts import write_policy_statement

ACCOUNT = "123456789012"


def crl_bucket(s3: Any, name: str) -> None:
    """A bucket whose policy lets acm-pca.amazonaws.com write CRLs for this account's CAs."""
    s3.create_bucket(Bucket=name)
    statement = write_policy_statement(name, "any")
    statement["Condition"] = {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    s3.put_bucket_policy(Bucket=name, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]}))


def crl_ca(
    pca: Any, s3: Any, bucket: str | None = None, *, key: str = "RSA", name: str = "certrotate Test Root CA", **crl: Any
) -> str:
    """An ACTIVE CA publishing a complete CRL (``crl`` adds CrlConfiguration fields) to ``bucket``."""
    bucket = bucket or f"crl-{uuid.uuid4().hex[:12]}"
    crl_bucket(s3, bucket)
    configuration = {"Enabled": True, "S3BucketName": bucket, "ExpirationInDays": 7, **crl}
    return create_ca(pca, key=key, name=name, revocation={"CrlConfiguration": configuration})
