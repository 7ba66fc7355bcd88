"""Issue 18: a container's first invocation imports only what its steps use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FIRST_INVOCATION = """
import sys
import rotation.handler, rotation.lifecycle.engine
services = rotation.handler.services()
services.pca_for_region("us-east-1")
unused = (
    "boto3", "s3transfer", "rotation.fleet.ledger", "rotation.fleet.revoker", "rotation.fleet.view",
    "rotation.issuance.issuers.acm",
    "concurrent.futures.thread",  # ThreadPoolExecutor: only for an RSA spare key (botocore imports the rest)
)
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
    from rotation.fleet import ledger
    from rotation.lifecycle import engine

    assert engine.LEDGER_TABLE_ENV == ledger.LEDGER_TABLE_ENV


def test_the_acm_issuer_is_built_when_an_acm_secret_asks_for_it() -> None:
    from rotation.issuance.issuers import AcmIssuer, PcaIssuer
    from rotation.issuance.spec import CertificateType
    from rotation.lifecycle.engine import build_services

    services = build_services(object(), lambda region: object(), lambda region: object())
    assert set(services.issuers) == set(CertificateType)
    assert isinstance(services.issuers[CertificateType.PCA_ISSUED], PcaIssuer)
    acm = services.issuers[CertificateType.ACM_ISSUED]
    assert isinstance(acm, AcmIssuer) and services.issuers[CertificateType.ACM_ISSUED] is acm  # built once


def test_a_first_client_is_made_without_listing_every_service_botocore_has(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's loader reads ~450 service directories per model type to check that one exists."""
    import botocore.loaders
    import botocore.session

    from rotation import aws

    listed: list[str] = []
    real_listdir = os.listdir

    def counting_listdir(path: str = ".") -> list[str]:
        listed.append(path)
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", counting_listdir)
    monkeypatch.setattr(aws, "_session", None)
    for service in ("secretsmanager", "acm-pca"):
        aws.make_client(service, "us-east-1")
    ours = len(listed)
    listed.clear()
    session = botocore.session.get_session()
    session.register_component("data_loader", botocore.loaders.create_loader())  # cold, as a new process's
    for service in ("secretsmanager", "acm-pca"):
        session.create_client(service, region_name="us-east-1")
    assert ours < 20 < 400 < len(listed)


@pytest.mark.parametrize(
    ("service", "type_name"),
    [
        ("secretsmanager", "service-2"),
        ("acm-pca", "waiters-2"),
        ("acm", "endpoint-rule-set-1"),
        ("secretsmanager", "waiters-2"),  # a service without waiters
        ("no-such-service", "service-2"),
        ("../data", "service-2"),
        ("", "service-2"),
    ],
)
def test_the_loader_answers_as_botocores_own(service: str, type_name: str) -> None:
    from botocore.exceptions import UnknownServiceError
    from botocore.loaders import create_loader

    from rotation.aws import _loader

    ours, theirs = _loader(None), create_loader(None)
    assert ours.search_paths == theirs.search_paths
    try:
        expected = theirs.load_service_model(service, type_name)
    except UnknownServiceError as exc:
        with pytest.raises(UnknownServiceError) as raised:
            ours.load_service_model(service, type_name)
        assert str(raised.value) == str(exc)
    else:
        assert ours.load_service_model(service, type_name) == expected
    assert ours.list_available_services(type_name) == theirs.list_available_services(type_name)


def test_the_loader_searches_aws_data_path_first(tmp_path: Path) -> None:
    from rotation.aws import _loader

    first, second = tmp_path / "a", tmp_path / "b"
    assert _loader(f"{first}{os.pathsep}{second}").search_paths[:2] == [str(first), str(second)]
