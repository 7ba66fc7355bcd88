"""The server's own processes (server_processes.py) and HAProxy's peer check, on this machine's
real /proc and real sockets: the kernel's listening-socket table read back, a Unix socket's peer
credentials, and what the served-truth check and the HAProxy adapter decide from them."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator

import pytest
from certrotate_installer import served_check
from certrotate_installer import server_processes as processes
from certrotate_installer.servers import haproxy

THIS = os.path.realpath(sys.executable)  # the binary of this process (the "server" of these tests)


def test_kernel_addresses_read_back_as_text() -> None:
    assert processes.kernel_address(format(0x0100007F, "08X"), socket.AF_INET) == "127.0.0.1"
    assert processes.kernel_address("00000000000000000000000001000000", socket.AF_INET6) == "::1"
    with pytest.raises(ValueError, match="not an address"):
        processes.kernel_address("0100", socket.AF_INET)


def test_only_listening_rows_of_the_port_count() -> None:
    table = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 0200007F:20FB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1\n"
        "   1: 0100007F:20FB 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 222 1\n"
        "   2: 0100007F:20FC 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 333 1\n"
        "   3: garbage\n"
    )
    assert processes.listening_rows(table, socket.AF_INET, 0x20FB) == {111: "127.0.0.2"}


def test_wildcards_are_probed_through_loopback() -> None:
    assert processes.probe_address("0.0.0.0") == "127.0.0.1"
    assert processes.probe_address("::") == "::1"
    assert processes.probe_address("::ffff:10.0.0.5") == "10.0.0.5"
    assert processes.probe_address("10.0.0.5") == "10.0.0.5"


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A real listening socket of this process on [::1] only (an IPv6-only server)."""
    server = socket.socket(socket.AF_INET6)
    server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    server.bind(("::1", 0))
    server.listen()
    yield server
    server.close()


def test_the_listeners_of_this_process_are_found_in_the_kernels_tables(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    mine = processes.trusted_uids(os.geteuid(), ())
    assert processes.server_listeners(port, THIS, mine) == [("::1", port)]
    assert processes.server_listeners(port, "/usr/sbin/nginx", mine) == []  # not that binary's
    assert processes.server_listeners(port, THIS, frozenset({os.geteuid() + 4242})) == []  # not that user's


def test_the_served_check_says_when_no_listener_of_the_server_was_found() -> None:
    facts = type("Facts", (), {"der": b"x", "serial_hex": "01"})()
    proof = served_check.prove_served(lambda: [], "a.test", facts, 0.2)  # type: ignore[arg-type]
    assert not proof.ok and not proof.listening and set(proof.labels) == {served_check.NO_TLS}
    assert proof.why(8443).endswith("no process of the server's own listens on that port")


def test_a_unix_sockets_peer_is_who_made_the_listener(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "s")
    with socket.socket(socket.AF_UNIX) as server, socket.socket(socket.AF_UNIX) as client:
        server.bind(path)
        server.listen()
        client.connect(path)
        pid, uid, _ = processes.peer_credentials(client)
    assert (pid, uid) == (os.getpid(), os.geteuid())


def test_the_haproxy_peer_must_be_its_binary_and_its_user() -> None:
    uids = frozenset({0, 4242})
    assert haproxy.peer_problem(os.getpid(), os.geteuid(), THIS, frozenset({os.geteuid()})) is None
    wrong_binary = haproxy.peer_problem(os.getpid(), os.geteuid(), "/usr/sbin/haproxy", frozenset({os.geteuid()}))
    assert wrong_binary is not None and "not /usr/sbin/haproxy" in wrong_binary
    other_user = haproxy.peer_problem(os.getpid(), 31337, THIS, uids)
    assert other_user is not None and "uid 31337" in other_user
    # HAProxy started with -D: the process that made the socket has exited; its uid still decides
    gone = max(int(p) for p in os.listdir("/proc") if p.isdigit()) + 100000
    assert haproxy.peer_problem(gone, 0, "/usr/sbin/haproxy", uids) is None
    assert haproxy.peer_problem(gone, 31337, "/usr/sbin/haproxy", uids) is not None
