"""The server's own processes, from /proc: the TCP sockets they listen on, and who a socket's peer is.

A process is the server's own when ``/proc/PID/exe`` is the server's binary (the one ``find_tool``
found: root's) and its real user is one the server runs as (root, the installer's user, the
server's own user). No other local user can be such a process: running the binary as themselves
gives their own uid. The served-truth check probes only the addresses such processes listen on (a
local user's listener on another address of the port is never asked), and the HAProxy adapter
sends nothing to a Unix socket whose peer (``SO_PEERCRED``) is not such a process.
"""

import contextlib
import os
import pwd
import socket
import struct
from typing import Dict, FrozenSet, Iterable, List, Optional, Set, Tuple

LISTEN = "0A"  # the ``st`` column of /proc/net/tcp{,6} for a listening socket
PROC_NET = (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6))
DELETED = " (deleted)"  # /proc/PID/exe of a process whose binary was replaced (a package upgrade)


def trusted_uids(euid: int, users: Iterable[str]) -> FrozenSet[int]:
    """root, the installer's user and each of ``users`` that exists on this host."""
    uids = {0, euid}
    for name in users:
        with contextlib.suppress(KeyError):
            uids.add(pwd.getpwnam(name).pw_uid)
    return frozenset(uids)


def kernel_address(text: str, family: int) -> str:
    """Pure: an address of /proc/net/tcp{,6} (hex, each 32-bit word in host order) as text.

    Raises:
        ValueError: not such an address.
    """
    if len(text) != (8 if family == socket.AF_INET else 32):
        raise ValueError(f"not an address of /proc/net: {text!r}")
    host_order = b"".join(struct.pack("=I", int(text[i : i + 8], 16)) for i in range(0, len(text), 8))
    return socket.inet_ntop(family, host_order)


def listening_rows(text: str, family: int, port: int) -> Dict[int, str]:
    """Pure: the listening sockets on ``port`` in one /proc/net/tcp{,6} text, inode -> address."""
    found: Dict[int, str] = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != LISTEN:
            continue
        address, _, hex_port = fields[1].partition(":")
        try:
            if int(hex_port, 16) == port and int(fields[9]):
                found[int(fields[9])] = kernel_address(address, family)
        except ValueError:
            continue
    return found


def probe_address(address: str) -> str:
    """Pure: where to connect to reach a listener on ``address``: a wildcard through loopback, an
    IPv4-mapped IPv6 address as IPv4, any other address as it is."""
    if address == "0.0.0.0":  # noqa: S104 - a listener's address read from the kernel, not a bind
        return "127.0.0.1"
    if address == "::":
        return "::1"
    if address.startswith("::ffff:") and "." in address:
        return address[len("::ffff:") :]
    return address


def real_uid(pid: int) -> Optional[int]:
    """The real user id of process ``pid`` (the ``Uid:`` line of /proc/PID/status); None if gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def executable(pid: int) -> Optional[str]:
    """The binary process ``pid`` runs (``/proc/PID/exe``, without `` (deleted)``); None if unknown."""
    try:
        path = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None
    return path[: -len(DELETED)] if path.endswith(DELETED) else path


def is_server_process(pid: int, binary: str, uids: FrozenSet[int]) -> bool:
    """Whether process ``pid`` runs ``binary`` with a real user of ``uids``."""
    return executable(pid) == binary and real_uid(pid) in uids


def server_pids(binary: str, uids: FrozenSet[int]) -> List[int]:
    """Every running process of ``binary`` with a real user of ``uids``."""
    return [
        int(entry) for entry in os.listdir("/proc") if entry.isdigit() and is_server_process(int(entry), binary, uids)
    ]


def socket_inodes(pid: int) -> Set[int]:
    """The inodes of the sockets process ``pid`` holds (its /proc/PID/fd links ``socket:[N]``)."""
    inodes: Set[int] = set()
    try:
        entries = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for entry in entries:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{entry}")
        except OSError:
            continue
        if target.startswith("socket:[") and target.endswith("]"):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def server_listeners(port: int, binary: str, uids: FrozenSet[int]) -> List[Tuple[str, int]]:
    """The (address, port) pairs to probe: those the server's own processes listen on at ``port``
    (each wildcard through loopback), in a stable order; [] when none does."""
    listening: Dict[int, str] = {}
    for path, family in PROC_NET:
        try:
            with open(path, encoding="ascii") as handle:
                listening.update(listening_rows(handle.read(), family, port))
        except OSError:
            continue
    if not listening:
        return []
    held: Set[int] = set()
    for pid in server_pids(binary, uids):
        held |= socket_inodes(pid) & set(listening)
    return sorted({(probe_address(listening[inode]), port) for inode in held})


def peer_credentials(channel: socket.socket) -> Tuple[int, int, int]:
    """The (pid, uid, gid) of a connected Unix socket's peer (``SO_PEERCRED``): the process that
    made the listening socket, and its user then, as the kernel recorded them."""
    raw = channel.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid
