"""HAProxy (Debian's and RHEL's ``haproxy`` package, 2.2 or later for the Runtime API): ``haproxy -c
-f CONFIG`` for the config test; the new certificate taken in through the Runtime API when the host
file names an admin socket, else a master-worker reload.

Why the Runtime API first: ``set ssl cert FILE <<PAYLOAD`` then ``commit ssl cert FILE`` over a
``stats socket ... level admin`` swaps the certificate inside the running process, for every new
handshake at once, with no reload: no new worker, no old worker left serving, no listener handed
over, no connection dropped. It changes memory only, so the installer swaps the file on disk first
(journaled, one rename of the combined file, as for every server): a later reload, restart or boot
reads the same certificate. The config test (``haproxy -c``) reads the new file from disk before
anything is pushed, and the payload pushed is that file's content, read back through the checked
directory. Rollback and undo restore the file and push its content the same way.

Without a runtime socket (or when HAProxy does not know the file by that name, or ReloadMode is
``restart``) the master reloads: the host file's master socket (``-S``, command ``reload``), else
``systemctl reload haproxy`` (Debian's and RHEL's units run ``-Ws``: SIGUSR2 to the master). A
master that cannot load the new files keeps its old worker; ``wait_for`` decides.

The sockets come only from the root-owned host file (``haproxy_runtime_socket``,
``haproxy_master_socket``), never from a document parameter: a command's sender cannot aim the
installer, and the private key it sends, at a socket of their choice. Each socket, and the
directory it is in, must belong to root, the installer's user or HAProxy's own user (which holds
the key in memory anyway), and be writable by nobody else. That check is of names, and a member of
group haproxy may rename within Debian's /run/haproxy (haproxy:haproxy 2775), e.g. swap their own
socket with ``admin.sock`` (``renameat2`` RENAME_EXCHANGE) between the check and the connect. So
every command (``set ssl cert``, ``commit``, ``abort``, the master's ``reload``) goes over a
connection whose peer is checked first, on that connection (``SO_PEERCRED``, ``peer_problem``):
made by root or HAProxy's user, and, while that process runs, the haproxy binary. A peer that is
not is refused (exit 9) before any byte is sent. The payload holds the private key: it
is never logged, and HAProxy's replies are shown only through ``redact``.
"""

import errno
import os
import pwd
import re
import socket
import stat
import time
from typing import Callable, FrozenSet, List, Optional, Tuple

from ..directories import open_directory, read_regular
from ..distro import DEBIAN_DIRS, RHEL_DIRS, Distro
from ..host_file import HostConfig
from ..output import InstallError, refused
from ..server_processes import executable, peer_credentials, real_uid, trusted_uids
from ..tools import find_tool
from .base import Server

SOCKET_TIMEOUT_SECONDS = 30.0
MASTER_RETRY_SECONDS = 10.0
MAX_REPLY_BYTES = 65536
SERVER_USER = "haproxy"  # the user Debian's and RHEL's packages run HAProxy's workers as
SYSTEMD_RUNNING = "/run/systemd/system"  # exists only when systemd is the running init
_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(-----END [A-Z0-9 ]+-----|$)", re.S)
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/=]{40,}")


def redact(text: str) -> str:
    """Pure: ``text`` without PEM blocks or base64 runs (what a reply could echo of a payload)."""
    return _BASE64_RUN.sub("[redacted]", _PEM.sub("[redacted PEM]", text))


def payload_of(content: bytes) -> str:
    """Pure: the combined file as a Runtime API payload: its PEM lines, no empty line (an empty
    line ends the payload).

    Raises:
        ValueError: the file is not ASCII.
    """
    return "\n".join(line for line in content.decode("ascii").splitlines() if line.strip())


def check_socket(path: str, euid: int) -> None:
    """The host file's socket ``path``: every directory above its own is root's (or the installer's
    user's) and writable by nobody else; its own directory and the socket belong to root, the
    installer's user or HAProxy's user, and are writable by no other user or group.

    Raises:
        InstallError: REFUSED, naming the socket and what is wrong.
    """
    trusted_uids, trusted_gids = {0, euid}, {0}
    try:
        entry = pwd.getpwnam(SERVER_USER)
        trusted_uids.add(entry.pw_uid)
        trusted_gids.add(entry.pw_gid)
    except KeyError:
        pass
    directory, name = os.path.split(path)
    parent_fd = open_directory(os.path.dirname(directory) or "/", euid)
    directory_fd: Optional[int] = None
    try:
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        directory_fd = os.open(os.path.basename(directory), flags, dir_fd=parent_fd)
        where = os.fstat(directory_fd)
        found = os.stat(name, dir_fd=directory_fd, follow_symlinks=False)
    except FileNotFoundError:
        raise refused(f"haproxy socket {path} does not exist (is HAProxy running with this socket?)") from None
    except OSError as exc:
        raise refused(f"haproxy socket {path} cannot be checked: {exc.strerror or exc}") from None
    finally:
        os.close(parent_fd)
        if directory_fd is not None:
            os.close(directory_fd)
    if not stat.S_ISSOCK(found.st_mode):
        raise refused(f"haproxy socket {path} is not a socket (a link, a plain file?)")
    for what, st in ((f"directory {directory}", where), (f"socket {path}", found)):
        group_writes = st.st_mode & 0o020 and st.st_gid not in trusted_gids
        if st.st_uid not in trusted_uids or st.st_mode & 0o002 or group_writes:
            raise refused(
                f"haproxy {what} (uid {st.st_uid}, gid {st.st_gid}, mode {stat.S_IMODE(st.st_mode):o}) may be "
                f"replaced by another user; it must belong to root or {SERVER_USER} and be writable by nobody else"
            )


def await_socket(path: str, euid: int, seconds: float = MASTER_RETRY_SECONDS) -> None:
    """:func:`check_socket`, looking again for a few seconds while the socket does not exist: HAProxy
    makes its sockets anew at each reload, so a run that starts just after one (its own previous
    run's, a rollback's, logrotate's) may come between the old socket and the new one.

    Raises:
        InstallError: REFUSED, at once when the socket is not trusted, after ``seconds`` when it is missing.
    """
    deadline = time.monotonic() + seconds
    while True:
        try:
            check_socket(path, euid)
            return
        except InstallError:
            if os.path.lexists(path) or time.monotonic() >= deadline:
                raise
        time.sleep(0.2)


def peer_problem(pid: int, uid: int, binary: str, uids: FrozenSet[int]) -> Optional[str]:
    """What is wrong with a socket's peer (``SO_PEERCRED``'s pid and uid), None when it is HAProxy's own.

    The uid is the user of the process that called ``listen()``, fixed then: only a process of root
    or HAProxy's user made the socket. The pid, while it runs, must be that binary with such a real
    user. With ``-D`` the process that made the socket has exited (it forked the daemon); its uid
    still says who made it, and no other user's process can have taken that socket over.
    """
    if uid not in uids:
        return f"its peer is a process of uid {uid} (pid {pid}), not HAProxy's user or root"
    if pid > 0 and os.path.exists(f"/proc/{pid}"):
        running = executable(pid)
        if running != binary or real_uid(pid) not in uids:
            return f"its peer (pid {pid}) runs {running or 'an unknown binary'}, not {binary}"
    return None


def converse(path: str, command: str, peer: Callable[[socket.socket], None]) -> str:
    """Send one command (a payload included) to HAProxy's socket ``path``: connect, let ``peer``
    check who answers on that very connection, then send; the whole reply.

    Raises:
        OSError: the socket cannot be reached or does not answer in time.
        InstallError: REFUSED from ``peer``: not one byte of ``command`` was sent.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as channel:
        channel.settimeout(SOCKET_TIMEOUT_SECONDS)
        channel.connect(path)
        peer(channel)
        channel.sendall(command.encode("ascii"))
        channel.shutdown(socket.SHUT_WR)
        reply = b""
        while len(reply) < MAX_REPLY_BYTES:
            chunk = channel.recv(MAX_REPLY_BYTES)
            if not chunk:
                break
            reply += chunk
    return reply.decode("utf-8", "replace")


class Haproxy(Server):
    """The config test, Runtime API swap (or reload) and served-certificate check of the host's HAProxy."""

    name = "haproxy"
    title = "HAProxy"
    layouts = ("combined",)
    config_key = "haproxy_config"
    client_ca_key = "haproxy_ca_file"  # ca-file
    crl_key = "haproxy_crl_file"
    crl_directive = "crl-file on the bind line"
    extra_paths = ("haproxy_runtime_socket", "haproxy_master_socket")
    users = (SERVER_USER,)  # its workers hold the listeners (and, without a master, the sockets)
    distros = (
        Distro("debian", "haproxy", "haproxy", "haproxy", *DEBIAN_DIRS),
        Distro("rhel", "haproxy", "haproxy", "haproxy", *RHEL_DIRS),
    )
    DEFAULT_CONFIG = "/etc/haproxy/haproxy.cfg"  # the same on Debian and RHEL

    runtime_socket: Optional[str] = None  # the host file's haproxy_runtime_socket
    master_socket: Optional[str] = None  # the host file's haproxy_master_socket

    def configure(self, config: HostConfig, euid: int) -> None:
        """The host file's sockets, checked now (before any change) and again when used (HAProxy
        makes them anew at each reload).

        Raises:
            InstallError: REFUSED when a socket is missing or another user could replace it.
        """
        super().configure(config, euid)
        self.runtime_socket, self.master_socket = (config.server_path(key) for key in self.extra_paths)
        for path in (self.runtime_socket, self.master_socket):
            if path:
                await_socket(path, euid)

    def config_test(self) -> Tuple[bool, str]:
        binary = find_tool(self.distro.server, self.env)
        return self._test([binary, "-c", "-f", self.main_config or self.DEFAULT_CONFIG])

    def reload(self, mode: str) -> Tuple[bool, str]:
        """graceful: the Runtime API when the host file names its socket, else a reload; restart:
        a reload (the master re-executes itself and starts a new worker)."""
        if mode == "graceful" and self.runtime_socket and self.files:
            pushed, text = self._push_all()
            if pushed is not None:
                return pushed, text
        return self._reload_master()

    def _push_all(self) -> Tuple[Optional[bool], str]:
        """Push each certificate file through the Runtime API. None: HAProxy does not know a file
        by that name (crt-list, another spelling), so only a reload takes the new one in."""
        said: List[str] = []
        for path in dict.fromkeys(self.files):
            outcome, text = self._push(path)
            said.append(text)
            if outcome is not True:
                return outcome, "; ".join(said)
        return True, "; ".join(said)

    def _push(self, path: str) -> Tuple[Optional[bool], str]:
        assert self.runtime_socket is not None
        check_socket(self.runtime_socket, self.euid)
        directory_fd = open_directory(os.path.dirname(path), self.euid)
        try:
            content = read_regular(directory_fd, os.path.basename(path), path)
        finally:
            os.close(directory_fd)
        if content is None:
            return False, f"{path} is gone"
        try:
            socket_path, peer = self.runtime_socket, self._check_peer
            reply = converse(socket_path, f"set ssl cert {path} <<\n{payload_of(content)}\n\n", peer)
            if "not referenced by the configuration" in reply:
                return None, "HAProxy has no certificate named " + path + "; reloading instead"
            step = "set ssl cert"
            if reply.startswith(("Transaction created", "Transaction updated")):
                step, reply = "commit ssl cert", converse(socket_path, f"commit ssl cert {path}\n", peer)
                if "Success!" in reply:
                    return True, f"Runtime API: {path} committed"
            converse(socket_path, f"abort ssl cert {path}\n", peer)  # no transaction left open
        except (OSError, ValueError) as exc:
            return False, f"the Runtime API at {self.runtime_socket} failed: {type(exc).__name__}"
        return False, f"{step}: " + redact(" ".join(reply.split()))

    def _check_peer(self, channel: socket.socket) -> None:
        """The connected socket's peer is HAProxy's own process (``peer_problem``).

        Raises:
            InstallError: REFUSED, before any byte is sent.
        """
        pid, uid, _ = peer_credentials(channel)
        problem = peer_problem(pid, uid, find_tool(self.distro.server, self.env), trusted_uids(self.euid, self.users))
        if problem is not None:
            raise refused(f"the haproxy socket connected to is not HAProxy's own: {problem}; nothing was sent to it")

    def _reload_master(self) -> Tuple[bool, str]:
        if self.master_socket:
            check_socket(self.master_socket, self.euid)
            # The master stops answering while it re-executes itself (a reload just before, or its
            # own start on a busy host): a refused connection is tried again for a few seconds, and
            # a socket the master makes anew meanwhile is checked again before it is used.
            deadline = time.monotonic() + MASTER_RETRY_SECONDS
            while True:
                try:
                    reply = converse(self.master_socket, "reload\n", self._check_peer)
                    return True, reply.strip() or "master reload sent"
                except OSError as exc:
                    if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT) or time.monotonic() >= deadline:
                        return False, f"the master socket {self.master_socket} failed: {exc.strerror or exc}"
                time.sleep(0.2)
                if os.path.lexists(self.master_socket):
                    check_socket(self.master_socket, self.euid)
        if os.path.isdir(SYSTEMD_RUNNING):
            return self._control([find_tool("systemctl", self.env), "reload", self.distro.service])
        return False, (
            "no way to reload HAProxy: name haproxy_runtime_socket (a stats socket with level admin) or "
            "haproxy_master_socket (-S) in the host file, or run HAProxy under systemd"
        )
