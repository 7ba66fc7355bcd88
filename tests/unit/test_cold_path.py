"""Issue 18: a container's first invocation imports only what its steps use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FIRST_INVOCATION = """
import sys
import rotation.handler, rotation.engine
services = rotation.handler.services()
services.pca_for_region("us-east-1")
unused = ("boto3", "s3transfer", "rotation.ledger", "rotation.revoker", "rotation.fleet", "rotation.issuers.acm")
print(" ".join(m for m in unused if m in sys.modules))
"""


def test_a_private_ca_container_without_a_ledger_loads_neither_boto3_the_ledger_nor_acm() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CERTROTATE_"))}
    env.update(AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", PYTHONPATH=str(ROOT))
    loaded = subprocess.run(
        [sys.executable, "-c", FIRST_INVOCATION], capture_output=True, text=True, env=env, cwd=ROOT, check=True
    )
    assert loaded.stdout.split() == []


def test_the_engine_names_the_ledger_variable_as_the_ledger_does() -> None:
    from rotation import engine, ledger

    assert engine.LEDGER_TABLE_ENV == ledger.LEDGER_TABLE_ENV


def test_the_acm_issuer_is_built_when_an_acm_secret_asks_for_it() -> None:
    from rotation.engine import build_services
    from rotation.issuers import AcmIssuer, PcaIssuer
    from rotation.spec import CertificateType

    services = build_services(object(), lambda region: object(), lambda region: object())
    assert set(services.issuers) == set(CertificateType)
    assert isinstance(services.issuers[CertificateType.PCA_ISSUED], PcaIssuer)
    acm = services.issuers[CertificateType.ACM_ISSUED]
    assert isinstance(acm, AcmIssuer) and services.issuers[CertificateType.ACM_ISSUED] is acm  # built once
