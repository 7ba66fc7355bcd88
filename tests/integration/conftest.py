"""Integration fixtures: moto's server for the aws CLI, the real Apache, an SSM runner environment.

With ``CI`` set, a missing part fails the test instead of skipping it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from rotation.cli.local_apache import LocalApache as Apache
from rotation.cli.local_apache import apache_available, free_port
from rotation.cli.local_servers import LOCAL_SERVERS, LocalServer, server_available
from rotation.issuance.bundle import CertBundle
from tests.installer.helpers import LocalUser, local_user, user_problem
from tests.support import warm
from tests.support.certs import LocalCA

REGION = "us-east-1"


def require(problem: str | None) -> None:
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"required for this test in CI: {problem}")
    pytest.skip(problem)


def aws_cli() -> str | None:
    """The aws CLI beside this interpreter first: its directory goes first on the installer's PATH,
    so ``python3`` there is a plain interpreter (a pyenv shim would put its own bin first)."""
    beside = Path(sys.executable).with_name("aws")
    found = str(beside) if beside.exists() else shutil.which("aws")
    return found if found and os.path.exists(found) else None


@pytest.fixture
def sm(moto_endpoint: str) -> Any:
    return boto3.client("secretsmanager", region_name=REGION, endpoint_url=moto_endpoint)


@pytest.fixture
def host_env(moto_endpoint: str) -> dict[str, str]:
    """The environment the installer runs in: the aws CLI pointed at moto's server.

    The aws CLI is served warm (tests/support/warm.py): a launcher named ``aws`` goes first on PATH
    and runs the real awscli, pre-imported by a fork server started with the variables the installer
    gives its tools (its tool_environment: this environment, ``LANG=C``, ``LC_ALL=C``). A run whose
    variables differ, or a host without gcc, gets the real exec of the aws CLI beside it on PATH.
    """
    cli = aws_cli()
    require(None if cli else "the aws CLI is not installed (pip install awscli)")
    assert cli is not None
    env = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "PATH": f"{Path(cli).parent}:{os.environ.get('PATH', '')}",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    return warm.with_aws(env, inherited=os.environ)


@pytest.fixture(scope="session")
def ca() -> LocalCA:
    return LocalCA(name="certrotate Integration CA")


HOSTNAME = "www.certrotate.test"


@pytest.fixture
def apache(tmp_path: Path, ca: LocalCA) -> Iterator[Apache]:
    require(apache_available())
    server = Apache(tmp_path / "apache", free_port())
    server.write_bundle(ca.issue([HOSTNAME]))
    server.start()
    yield server
    server.stop()


# The servers the documents feed; a test taking ``server`` runs once for each (or, parametrized
# ``indirect``, for the ones it names). Apache here is the separate three-file layout, as today.
SERVERS = list(LOCAL_SERVERS)


def start_server(name: str, root: Path, ca: LocalCA) -> LocalServer:
    require(apache_available() if name == "apache" else server_available(name))
    server = LOCAL_SERVERS[name](root, free_port())
    server.write_bundle(ca.issue([HOSTNAME]))
    server.start()
    return server


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest, tmp_path: Path, ca: LocalCA) -> Iterator[LocalServer]:
    started = start_server(request.param, tmp_path / request.param, ca)
    yield started
    started.stop()


@pytest.fixture
def put_secret(sm: Any) -> Callable[..., str]:
    """Store a bundle (or raw text) as a certificate secret on moto's server; returns the ARN."""

    def put(bundle: CertBundle | str, name: str | None = None) -> str:
        if isinstance(bundle, CertBundle):
            value = json.dumps({"CERTIFICATE_TYPE": "PCA_ISSUED", "COMMON_NAME": HOSTNAME, **bundle.to_fields()})
        else:
            value = bundle
        name = name or f"certs/{uuid.uuid4()}"
        return str(sm.create_secret(Name=name, SecretString=value)["ARN"])

    return put


@pytest.fixture
def attacker() -> Iterator[LocalUser]:
    """A real unprivileged local user (useradd), removed afterwards."""
    require(user_problem())
    with local_user() as user:
        yield user
