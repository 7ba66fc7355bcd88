"""The nginx and HAProxy adapters (``servers/nginx.py``, ``servers/haproxy.py``) against Debian's real
nginx and haproxy on loopback ports: config test, reload, the Runtime API swap, what is served, and
the sockets an attacker could plant. The documents drive them end to end in tests/integration."""

from __future__ import annotations

import os
import platform
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from certrotate_installer import host_file, output, validation
from certrotate_installer.servers import REGISTRY, haproxy, nginx
from certrotate_installer.tools import tool_environment

from rotation.cli.local_servers import LocalHaproxy, LocalNginx, free_port, server_available
from rotation.issuance.bundle import CertBundle
from tests.installer.helpers import LocalUser
from tests.support.certs import LocalCA

HOSTNAME = "www.certrotate.test"
CA = LocalCA(name="Servers CA")


def need(name: str) -> None:
    problem = server_available(name)
    if problem and os.environ.get("CI"):
        pytest.fail(problem)
    if problem:
        pytest.skip(problem)


def facts(bundle: CertBundle) -> Any:
    """The installer's facts of ``bundle`` (what ``wait_for`` expects to be served)."""
    return validation.parse_bundle(
        bundle.certificate_pem, bundle.private_key_pem, bundle.chain_pem, ("c", "k", "ch")
    ).facts


@pytest.fixture
def local_nginx(tmp_path: Path) -> Iterator[LocalNginx]:
    need("nginx")
    server = LocalNginx(tmp_path / "nginx", free_port())
    server.write_bundle(CA.issue([HOSTNAME]))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def local_haproxy(tmp_path: Path) -> Iterator[LocalHaproxy]:
    need("haproxy")
    server = LocalHaproxy(tmp_path / "haproxy", free_port())
    server.write_bundle(CA.issue([HOSTNAME]))
    server.start()
    yield server
    server.stop()


def nginx_adapter(local: LocalNginx) -> nginx.Nginx:
    return nginx.Nginx(nginx.Nginx.distros[0], str(local.config), local.port, tool_environment(dict(os.environ)))


def haproxy_adapter(local: LocalHaproxy, **settings: str) -> haproxy.Haproxy:
    adapter = haproxy.Haproxy(
        haproxy.Haproxy.distros[0], str(local.config), local.port, tool_environment(dict(os.environ))
    )
    adapter.configure(host_file.parse_host_config("/test/installer.json", settings, REGISTRY), os.geteuid())
    adapter.files = (str(local.combined_file()),)
    return adapter


# nginx ---------------------------------------------------------------------------------------------


def test_nginx_config_test_passes_and_fails_with_nginx_own_words(local_nginx: LocalNginx) -> None:
    adapter = nginx_adapter(local_nginx)
    ok, text = adapter.config_test()
    assert ok and "test is successful" in text
    good = local_nginx.config.read_text()
    local_nginx.config.write_text(good.replace("worker_processes 2;", "worker_processes 2;\ncertrotate_no_such on;"))
    ok, text = adapter.config_test()
    assert not ok and 'unknown directive "certrotate_no_such"' in text


def test_nginx_reload_serves_the_new_file_and_starts_a_stopped_nginx(local_nginx: LocalNginx) -> None:
    adapter = nginx_adapter(local_nginx)
    first, second = CA.issue([HOSTNAME]), CA.issue([HOSTNAME])
    local_nginx.write_bundle(first)
    assert adapter.reload("graceful")[0]
    assert adapter.wait_for(facts(first), 10).ok
    local_nginx.stop()
    assert adapter.served(HOSTNAME) is None
    local_nginx.write_bundle(second)
    ok, text = adapter.reload("graceful")  # no master: started, as Apache's graceful starts Apache
    assert ok, text
    assert adapter.wait_for(facts(second), 10).ok
    assert adapter.reload("restart")[0]
    assert adapter.wait_for(facts(second), 10).ok


def test_nginx_reload_waits_for_new_workers_and_sees_a_master_that_refused(local_nginx: LocalNginx) -> None:
    """nginx -s reload only sends SIGHUP: the adapter waits for the master's new workers (after
    it, no old worker serves the previous certificate). A file nginx cannot load fails the reload
    (nginx -s reload parses the configuration itself before it signals)."""
    adapter = nginx_adapter(local_nginx)
    before = adapter._master_and_workers()
    assert before is not None and before[0] == local_nginx.master_pid() and len(before[1]) == 2
    new = CA.issue([HOSTNAME])
    local_nginx.write_bundle(new)
    assert adapter.reload("graceful")[0]
    after = adapter._master_and_workers()
    assert after is not None and after[0] == before[0] and not after[1] & before[1]
    assert adapter.served(HOSTNAME) == facts(new).der  # at once, no polling
    mismatched = CA.issue([HOSTNAME]).certificate_pem + CA.issue([HOSTNAME]).private_key_pem
    local_nginx.combined_file().write_text(mismatched)
    ok, text = adapter.reload("graceful")
    assert not ok and "key values mismatch" in text and "PRIVATE KEY" not in text
    assert adapter.served(HOSTNAME) == facts(new).der


def look_alike_master(user: LocalUser, title: str) -> subprocess.Popen[bytes]:
    """A process of ``user`` showing ``title`` as its command line, made undumpable (its /proc/PID
    then shows as root's): perl's ``$0`` rewrites its argv in place, prctl(PR_SET_DUMPABLE, 0)."""
    prctl = {"x86_64": 157, "aarch64": 167}[platform.machine()]
    script = f"syscall({prctl}, 4, 0, 0, 0, 0); $0 = shift; $| = 1; print qq(ready\\n); sleep 60"
    process = subprocess.Popen(["perl", "-e", script, title], user=user.uid, group=user.gid, stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    return process


def test_a_local_user_posing_as_the_nginx_master_neither_hides_it_nor_fails_a_reload(
    local_nginx: LocalNginx, attacker: LocalUser
) -> None:
    """Any user can title a process ``nginx: master process ... -c CONFIG``. Counted as a master, one
    such process hid the real master (two matched), and one started during a reload made the
    reload fail ("the master went away"): every install rolled back, by a user with no rights."""
    adapter = nginx_adapter(local_nginx)
    before = adapter._master_and_workers()
    assert before is not None and before[0] == local_nginx.master_pid()
    title = f"nginx: master process /usr/sbin/nginx -c {local_nginx.config}"
    fakes = [look_alike_master(attacker, title), look_alike_master(attacker, title)]
    try:
        assert adapter._master_and_workers() is not None
        assert adapter._master_and_workers()[0] == local_nginx.master_pid()  # type: ignore[index]
        new = CA.issue([HOSTNAME])
        local_nginx.write_bundle(new)
        sent, text = adapter._control(adapter._command("-s", "reload"))
        assert sent, text
        ok, text = adapter._settle(before, text)  # the look-alikes appeared after ``before`` was taken
        assert ok, text
        assert adapter.served(HOSTNAME) == facts(new).der
    finally:
        for fake in fakes:
            fake.kill()
            fake.wait()


def test_nginx_wait_for_names_what_is_served_instead(local_nginx: LocalNginx) -> None:
    adapter = nginx_adapter(local_nginx)
    unserved = CA.issue([HOSTNAME])
    proof = adapter.wait_for(facts(unserved), 0.3)
    assert not proof.ok and f"fresh connections to port {local_nginx.port}" in proof.why(local_nginx.port)
    assert f"the expected serial {facts(unserved).serial_hex}" not in proof.why(local_nginx.port)


# HAProxy -------------------------------------------------------------------------------------------


def worker_pids(local: LocalHaproxy) -> set[int]:
    master = local.master_pid()
    return {pid for pid in local.pids() if pid != master}


def test_haproxy_config_test_reads_the_combined_file(local_haproxy: LocalHaproxy) -> None:
    adapter = haproxy_adapter(local_haproxy)
    assert adapter.config_test()[0]
    local_haproxy.combined_file().write_text(CA.issue([HOSTNAME]).certificate_pem)  # no key
    ok, text = adapter.config_test()
    assert not ok and "PRIVATE KEY" not in text
    assert str(local_haproxy.combined_file()) in text


def test_haproxy_runtime_api_swaps_with_no_reload(local_haproxy: LocalHaproxy) -> None:
    adapter = haproxy_adapter(
        local_haproxy,
        haproxy_runtime_socket=str(local_haproxy.runtime_socket),
        haproxy_master_socket=str(local_haproxy.master_socket),
    )
    workers = worker_pids(local_haproxy)
    new = CA.issue([HOSTNAME])
    local_haproxy.write_bundle(new)
    ok, text = adapter.reload("graceful")
    assert ok and text == f"Runtime API: {local_haproxy.combined_file()} committed"
    assert adapter.served(HOSTNAME) == facts(new).der  # at once: no new worker to wait for
    assert worker_pids(local_haproxy) == workers  # the same process: nothing was reloaded


def test_haproxy_reloads_through_the_master_without_a_runtime_socket(local_haproxy: LocalHaproxy) -> None:
    adapter = haproxy_adapter(local_haproxy, haproxy_master_socket=str(local_haproxy.master_socket))
    workers = worker_pids(local_haproxy)
    new = CA.issue([HOSTNAME])
    local_haproxy.write_bundle(new)
    ok, text = adapter.reload("graceful")
    assert ok, text
    assert adapter.wait_for(facts(new), 15).ok
    assert worker_pids(local_haproxy) - workers  # a new worker serves it


def test_haproxy_restart_mode_reloads_even_with_a_runtime_socket(local_haproxy: LocalHaproxy) -> None:
    adapter = haproxy_adapter(
        local_haproxy,
        haproxy_runtime_socket=str(local_haproxy.runtime_socket),
        haproxy_master_socket=str(local_haproxy.master_socket),
    )
    new = CA.issue([HOSTNAME])
    local_haproxy.write_bundle(new)
    ok, text = adapter.reload("restart")
    assert ok and "Runtime API" not in text
    assert adapter.wait_for(facts(new), 15).ok


def test_haproxy_without_a_way_to_reload_says_which_host_file_keys(local_haproxy: LocalHaproxy) -> None:
    if os.path.isdir(haproxy.SYSTEMD_RUNNING):
        pytest.skip("systemd runs here: the adapter would reload the haproxy unit")
    ok, text = haproxy_adapter(local_haproxy).reload("graceful")
    assert not ok and "haproxy_runtime_socket" in text and "haproxy_master_socket" in text


def test_haproxy_refusing_the_payload_is_a_failure_with_no_key_and_no_open_transaction(
    local_haproxy: LocalHaproxy,
) -> None:
    adapter = haproxy_adapter(local_haproxy, haproxy_runtime_socket=str(local_haproxy.runtime_socket))
    before = adapter.served(HOSTNAME)
    other = CA.issue([HOSTNAME])
    broken = other.certificate_pem + CA.issue([HOSTNAME]).private_key_pem  # a key of another certificate
    local_haproxy.combined_file().write_text(broken)
    ok, text = adapter.reload("graceful")
    assert not ok and text.startswith("commit ssl cert: inconsistencies between private key and certificate")
    assert "PRIVATE KEY" not in text and "BEGIN" not in text
    assert adapter.served(HOSTNAME) == before
    shown = haproxy.converse(str(local_haproxy.runtime_socket), "show ssl cert\n", adapter._check_peer)
    assert "*" not in shown  # no transaction left open (HAProxy marks one with *)


def test_haproxy_falls_back_to_a_reload_for_a_file_it_does_not_know_by_that_name(
    local_haproxy: LocalHaproxy,
) -> None:
    adapter = haproxy_adapter(
        local_haproxy,
        haproxy_runtime_socket=str(local_haproxy.runtime_socket),
        haproxy_master_socket=str(local_haproxy.master_socket),
    )
    alias = local_haproxy.root / "ssl" / "alias"
    alias.symlink_to(local_haproxy.combined_file().parent)  # the same file, a name HAProxy never loaded
    adapter.files = (str(alias / local_haproxy.combined_file().name),)
    new = CA.issue([HOSTNAME])
    local_haproxy.write_bundle(new)
    ok, text = adapter._push_all()
    assert ok is None and "reloading instead" in text
    assert adapter.reload("graceful")[0]
    assert adapter.wait_for(facts(new), 15).ok


def test_redact_drops_pem_blocks_and_base64_runs() -> None:
    key = CA.issue([HOSTNAME]).private_key_pem
    text = haproxy.redact(f"unable to load {key} and {'QUJD' * 20} end")
    assert "PRIVATE KEY" not in text and "QUJD" not in text and text.endswith(" end")
    assert haproxy.payload_of(b"a\n\nb\r\n\n") == "a\nb"


# The sockets: named by root's host file, and even then never one another user could replace -------


def test_a_socket_another_user_could_replace_is_refused(
    local_haproxy: LocalHaproxy, tmp_path: Path, attacker: LocalUser
) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, attacker.uid, attacker.gid)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(theirs / "admin.sock"))
    listener.listen()
    try:
        with pytest.raises(output.InstallError, match=f"uid {attacker.uid}") as caught:
            haproxy.check_socket(str(theirs / "admin.sock"), os.geteuid())
        assert caught.value.code == output.Exit.REFUSED
        with pytest.raises(output.InstallError, match="may be replaced by another user"):
            haproxy_adapter(local_haproxy, haproxy_runtime_socket=str(theirs / "admin.sock"))  # before any change
        adapter = haproxy_adapter(local_haproxy, haproxy_runtime_socket=str(local_haproxy.runtime_socket))
        adapter.runtime_socket = str(theirs / "admin.sock")  # as if it changed after the run began
        local_haproxy.write_bundle(CA.issue([HOSTNAME]))
        with pytest.raises(output.InstallError, match="may be replaced by another user"):
            adapter.reload("graceful")  # checked again: refused before a byte of the key is sent
        listener.settimeout(0.2)
        with pytest.raises(TimeoutError):
            listener.accept()
    finally:
        listener.close()


def test_a_link_or_a_plain_file_is_not_a_socket(local_haproxy: LocalHaproxy, tmp_path: Path) -> None:
    link = local_haproxy.root / "run" / "link.sock"
    link.symlink_to(local_haproxy.runtime_socket)
    plain = local_haproxy.root / "run" / "plain.sock"
    plain.write_text("")
    for path, message in ((link, "is not a socket"), (plain, "is not a socket"), (tmp_path / "none", "does not exist")):
        with pytest.raises(output.InstallError, match=message):
            haproxy.check_socket(str(path), os.geteuid())
    group_writable = local_haproxy.socket_directory
    group_writable.chmod(group_writable.stat().st_mode | stat.S_IWOTH)
    try:
        with pytest.raises(output.InstallError, match="writable by nobody else"):
            haproxy.check_socket(str(local_haproxy.runtime_socket), os.geteuid())
    finally:
        group_writable.chmod(group_writable.stat().st_mode & ~stat.S_IWOTH)
    haproxy.check_socket(str(local_haproxy.runtime_socket), os.geteuid())


def master_only_adapter(master_socket: Path) -> haproxy.Haproxy:
    """An HAProxy adapter whose host file names only ``master_socket`` (no HAProxy behind it); its
    server binary is this interpreter, whose thread plays the master (the peer check then passes)."""
    binary = os.path.realpath(sys.executable)
    row = haproxy.Haproxy.distros[0]._replace(server=os.path.basename(binary))
    adapter = haproxy.Haproxy(row, None, 443, {"PATH": os.path.dirname(binary)})
    adapter.configure(
        host_file.parse_host_config("/test/installer.json", {"haproxy_master_socket": str(master_socket)}, REGISTRY),
        os.geteuid(),
    )
    return adapter


def test_haproxy_master_socket_refusing_while_the_master_re_executes_is_tried_again(tmp_path: Path) -> None:
    """A master that is re-executing itself (a reload just before) refuses connections for a moment:
    the reload is sent once it listens again, and a socket made anew is checked before it is used.
    The master here is a plain Unix socket that binds at once and listens 0.6 s later (the race is
    not reproducible on demand with the real HAProxy; the real master's reload is tested above)."""
    import threading

    path = tmp_path / "master.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))  # bound, not listening: connect() is refused (ECONNREFUSED)
    received: list[bytes] = []

    def master() -> None:
        listener.listen()
        connection, _ = listener.accept()
        with connection:
            received.append(connection.recv(100))
            connection.sendall(b"Success=1\n")

    later = threading.Timer(0.6, master)
    later.start()
    try:
        ok, text = master_only_adapter(path).reload("restart")
    finally:
        later.join()
        listener.close()
    assert ok and text == "Success=1", text
    assert received == [b"reload\n"]


def test_haproxy_master_socket_that_never_answers_fails_after_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "master.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))  # never listens
    monkeypatch.setattr(haproxy, "MASTER_RETRY_SECONDS", 0.5)
    try:
        ok, text = master_only_adapter(path).reload("restart")
    finally:
        listener.close()
    assert not ok and f"the master socket {path} failed" in text and "refused" in text.lower()
