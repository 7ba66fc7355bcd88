"""RunUpdateTLS / RollbackTLS against the real Apache, the real aws CLI and moto's server.

The documents run through the local SSM runner (parameters checked as SSM checks them).
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from rotation.build.ssm_documents import DOCUMENTS_DIR
from rotation.cli.local_apache import LocalApache as Apache
from rotation.emulation.ssm_runner import CommandResult, run_document
from rotation.issuance.spec import KeyAlgorithm
from tests.integration.conftest import HOSTNAME, LocalServer
from tests.support.certs import LocalCA

INSTALL = DOCUMENTS_DIR / "RunUpdateTLS.yaml"
ROLLBACK = DOCUMENTS_DIR / "RollbackTLS.yaml"


def file_parameters(apache: LocalServer) -> dict[str, str]:
    return apache.document_parameters()


def install(apache: LocalServer, arn: str, env: dict[str, str], **extra: str) -> CommandResult:
    environment = {**env, **apache.installer_environment()}
    return run_document(INSTALL, {"SecretArn": arn, **file_parameters(apache), **extra}, env=environment, timeout=120)


def rollback(apache: LocalServer, env: dict[str, str], **extra: str) -> CommandResult:
    environment = {**env, **apache.installer_environment()}
    return run_document(ROLLBACK, {**file_parameters(apache), **extra}, env=environment, timeout=120)


_CLIENT = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
_CLIENT.check_hostname = False
_CLIENT.verify_mode = ssl.CERT_NONE  # these tests read the served serial; trust is tested elsewhere


def served_serial(apache: LocalServer) -> int:
    with (
        socket.create_connection((getattr(apache, "address", "127.0.0.1"), apache.port), timeout=5) as raw,
        _CLIENT.wrap_socket(raw, server_hostname=HOSTNAME) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def snapshot(apache: LocalServer) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in apache.live_files()}


def assert_no_key_material(result: CommandResult) -> None:
    assert "PRIVATE KEY" not in result.stdout + result.stderr


TITLES = {"apache": "Apache", "nginx": "nginx", "haproxy": "HAProxy"}  # what the messages call each server


def key_file(server: LocalServer) -> Path:
    """The file holding the private key: KeyFile, or the combined file."""
    files = server.live_files()
    return files[1] if len(files) == 3 else files[0]


def test_install_serves_the_new_certificate(
    server: LocalServer, ca: LocalCA, put_secret: Any, host_env: dict[str, str]
) -> None:
    old = snapshot(server)
    old_serial = served_serial(server)
    new = ca.issue([HOSTNAME], key_algorithm=KeyAlgorithm.RSA_2048)
    result = install(server, put_secret(new), host_env)
    assert result.ok, result.stderr
    assert served_serial(server) == new.certificate.serial_number != old_serial
    assert key_file(server).stat().st_mode & 0o777 == 0o600 and key_file(server).stat().st_uid == 0
    for path in server.live_files():
        assert Path(f"{path}.certrotate-previous").read_bytes() == old[path.name]
    assert new.serial_hex in result.stdout.replace(":", "")
    assert ("files written" if len(old) == 3 else "file written") in result.stdout
    assert f"installed; {TITLES[server.name]} on port {server.port} serves" in result.stdout
    assert_no_key_material(result)
    leftovers = [p for p in server.root.rglob("*") if "certrotate-new" in p.name or "certrotate-work" in p.name]
    assert leftovers == []


def test_the_same_certificate_again_changes_nothing(
    server: LocalServer, ca: LocalCA, put_secret: Any, host_env: dict[str, str]
) -> None:
    arn = put_secret(ca.issue([HOSTNAME]))
    assert install(server, arn, host_env).ok
    before = {p: p.stat().st_mtime_ns for p in server.root.joinpath("ssl").rglob("*") if p.is_file()}
    master, workers = _settled(server)
    again = install(server, arn, host_env)
    assert again.ok and "already installed; nothing changed" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in server.root.joinpath("ssl").rglob("*") if p.is_file()} == before
    # Not reloaded either: a reload replaces every worker (a new generation), while a busy or idle
    # server may add or retire a few of its own accord, so some worker of before must still be there
    # (where the harness sees workers: nginx retitles its own, so only its master is found).
    master_after, workers_after = _settled(server)
    assert master_after == master, (master, master_after)
    assert not workers or workers & workers_after, (workers, workers_after)


def _settled(server: LocalServer) -> tuple[int | None, set[int]]:
    """The master and its workers once the set has held still for a second (the first install's
    reload hands over to a new generation for a while)."""
    seen, steady_since, deadline = set(server.pids()), time.monotonic(), time.monotonic() + 20
    while time.monotonic() - steady_since < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
        now = set(server.pids())
        if now != seen:
            seen, steady_since = now, time.monotonic()
    master = server.master_pid()
    return master, seen - {master}


def _bad_secrets(ca: LocalCA) -> dict[str, tuple[Any, int, str]]:
    good, other = ca.issue([HOSTNAME]), ca.issue([HOSTNAME])
    foreign = LocalCA(name="Foreign CA").issue([HOSTNAME])
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    expired = ca.issue([HOSTNAME], not_before=start, lifetime=dt.timedelta(days=1))
    return {
        "key does not match": (
            good.to_fields() | {"PRIVATE_KEY_PEM": other.private_key_pem},
            4,
            "private key does not match",
        ),
        "chain does not verify": (
            foreign.to_fields() | {"CERTIFICATE_CHAIN_PEM": good.chain_pem},
            4,
            "chain does not verify",
        ),
        "expired": (expired.to_fields(), 4, "expired"),
        "key in the chain": (
            good.to_fields() | {"CERTIFICATE_CHAIN_PEM": good.chain_pem + good.private_key_pem},
            4,
            "CERTIFICATE_CHAIN_PEM must hold CERTIFICATE blocks only",
        ),
        "malformed JSON": ("{not json", 3, "not a JSON object"),
        "no certificate": ({"COMMON_NAME": HOSTNAME}, 3, "has no CERTIFICATE_PEM"),
    }


@pytest.mark.parametrize(
    "case",
    ["key does not match", "chain does not verify", "expired", "key in the chain", "malformed JSON", "no certificate"],
)
def test_a_bad_bundle_changes_nothing(
    apache: Apache, ca: LocalCA, put_secret: Any, host_env: dict[str, str], case: str
) -> None:
    value, code, message = _bad_secrets(ca)[case]
    before, serial = snapshot(apache), served_serial(apache)
    result = install(apache, put_secret(value if isinstance(value, str) else json.dumps(value)), host_env)
    assert not result.ok and result.steps[-1].exit_code == code
    assert message in result.stderr
    assert snapshot(apache) == before and served_serial(apache) == serial
    assert_no_key_material(result)


def test_a_missing_secret_changes_nothing(apache: Apache, host_env: dict[str, str]) -> None:
    before, serial = snapshot(apache), served_serial(apache)
    missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:certs/none-AbCdEf"
    result = install(apache, missing, host_env)
    assert result.steps[-1].exit_code == 3
    assert "cannot read secret" in result.stderr and "ResourceNotFoundException" in result.stderr
    assert snapshot(apache) == before and served_serial(apache) == serial


def test_a_failing_config_test_rolls_back(
    server: LocalServer, ca: LocalCA, put_secret: Any, host_env: dict[str, str]
) -> None:
    before, serial = snapshot(server), served_serial(server)
    config = server.config.read_text()
    server.config.write_text(config + server.invalid_directive)
    try:
        result = install(server, put_secret(ca.issue([HOSTNAME])), host_env)
    finally:
        server.config.write_text(config)
    assert result.steps[-1].exit_code == 5
    assert "config test failed" in result.stderr and "restored" in result.stderr
    assert snapshot(server) == before and served_serial(server) == serial
    assert_no_key_material(result)


def test_rollback_document_restores_the_previous_certificate(
    server: LocalServer, ca: LocalCA, put_secret: Any, host_env: dict[str, str]
) -> None:
    old, old_serial = snapshot(server), served_serial(server)
    assert install(server, put_secret(ca.issue([HOSTNAME])), host_env).ok
    result = rollback(server, host_env)
    assert result.ok, result.stderr
    assert served_serial(server) == old_serial and snapshot(server) == old
    assert "rolled back" in result.stdout
    assert_no_key_material(result)


def test_rollback_without_previous_files_refuses(server: LocalServer, host_env: dict[str, str]) -> None:
    result = rollback(server, host_env)
    assert result.steps[-1].exit_code == 7 and "no previous file" in result.stderr


HANDSHAKE_THREADS = 4
MAX_HANDSHAKES = 2000  # bounded; each thread paces itself so the loop spans the whole install
PACE_SECONDS = 0.005


def test_no_handshake_fails_while_the_certificate_is_swapped(
    server: LocalServer, ca: LocalCA, put_secret: Any, host_env: dict[str, str]
) -> None:
    apache = server
    old_serial = served_serial(apache)
    new = ca.issue([HOSTNAME])
    arn = put_secret(new)
    seen: list[int] = []
    failures: list[str] = []
    done = threading.Event()
    lock = threading.Lock()

    def hammer() -> None:
        while not done.is_set():
            with lock:
                if len(seen) + len(failures) >= MAX_HANDSHAKES:
                    return
            try:
                serial = served_serial(apache)
                with lock:
                    seen.append(serial)
            except (OSError, ssl.SSLError) as exc:
                with lock:
                    failures.append(type(exc).__name__)
            done.wait(PACE_SECONDS)

    threads = [threading.Thread(target=hammer) for _ in range(HANDSHAKE_THREADS)]
    for thread in threads:
        thread.start()
    result = install(apache, arn, host_env)
    done.wait(0.3)  # a little traffic after the swap too
    done.set()
    for thread in threads:
        thread.join(timeout=30)
    assert result.ok, result.stderr
    assert failures == []
    assert set(seen) <= {old_serial, new.certificate.serial_number}
    assert old_serial in seen and new.certificate.serial_number in seen
    assert len(seen) >= 300


def test_access_denied_changes_nothing(apache: Apache, tmp_path: Path, host_env: dict[str, str]) -> None:
    """moto's server does not enforce IAM, so an ``aws`` stand-in answers as the real CLI does when
    the host's role may not read the secret (exit 254, AccessDeniedException on stderr)."""
    shim = tmp_path / "bin" / "aws"
    shim.parent.mkdir()
    shim.write_text(
        "#!/bin/sh\n"
        "echo >&2\n"
        "echo 'An error occurred (AccessDeniedException) when calling the GetSecretValue operation: User: "
        "arn:aws:sts::222233334444:assumed-role/web/i-0abc is not authorized to perform: "
        "secretsmanager:GetSecretValue' >&2\n"
        "exit 254\n"
    )
    shim.chmod(0o755)
    before, serial = snapshot(apache), served_serial(apache)
    env = {**host_env, "PATH": f"{shim.parent}:{host_env['PATH']}"}
    result = install(apache, "arn:aws:secretsmanager:us-east-1:111122223333:secret:certs/web-AbCdEf", env)
    assert result.steps[-1].exit_code == 3
    assert "AccessDeniedException" in result.stderr and "cannot read secret" in result.stderr
    assert snapshot(apache) == before and served_serial(apache) == serial


def test_the_secret_is_read_in_the_region_of_its_arn(
    apache: Apache, ca: LocalCA, moto_endpoint: str, host_env: dict[str, str]
) -> None:
    import boto3

    remote = boto3.client("secretsmanager", region_name="eu-west-1", endpoint_url=moto_endpoint)
    new = ca.issue([HOSTNAME])
    arn = remote.create_secret(Name="certs/elsewhere", SecretString=json.dumps(new.to_fields()))["ARN"]
    assert ":eu-west-1:" in arn
    env = {**host_env, "AWS_DEFAULT_REGION": "us-east-1"}  # the host's own region differs
    result = install(apache, arn, env)
    assert result.ok, result.stderr
    assert served_serial(apache) == new.certificate.serial_number


def test_an_agent_older_than_env_var_interpolation_installs_through_the_fallback(
    apache: Apache, ca: LocalCA, put_secret: Any, host_env: dict[str, str]
) -> None:
    """SSM Agents before 3.3.2746.0 set no SSM_<Name>: the document's fallback lines fill them in."""
    new = ca.issue([HOSTNAME])
    environment = {**host_env, **apache.installer_environment()}
    parameters = {"SecretArn": put_secret(new), **file_parameters(apache)}
    result = run_document(INSTALL, parameters, env=environment, timeout=120, env_var_interpolation=False)
    assert result.ok, result.stderr
    assert served_serial(apache) == new.certificate.serial_number


OLDEST_PYTHON = sorted(Path("/root/.pyenv/versions").glob("3.6.*/bin/python3.6"))


def test_the_documents_run_on_python_3_6(
    server: LocalServer, ca: LocalCA, put_secret: Any, host_env: dict[str, str], tmp_path: Path
) -> None:
    apache = server
    """RHEL 8's platform-python is 3.6: the whole install and rollback on a 3.6 interpreter."""
    if not OLDEST_PYTHON:
        pytest.skip("no Python 3.6 here (tests/installer/test_python_versions.py still checks the source)")
    bin_dir = tmp_path / "py36"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(OLDEST_PYTHON[-1])
    env = {**host_env, "PATH": f"{bin_dir}:{host_env['PATH']}"}
    old_serial = served_serial(apache)
    new = ca.issue([HOSTNAME], key_algorithm=KeyAlgorithm.RSA_2048)
    result = install(apache, put_secret(new), env)
    assert result.ok, result.stderr
    assert served_serial(apache) == new.certificate.serial_number
    back = rollback(apache, env)
    assert back.ok, back.stderr
    assert served_serial(apache) == old_serial
