"""Fixtures of the command-line tests: moto's server that runs certrotate's rotation function."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import rotation.handler
from rotation.emulation.pki import create_ca, real_acm_chain
from rotation.emulation.rotation_service import rotation_function_in_moto
from tests.support.cli import client


@pytest.fixture
def endpoint(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto's server, with RotateSecret running our handler (whose clients call the same server).

    moto cannot invoke a rotation Lambda, so its RotateSecret runs certrotate's handler
    (``rotation_function_in_moto``), whose log lines land in moto's CloudWatch Logs; moto's ACM is
    completed by ``real_acm_chain`` as elsewhere.
    """
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    rotation.handler.reset()
    with real_acm_chain(), rotation_function_in_moto() as failures:
        yield moto_endpoint
    rotation.handler.reset()
    assert all(not isinstance(f, AssertionError) for f in failures)


@pytest.fixture
def ca(endpoint: str) -> str:
    return create_ca(client(endpoint, "acm-pca"))
