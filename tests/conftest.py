"""Shared fixtures: moto in process, a Private CA hierarchy, the handler wired to moto clients.

Every test also checks that nothing it logged or printed carries a private key.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

import rotation.handler
from rotation.emulation.dynamodb_tables import strict_table_deletion
from rotation.emulation.pki import cached_moto_ca_keys, create_ca, real_acm_chain
from rotation.fleet.ledger import Ledger, create_table
from rotation.lifecycle.engine import build_services
from rotation.lifecycle.steps import Services

REGION = "us-east-1"

#: The order tests are handed to the workers in: the longest first, so that the short ones fill the
#: gaps at the end rather than one long test finishing the suite alone (longest-first scheduling).
#: xdist keeps this order only when it hands tests out one at a time (``--maxschedchunk 1`` in
#: pyproject.toml): its default sends each worker a block of consecutive tests, every slow one to one.
_FIRST = ("tests/integration/", "tests/functional/test_cli_", "tests/functional/", "tests/deployment/")


#: Where compiled modules are kept when the shell sets PYTHONDONTWRITEBYTECODE (outside the worktree).
BYTECODE_CACHE = os.path.join(tempfile.gettempdir(), f"certrotate-tests-pycache-{os.getuid()}")
_LIFTED = "CERTROTATE_TESTS_BYTECODE_LIFTED"  # set for the xdist workers: their shell said no bytecode


def pytest_configure(config: pytest.Config) -> None:
    """A suite started in the background (``pytest &``, a script's job) starts with SIGINT ignored, and
    every command a test starts would inherit that: certrotate leaves an ignored SIGINT ignored, as
    a shell's background job expects, so the tests that play a terminal's Ctrl-C would wait for
    nothing. Every process of the suite takes Python's own handler, which its children start without.

    Compiled modules"""
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    _keep_bytecode(config)


def _keep_bytecode(config: pytest.Config) -> None:
    """Compiled modules are kept in ``BYTECODE_CACHE`` even when the shell says to write none.

    With PYTHONDONTWRITEBYTECODE every xdist worker compiled rotation and rewrote every test module
    (4 s of CPU each). The workers start with the cache in their environment (PYTHONPYCACHEPREFIX,
    checked against each source as ``__pycache__`` is), then give the commands they run the shell's
    environment back: a prefix would, for one, hide the Lambda zip's own ``__pycache__``.
    """
    if os.environ.pop(_LIFTED, None):  # an xdist worker: its interpreter keeps the cache, not its children
        os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
        os.environ.pop("PYTHONPYCACHEPREFIX", None)
    elif sys.dont_write_bytecode:
        sys.dont_write_bytecode, sys.pycache_prefix = False, BYTECODE_CACHE
        if config.getoption("numprocesses", None):  # the workers this process starts
            os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
            os.environ.update({"PYTHONPYCACHEPREFIX": BYTECODE_CACHE, _LIFTED: "1"})


def pytest_unconfigure(config: pytest.Config) -> None:
    """The fork servers this process started for warm certrotate and aws runs end with the session
    (tests/support/warm.py): no process is left behind."""
    warm = sys.modules.get("tests.support.warm")
    if warm is not None:
        warm.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> tuple[int, int]:
        path = item.nodeid
        group = next((i for i, prefix in enumerate(_FIRST) if path.startswith(prefix)), len(_FIRST))
        return (0 if item.get_closest_marker("slow") else 1, group)

    items.sort(key=rank)  # stable: the order within a group stays the collection order


KEY_MARKERS = ("PRIVATE KEY", "BEGIN EC PARAMETERS")


@pytest.fixture(scope="session", autouse=True)
def moto_ca_keys_loaded_once() -> Iterator[None]:
    """moto's Private CA decrypts and validates its RSA key at every use (about 35 ms, twice per
    IssueCertificate and once per CRL): emulator cost a real CA does not have, and a third of some
    tests' time. Each CA's key is loaded once (``cached_moto_ca_keys``, keyed by the CA and its key
    bytes, so a replaced key is loaded anew); what is signed, and with which key, is unchanged."""
    with cached_moto_ca_keys():
        yield


@pytest.fixture(scope="session", autouse=True)
def botocore_models_parsed_once() -> Iterator[None]:
    """Every botocore session of a worker reads its JSON models through one loader.

    ``mock_aws`` drops boto3's default session at each start, so every test's clients came from a
    new session whose new loader parsed endpoints.json and each service model again: a quarter of
    the in-process tests' CPU (py-spy: 37 of 154 s in ``json.loads``). One loader per data path is
    what a long-lived session already is (the loader caches what it parsed and hands the same objects
    to every client of the session); credentials, config and event handlers stay per session.
    """
    import botocore.loaders
    import botocore.session

    original = botocore.session.create_loader
    loaders: dict[str | None, botocore.loaders.Loader] = {}

    def create_loader(search_path_string: str | None = None) -> botocore.loaders.Loader:
        if search_path_string not in loaders:
            loaders[search_path_string] = original(search_path_string)
        return loaders[search_path_string]

    botocore.session.create_loader = create_loader  # type: ignore[assignment]
    try:
        yield
    finally:
        botocore.session.create_loader = original


class _CurrentStdout:
    """Writes to whatever ``sys.stdout`` is now, so pytest's per-test capture sees Powertools' logs."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(autouse=True)
def no_key_material_in_logs(capfd: pytest.CaptureFixture[str]) -> Iterator[_Recorder]:
    """Fail any test whose log records or stdout/stderr contain private key text."""
    recorder = _Recorder()
    powertools = logging.getLogger("certrotate")
    for handler in powertools.handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(_CurrentStdout())  # type: ignore[arg-type]
    formatter = next((h.formatter for h in powertools.handlers if h.formatter), None)
    if formatter is not None:
        recorder.setFormatter(formatter)
    powertools.addHandler(recorder)
    logging.getLogger().addHandler(recorder)
    try:
        yield recorder
    finally:
        powertools.removeHandler(recorder)
        logging.getLogger().removeHandler(recorder)
    captured = capfd.readouterr()
    for where, text in (("logs", "\n".join(recorder.lines)), ("stdout", captured.out), ("stderr", captured.err)):
        for marker in KEY_MARKERS:
            assert marker not in text, f"{marker!r} leaked into {where}"


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "certrotate")


LEDGER_TABLE = "certrotate-ledger"


@dataclass
class AwsClients:
    sm: Any
    pca: Any
    acm: Any
    calls: Counter[str]
    dynamodb: Any = None

    def all(self) -> tuple[Any, ...]:
        return self.sm, self.pca, self.acm


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsClients]:
    """moto in process, clients without botocore retries, and the handler wired to them.

    The issuance ledger exists, as the central stack creates it (ACM_ISSUED needs it).
    """
    with mock_aws(), strict_table_deletion():
        config = Config(retries={"total_max_attempts": 1})
        clients = AwsClients(
            sm=boto3.client("secretsmanager", region_name=REGION, config=config),
            pca=boto3.client("acm-pca", region_name=REGION, config=config),
            acm=boto3.client("acm", region_name=REGION, config=config),
            calls=Counter(),
        )
        for client in clients.all():
            client.meta.events.register("before-call", _counter(clients.calls))
        clients.dynamodb = boto3.client("dynamodb", region_name=REGION, config=config)
        create_table(clients.dynamodb, LEDGER_TABLE)
        services: Services = build_services(
            clients.sm,
            lambda region: clients.pca,
            lambda region: clients.acm,
            ledger=Ledger(clients.dynamodb, LEDGER_TABLE),
        )
        monkeypatch.setattr(rotation.handler, "_services", services)
        yield clients
    rotation.handler.reset()


def _counter(calls: Counter[str]) -> Callable[..., None]:
    def count(model: Any, **_: Any) -> None:
        calls[f"{model.service_model.endpoint_prefix}:{model.name}"] += 1

    return count


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's server on a loopback port, for what must reach AWS from another process."""
    import logging

    from moto.server import ThreadedMotoServer

    from rotation.cli.local_apache import free_port

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def root_ca(aws: AwsClients) -> str:
    arn = create_ca(aws.pca)
    aws.calls.clear()  # count only what rotation does
    return arn


@pytest.fixture
def acm_chain(aws: AwsClients) -> Iterator[dict[str, int]]:
    with real_acm_chain() as renewals:
        yield renewals


@pytest.fixture
def make_secret(aws: AwsClients) -> Callable[..., str]:
    """Create a certificate secret holding ``fields``; returns its ARN."""
    counter = iter(range(10_000))

    def make(fields: dict[str, Any] | str, name: str | None = None) -> str:
        value = fields if isinstance(fields, str) else json.dumps(fields)
        response = aws.sm.create_secret(Name=name or f"certificate-{next(counter)}", SecretString=value)
        return str(response["ARN"])

    return make
