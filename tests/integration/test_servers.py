"""What is particular to nginx and HAProxy, through the documents as SSM runs them (the local SSM
runner, the aws CLI against moto's server, Debian's real nginx and haproxy on loopback ports).

The guarantees all three servers share (install, idempotence, config test, rollback, kills, links,
load) are the Apache tests parametrized over ``server`` (test_install_document.py,
test_installer_attacks.py); here: HAProxy's Runtime API (no reload at all) against its master
reload, the layout nginx and HAProxy need, and the host-file-only sockets and configs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path
from typing import Any

import pytest

from rotation.cli.local_servers import LocalHaproxy
from rotation.emulation.ssm_runner import DocumentParameterError, run_document
from tests.installer.helpers import LocalUser
from tests.integration.conftest import HOSTNAME, LocalServer
from tests.integration.test_install_document import INSTALL, install, rollback, served_serial, snapshot
from tests.support.certs import LocalCA


def code(result: Any) -> int:
    return int(result.steps[-1].exit_code)


def recorded(server: LocalServer) -> list[dict[str, str]]:
    """The fleet records the installer keeps in the server's state directory."""
    state = json.loads((server.state_directory / "inventory.json").read_text())
    return list(state["records"] if isinstance(state, dict) else state)


def same_serial(recorded_serial: str, serial_hex: str) -> bool:
    return recorded_serial.replace(":", "").upper() == serial_hex.replace(":", "").upper()


def workers(server: LocalHaproxy) -> set[int]:
    master = server.master_pid()
    return {pid for pid in server.pids() if pid != master}


@pytest.mark.parametrize("server", ["haproxy"], indirect=True)
def test_haproxy_takes_the_new_certificate_through_the_runtime_api_with_no_reload(
    server: LocalHaproxy, ca: LocalCA, put_secret: Any, host_env: dict[str, str]
) -> None:
    before = workers(server)
    old_serial = served_serial(server)
    new = ca.issue([HOSTNAME])
    result = install(server, put_secret(new), host_env)
    assert result.ok, result.stderr
    assert served_serial(server) == new.certificate.serial_number
    assert workers(server) == before  # the same worker serves it: nothing was reloaded
    back = rollback(server, host_env)  # the previous content is pushed back the same way
    assert back.ok, back.stderr
    assert served_serial(server) == old_serial and workers(server) == before
    assert "PRIVATE KEY" not in result.stdout + result.stderr + back.stdout + back.stderr


@pytest.mark.parametrize("server", ["haproxy"], indirect=True)
def test_haproxy_without_a_runtime_socket_reloads_through_its_master(
    server: LocalHaproxy, ca: LocalCA, put_secret: Any, host_env: dict[str, str]
) -> None:
    server.write_installer_config(haproxy_runtime_socket=None)
    before = workers(server)
    new = ca.issue([HOSTNAME])
    result = install(server, put_secret(new), host_env)
    assert result.ok, result.stderr
    assert served_serial(server) == new.certificate.serial_number
    assert workers(server) - before  # a new worker, started by the master's reload


@pytest.mark.parametrize("server", ["haproxy"], indirect=True)
def test_haproxy_killed_after_the_push_serves_what_the_disk_holds_after_the_next_run(
    server: LocalHaproxy, ca: LocalCA, put_secret: Any, host_env: dict[str, str]
) -> None:
    """Killed after the Runtime API took the new certificate, before the commit: the next run puts
    the old file back and reloads (the master reads the disk), then installs again."""
    old = snapshot(server)
    new = ca.issue([HOSTNAME])
    arn = put_secret(new)
    server.write_installer_config(test_fault={"at": "reloaded", "signal": "KILL"})
    assert code(install(server, arn, host_env)) == -signal.SIGKILL
    assert served_serial(server) == new.certificate.serial_number  # in memory, not yet committed
    server.write_installer_config()
    result = install(server, arn, host_env)
    assert result.ok, result.stderr
    assert "recovered an interrupted install" in result.stdout and "HAProxy reloaded" in result.stdout
    assert served_serial(server) == new.certificate.serial_number
    assert {p.name: Path(f"{p}.certrotate-previous").read_bytes() for p in server.live_files()} == old


@pytest.mark.parametrize("server", ["nginx", "haproxy"], indirect=True)
def test_nginx_and_haproxy_need_the_combined_layout(
    server: LocalServer, ca: LocalCA, put_secret: Any, host_env: dict[str, str]
) -> None:
    live, serial = snapshot(server), served_serial(server)
    result = install(server, put_secret(ca.issue([HOSTNAME])), host_env, FileLayout="separate")
    assert code(result) == 2
    assert f"parameter FileLayout 'separate' is not allowed with Server {server.name} (allowed: combined" in (
        result.stderr
    )
    assert snapshot(server) == live and served_serial(server) == serial


@pytest.mark.parametrize("server", ["nginx", "haproxy"], indirect=True)
def test_a_service_name_of_another_server_is_a_bad_parameter(
    server: LocalServer, ca: LocalCA, put_secret: Any, host_env: dict[str, str]
) -> None:
    result = install(server, put_secret(ca.issue([HOSTNAME])), host_env, ServiceName="apache2")
    assert code(result) == 2 and f"ServiceName 'apache2' is not this server's service (allowed: {server.name}" in (
        result.stderr
    )


@pytest.mark.parametrize("server", ["nginx", "haproxy"], indirect=True)
def test_a_sender_names_no_socket_and_no_config(
    server: LocalServer, ca: LocalCA, put_secret: Any, host_env: dict[str, str], tmp_path: Path
) -> None:
    """The documents have no parameter for a server's config or socket; a variable of that name set
    beside the parameters is not read; only the host file names them."""
    arn = put_secret(ca.issue([HOSTNAME]))
    for name in ("HaproxyRuntimeSocket", "NginxConfig", "haproxy_runtime_socket", "ServerConfig"):
        with pytest.raises(DocumentParameterError, match=name):
            install(server, arn, host_env, **{name: str(tmp_path / "x")})
    env = {**host_env, "SSM_haproxy_runtime_socket": str(tmp_path / "x"), "SSM_nginx_config": str(tmp_path / "x")}
    result = install(server, arn, env)
    assert result.ok, result.stderr


@pytest.mark.parametrize("server", ["nginx", "haproxy"], indirect=True)
def test_a_server_config_another_user_wrote_is_refused_before_any_change(
    server: LocalServer, ca: LocalCA, put_secret: Any, host_env: dict[str, str], tmp_path: Path, attacker: LocalUser
) -> None:
    """nginx -t and haproxy -c run as root read (and nginx loads modules named by) the config: even
    the host file cannot name one another user can write."""
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, attacker.uid, attacker.gid)
    evil = theirs / "evil.conf"
    evil.write_text(server.config.read_text())
    os.chown(evil, attacker.uid, attacker.gid)
    server.write_installer_config(**{f"{server.name}_config": str(evil)})
    live, serial = snapshot(server), served_serial(server)
    result = install(server, put_secret(ca.issue([HOSTNAME])), host_env)
    assert code(result) == 9 and f"owned by uid {attacker.uid}" in result.stderr
    assert snapshot(server) == live and served_serial(server) == serial


@pytest.mark.parametrize("server", ["haproxy"], indirect=True)
def test_a_runtime_socket_another_user_could_plant_never_gets_the_key(
    server: LocalHaproxy, ca: LocalCA, put_secret: Any, host_env: dict[str, str], tmp_path: Path, attacker: LocalUser
) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, attacker.uid, attacker.gid)
    planted = theirs / "admin.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(planted))
    listener.listen()
    listener.settimeout(0.5)
    try:
        server.write_installer_config(haproxy_runtime_socket=str(planted))
        live, serial = snapshot(server), served_serial(server)
        result = install(server, put_secret(ca.issue([HOSTNAME])), host_env)
        assert code(result) == 9 and "may be replaced by another user" in result.stderr
        assert snapshot(server) == live and served_serial(server) == serial
        with pytest.raises(TimeoutError):
            listener.accept()  # nothing ever connected to it
    finally:
        listener.close()


@pytest.mark.parametrize("server", ["nginx", "haproxy"], indirect=True)
def test_the_fleet_record_names_the_combined_file(
    server: LocalServer, ca: LocalCA, put_secret: Any, host_env: dict[str, str]
) -> None:
    new = ca.issue([HOSTNAME])
    assert install(server, put_secret(new), host_env).ok
    record = next(r for r in recorded(server) if r["CertificateFile"] == str(server.live_files()[0]))
    assert same_serial(record["Serial"], new.serial_hex)
    assert record["Status"] == "installed" and record["Server"] == server.name


# The host's root chooses the server; a command's sender may only repeat it --------------------------


@pytest.mark.parametrize("server", ["nginx"], indirect=True)
def test_a_sender_cannot_make_the_installer_start_a_server_root_did_not_choose(
    server: LocalServer, ca: LocalCA, put_secret: Any, host_env: dict[str, str]
) -> None:
    """An Apache host (its host file names no server) with nginx installed and stopped by its admin:
    Server=nginx would have the installer run ``nginx -s reload``, find no master and start nginx as
    root. The run is refused before any change, and nginx stays stopped."""
    server.write_installer_config(server=None)  # the host file names no server: this host's is Apache
    server.stop()
    live = snapshot(server)
    result = install(server, put_secret(ca.issue([HOSTNAME])), host_env, Server="nginx")
    assert code(result) == 2, result.stdout + result.stderr
    assert "parameter Server 'nginx' is not allowed on this host (allowed: apache or empty)" in result.stderr
    assert not server.pids() and snapshot(server) == live
    server.write_installer_config(server="apache")  # root names Apache: still not nginx
    again = install(server, put_secret(ca.issue([HOSTNAME])), host_env, Server="nginx")
    assert code(again) == 2 and "names apache" in again.stderr and not server.pids()


@pytest.mark.parametrize("server", ["apache", "nginx", "haproxy"], indirect=True)
def test_a_run_with_only_the_secret_installs_what_the_host_file_describes(
    server: LocalServer, ca: LocalCA, put_secret: Any, host_env: dict[str, str]
) -> None:
    """What the fleet's State Manager association sends: SecretArn alone. The host file says which
    server (nginx and HAProxy get the combined layout they need), where the files go and on which
    port the new certificate is proven served; nothing else is needed."""
    server.write_installer_config(**server.association_settings())
    new = ca.issue([HOSTNAME])
    environment = {**host_env, **server.installer_environment()}
    result = run_document(INSTALL, {"SecretArn": put_secret(new)}, env=environment, timeout=120)
    assert result.ok, result.stdout + result.stderr
    assert served_serial(server) == new.certificate.serial_number
    title = {"apache": "Apache", "nginx": "nginx", "haproxy": "HAProxy"}[server.name]
    assert f"installed; {title} on port {server.port} serves" in result.stdout
    (entry,) = [r for r in recorded(server) if same_serial(r["Serial"], new.serial_hex)]
    assert (entry["Server"], entry["HttpsPort"]) == (server.name, str(server.port))  # what the host file said


@pytest.mark.parametrize("server", ["haproxy"], indirect=True)
def test_a_run_that_starts_while_haproxy_makes_its_socket_anew_waits_for_it(
    server: LocalHaproxy, ca: LocalCA, put_secret: Any, host_env: dict[str, str]
) -> None:
    """HAProxy makes its sockets anew at each reload; a run started just after one (a rollback right
    after an install, under load) found no socket and refused, exit 4. The socket is moved away here
    and put back (as HAProxy's new process does) while the run starts: the run waits and installs."""
    import threading

    sockets = [server.runtime_socket, server.master_socket]
    for path in sockets:
        path.rename(path.with_name(path.name + ".away"))
    back = threading.Timer(3.0, lambda: [p.with_name(p.name + ".away").rename(p) for p in sockets])
    back.start()
    try:
        new = ca.issue([HOSTNAME])
        result = install(server, put_secret(new), host_env)
    finally:
        back.join()
    assert result.ok, result.stderr
    assert served_serial(server) == new.certificate.serial_number
