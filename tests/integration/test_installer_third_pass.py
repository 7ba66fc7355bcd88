"""Issue 25, host items 6-8, each played by a real unprivileged local user (useradd) against the
real nginx, HAProxy or Apache on loopback, through the documents as SSM runs them (the local SSM
runner, the aws CLI against moto's server; fleet records in moto's inventory).

The attacker's programs run as that user with the system's ``/usr/bin/python3`` (the test's own
interpreter is under /root, which the user cannot enter); each is a short script passed with ``-c``.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import platform
import pwd
import select
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from rotation.cli.local_apache import LocalApache, apache_available, free_port
from rotation.cli.local_servers import LocalHaproxy, LocalNginx
from rotation.emulation.ssm_inventory import ssm_inventory_in_moto
from tests.installer.helpers import LocalUser
from tests.installer.test_servers import haproxy_adapter
from tests.integration.conftest import HOSTNAME, REGION, LocalServer, require, start_server
from tests.integration.test_fleet_record import records, run
from tests.integration.test_install_document import served_serial, snapshot
from tests.support.certs import LocalCA

PYTHON = "/usr/bin/python3"  # the attacker's interpreter (readable by every user)

# Loops on binding the port (as a local user would, waiting for it to come free); says GOT once it
# holds it, and keeps it.
GRAB = """
import socket, sys, time
port = int(sys.argv[1])
print("READY", flush=True)
while True:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        s.listen(16)
    except OSError:
        s.close()
        continue
    print("GOT", flush=True)
    time.sleep(3600)
"""

# A TLS listener of the user's own on 127.0.0.1:PORT, presenting the certificate it reads on stdin.
LISTEN_TLS = """
import json, os, socket, ssl, sys, tempfile
port = int(sys.argv[1])
pems = json.load(sys.stdin)
fd, path = tempfile.mkstemp()
os.write(fd, (pems["cert"] + pems["key"]).encode())
os.close(fd)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(path)
os.unlink(path)
listener = socket.socket()
listener.bind(("127.0.0.1", port))
listener.listen(64)
print("READY", flush=True)
while True:
    raw, _ = listener.accept()
    try:
        with context.wrap_socket(raw, server_side=True):
            print("served", flush=True)
    except (OSError, ssl.SSLError):
        raw.close()
"""

# A member of group haproxy: its own socket beside admin.sock, the two names swapped in a loop with
# renameat2(RENAME_EXCHANGE); every byte any connection to its socket sends is appended to RECORD.
SWAP = """
import ctypes, os, socket, sys, threading
directory, record, number = sys.argv[1], sys.argv[2], int(sys.argv[3])
ours, theirs = os.path.join(directory, "theirs.sock"), os.path.join(directory, "admin.sock")
listener = socket.socket(socket.AF_UNIX)
listener.bind(ours)
listener.listen(64)
def serve():
    while True:
        connection, _ = listener.accept()
        connection.settimeout(2)
        received = b""
        try:
            while True:
                chunk = connection.recv(65536)
                if not chunk:
                    break
                received += chunk
        except OSError:
            pass
        connection.close()
        with open(record, "ab") as handle:
            handle.write(b"--connection %d bytes--\\n" % len(received) + received + b"\\n")
threading.Thread(target=serve, daemon=True).start()
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
print("READY", flush=True)
a, b = ours.encode(), theirs.encode()
while True:
    libc.syscall(number, AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)
"""
RENAMEAT2 = {"x86_64": 316, "aarch64": 276}


@contextlib.contextmanager
def as_user(
    user: LocalUser, script: str, *arguments: str, stdin: str = "", groups: tuple[int, ...] = ()
) -> Iterator[Any]:
    """``script`` run by ``user`` (and ``groups``); started once it prints READY, killed afterwards."""
    process = subprocess.Popen(
        [PYTHON, "-c", script, *arguments],
        user=user.uid,
        group=user.gid,
        extra_groups=list(groups),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd="/",
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(stdin.encode())
    process.stdin.close()
    try:
        assert process.stdout.readline().strip() == b"READY", process.stderr.read() if process.stderr else b""
        yield process
    finally:
        process.kill()
        process.wait()


def lines_so_far(process: Any) -> list[str]:
    """What ``process`` printed after READY (it is killed first, so its pipe ends)."""
    process.kill()
    process.wait()
    return process.stdout.read().decode().split()


@pytest.fixture
def ssm(moto_endpoint: str) -> Iterator[Any]:
    with ssm_inventory_in_moto():
        yield boto3.client("ssm", region_name=REGION, endpoint_url=moto_endpoint)


def exit_code(result: Any) -> int:
    return int(result.steps[-1].exit_code)


# Item 6: nginx's restart --------------------------------------------------------------------------


@pytest.fixture
def nginx(tmp_path: Path, ca: LocalCA) -> Iterator[LocalServer]:
    server = start_server("nginx", tmp_path / "nginx", ca)
    yield server
    server.stop()


@pytest.mark.slow
def test_6_restart_on_nginx_never_lets_a_local_user_take_the_port(
    nginx: LocalNginx, ca: LocalCA, put_secret: Any, host_env: dict[str, str], attacker: LocalUser
) -> None:
    """On main ``ReloadMode=restart`` stopped nginx: the user looping on bind got the port, and nginx
    could not start again. Now every mode keeps the listening sockets (a reload)."""
    master = nginx.master_pid()
    new = ca.issue([HOSTNAME])
    with as_user(attacker, GRAB, str(nginx.port)) as grabber:
        result = run("RunUpdateTLS", nginx, host_env, SecretArn=put_secret(new), ReloadMode="restart")
        grabbed = lines_so_far(grabber)
    assert "GOT" not in grabbed
    assert result.ok, result.stdout + result.stderr
    assert served_serial(nginx) == new.certificate.serial_number
    assert nginx.master_pid() == master  # the same master: its sockets never left it


@pytest.mark.slow
def test_6_a_rollback_that_cannot_bring_the_server_back_says_so_in_the_exit_code_and_record(
    nginx: LocalNginx, ca: LocalCA, put_secret: Any, host_env: dict[str, str], attacker: LocalUser, ssm: Any
) -> None:
    """nginx is down and a local user holds its port: the install's start fails, the undo's start
    fails too. On main that was exit 6 like any failed reload; now 14, in the record as well."""
    nginx.stop()
    live = snapshot(nginx)
    with as_user(attacker, GRAB, str(nginx.port)) as grabber:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not select.select([grabber.stdout], [], [], 0.1)[0]:
            pass
        assert grabber.stdout.readline().strip() == b"GOT"
        result = run("RunUpdateTLS", nginx, host_env, SecretArn=put_secret(ca.issue([HOSTNAME])))
    assert exit_code(result) == 14, result.stdout + result.stderr
    assert "could not be brought back" in result.stderr and f"port {nginx.port}" in result.stderr
    assert snapshot(nginx) == live
    (entry,) = records(ssm)
    assert entry["Status"] == "failed" and entry["ExitCode"] == "14"
    assert "could not be brought back" in entry["Message"]


# Item 7: HAProxy's admin socket -------------------------------------------------------------------


@pytest.fixture
def haproxy(tmp_path: Path, ca: LocalCA) -> Iterator[LocalServer]:
    server = start_server("haproxy", tmp_path / "haproxy", ca)
    yield server
    server.stop()


@pytest.fixture
def group_member(attacker: LocalUser) -> Iterator[tuple[LocalUser, int]]:
    """The attacker, added to group haproxy (an operator given the stats socket)."""
    try:
        gid = grp.getgrnam("haproxy").gr_gid
    except KeyError:
        pytest.fail("group haproxy is missing (Debian's haproxy package makes it)")
    subprocess.run(["usermod", "-a", "-G", "haproxy", attacker.name], check=True)
    yield attacker, gid


def test_7_a_haproxy_group_member_racing_the_socket_names_never_receives_a_key(
    haproxy: LocalHaproxy, group_member: tuple[LocalUser, int]
) -> None:
    """The socket directory as Debian has /run/haproxy (haproxy:haproxy 2775), a group member's
    socket beside admin.sock, the names swapped in a loop: on main the ``set ssl cert`` payload,
    private key included, reached the member's socket. Every push now checks its connection's
    peer (SO_PEERCRED: HAProxy's process, root's) before it sends a byte."""
    user, haproxy_gid = group_member
    haproxy_uid = pwd.getpwnam("haproxy").pw_uid
    directory = haproxy.socket_directory
    os.chown(directory, haproxy_uid, haproxy_gid)
    directory.chmod(0o2775)
    theirs = Path(tempfile.mkdtemp(prefix="certrotate-member-"))  # the test's tmp_path is root's alone
    os.chown(theirs, user.uid, user.gid)
    record = theirs / "received"
    adapter = haproxy_adapter(haproxy, haproxy_runtime_socket=str(haproxy.runtime_socket))
    keys: list[str] = []
    outcomes: dict[str, int] = {}
    with as_user(user, SWAP, str(directory), str(record), str(RENAMEAT2[platform.machine()]), groups=(haproxy_gid,)):
        for _ in range(60):
            bundle = LocalCA(name="certrotate Integration CA").issue([HOSTNAME])
            keys.append(bundle.private_key_pem)
            haproxy.write_bundle(bundle)
            try:
                ok, text = adapter.reload("graceful")
                outcome = "pushed" if ok else "failed"
            except Exception as exc:  # the installer's REFUSED (exit 9): nothing was sent
                outcome, text = "refused", str(exc)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            assert "PRIVATE KEY" not in text
    received = record.read_bytes() if record.exists() else b""
    shutil.rmtree(theirs)
    # booleans first: a failing assert must not print what the member received (it would be a key)
    leaked = b"PRIVATE KEY" in received or any(
        line.encode() in received for key in keys for line in key.splitlines() if line and not line.startswith("-")
    )
    commands = b"ssl cert" in received  # no command at all (commit, abort) went there either
    assert not leaked and not commands, f"{len(received)} bytes received, outcomes {outcomes}"
    connections = received.count(b"--connection ")
    assert connections >= 1, outcomes  # the race was won: some connects reached the member's socket
    assert received.count(b"--connection 0 bytes--") == connections
    assert outcomes.get("refused", 0) >= 1 and outcomes.get("pushed", 0) >= 1, outcomes


# Item 8: the served-truth check's addresses --------------------------------------------------------


@pytest.fixture
def apache_on(tmp_path: Path, ca: LocalCA, request: pytest.FixtureRequest) -> Iterator[LocalApache]:
    require(apache_available())
    server = LocalApache(tmp_path / "apache", free_port(), address=request.param)
    server.write_bundle(ca.issue([HOSTNAME]))
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("apache_on", ["127.0.0.2", "::1"], indirect=True)
def test_8_a_server_on_one_address_or_ipv6_only_installs(
    apache_on: LocalApache, ca: LocalCA, put_secret: Any, host_env: dict[str, str], ssm: Any
) -> None:
    """On main the check probed 127.0.0.1 only: exit 6 after 30 s and the good certificate rolled back."""
    new = ca.issue([HOSTNAME])
    result = run("RunUpdateTLS", apache_on, host_env, SecretArn=put_secret(new))
    assert result.ok, result.stdout + result.stderr
    assert served_serial(apache_on) == new.certificate.serial_number
    (entry,) = records(ssm)
    assert entry["Status"] == "installed" and entry["ServedCheck"] == "16/16"


@pytest.mark.parametrize("apache_on", ["127.0.0.2"], indirect=True)
def test_8_a_local_users_listener_on_loopback_neither_fails_the_install_nor_forges_a_stale_serial(
    apache_on: LocalApache, ca: LocalCA, put_secret: Any, host_env: dict[str, str], ssm: Any, attacker: LocalUser
) -> None:
    """Apache on 127.0.0.2:PORT, the user's TLS listener on 127.0.0.1:PORT presenting a serial of
    their choice: on main the check asked the user's listener, failed the install and wrote
    ``stale: 16/16 serial <theirs>`` into the record (which holds that serial's revocation)."""
    theirs = LocalCA(name="Attacker CA").issue([HOSTNAME])
    pems = json.dumps({"cert": theirs.certificate_pem, "key": theirs.private_key_pem})
    new = ca.issue([HOSTNAME])
    with as_user(attacker, LISTEN_TLS, str(apache_on.port), stdin=pems) as listener:
        with socket.create_connection(("127.0.0.1", apache_on.port), timeout=5):
            pass  # the user's listener is there
        result = run("RunUpdateTLS", apache_on, host_env, SecretArn=put_secret(new))
        asked = lines_so_far(listener).count("served")
    assert result.ok, result.stdout + result.stderr
    assert asked == 0  # never asked
    assert served_serial(apache_on) == new.certificate.serial_number
    (entry,) = records(ssm)
    assert entry["ServedCheck"] == "16/16" and theirs.serial_hex not in json.dumps(entry)


def test_8_the_addresses_are_the_listening_sockets_of_the_servers_own_processes(
    haproxy: LocalHaproxy, attacker: LocalUser
) -> None:
    """HAProxy's workers (user haproxy) hold its listener; a user's listener on another address of
    the same port is not the server's."""
    adapter = haproxy_adapter(haproxy)
    assert adapter.listeners() == [("127.0.0.1", haproxy.port)]
    with as_user(attacker, GRAB.replace('"127.0.0.1"', '"127.0.0.3"'), str(haproxy.port)) as grabber:
        assert grabber.stdout.readline().strip() == b"GOT"
        assert adapter.listeners() == [("127.0.0.1", haproxy.port)]
