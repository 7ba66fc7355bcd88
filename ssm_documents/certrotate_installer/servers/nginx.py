"""nginx (Debian's and RHEL's ``nginx`` package): ``nginx -t`` for the config test, ``nginx -s
reload`` for the graceful reload (the master re-reads its configuration and certificates, starts
new workers and lets the old ones finish their connections), the served certificate proven by the
base class's TLS check.

nginx reads ``ssl_certificate`` and ``ssl_certificate_key`` from the same file, so it is fed the
combined layout only: one 0600 file holding the certificate, the chain and the key, switched by one
rename. (nginx has no directive for a separate chain file: with three files it would serve the
certificate without its chain.)

``ReloadMode`` ``restart`` is that same reload: nginx's own restart (stop, then start) gives the
listening sockets away between the two, so no mode of this adapter ever stops the master.

``nginx -s reload`` returns once SIGHUP is sent: it does not wait for the master to load the new
files, and a master that cannot load them keeps the old ones (it logs the error). So after it the
adapter waits for the master (found in /proc by its command line) to start new workers and for the
old ones to leave, at most ``SETTLE_SECONDS``: no new worker is a failed reload; after an undo,
nothing serves the certificate just taken away. ``wait_for`` (a TLS handshake until the new
certificate is served) still decides an install. The systemd unit's ExecReload does the same
(``nginx -s reload``), so the installer runs it directly on systemd hosts too.
"""

import os
import time
from typing import Dict, List, Optional, Set, Tuple

from ..distro import DEBIAN_DIRS, RHEL_DIRS, Distro
from ..server_processes import real_uid
from ..tools import find_tool
from .base import Server

# Output of ``nginx -s`` when no master runs: no pid file, an empty one, or a stale pid.
NOT_RUNNING = ('.pid" failed (2:', "invalid PID number", "failed (3: No such process)")
SETTLE_SECONDS = 10.0  # how long a reload waits for the master's new workers (and its old ones to go)
MASTER_TITLE = "nginx: master process "  # how nginx's master shows itself in /proc/PID/cmdline


class Nginx(Server):
    """The config test, reload and served-certificate check of the host's nginx."""

    name = "nginx"
    title = "nginx"
    layouts = ("combined",)
    config_key = "nginx_config"
    client_ca_key = "nginx_client_ca_file"  # ssl_client_certificate
    crl_key = "nginx_crl_file"
    crl_directive = "ssl_crl"
    distros = (
        Distro("debian", "nginx", "nginx", "nginx", *DEBIAN_DIRS),
        Distro("rhel", "nginx", "nginx", "nginx", *RHEL_DIRS),
    )

    def _command(self, *arguments: str) -> List[str]:
        """``nginx [-c MAIN_CONFIG] ARGUMENTS``: the host file's main config when it names one."""
        config = ["-c", self.main_config] if self.main_config else []
        return [find_tool(self.distro.server, self.env), *config, *arguments]

    def config_test(self) -> Tuple[bool, str]:
        return self._test(self._command("-t"))

    def reload(self, mode: str) -> Tuple[bool, str]:
        """``nginx -s reload``, or start nginx when no master runs; ``restart`` is the same reload.

        A stop and a start would let the listening sockets go: between them any local user may
        bind the port (above 1024) and answer with a certificate of their own. The reload keeps
        them (the master re-reads its configuration and every certificate, new workers take the
        same sockets), which is all a certificate change needs.
        """
        before = self._master_and_workers()
        ok, text = self._control(self._command("-s", "reload"))
        if not ok:
            return self._start() if self._not_running(text) else (False, text)
        return self._settle(before, text)

    def _settle(self, before: Optional[Tuple[int, Set[int]]], text: str) -> Tuple[bool, str]:
        """Wait for the master to start new workers, then (briefly) for the old ones to leave."""
        if before is None:
            return True, text  # this master cannot be told apart from another nginx: wait_for decides
        master, old = before
        deadline = time.monotonic() + SETTLE_SECONDS
        while time.monotonic() < deadline:
            now = self._master_and_workers()
            if now is None or now[0] != master:
                return False, f"the nginx master {master} went away during the reload (see its error log)"
            if now[1] - old and not now[1] & old:
                return True, text
            if now[1] - old and time.monotonic() > deadline - SETTLE_SECONDS / 2:
                return True, text  # an old worker still finishes a long request: it takes no new ones
            time.sleep(0.05)
        return False, f"the nginx master {master} started no new workers: it refused the new files (see its error log)"

    def _master_and_workers(self) -> Optional[Tuple[int, Set[int]]]:
        """This nginx's master (its command line names ``main_config``, or no ``-c`` at all, and it
        runs as root or the installer's user) and its workers, from /proc; None unless exactly one
        master matches.

        Any local user can give a process the master's title (it is only argv): such a look-alike
        must neither hide the real master nor pass for it, or a user could fail every install.
        Only a process whose real user is root or the installer's user counts: ``/proc/PID/status``
        gives it (the owner of ``/proc/PID`` would not do: a process that makes itself undumpable
        shows as root's there). Workers are found by their parent, which no user can choose.
        """
        titled: Dict[int, int] = {}  # pid -> parent, of the processes that show as this master
        children: Dict[int, Set[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    command = handle.read(4096).replace(b"\0", b" ").decode("utf-8", "replace")
                with open(f"/proc/{entry}/stat", encoding="utf-8") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(parent, set()).add(int(entry))
            mine = f"-c {self.main_config}" in command if self.main_config else "-c " not in command
            if command.startswith(MASTER_TITLE) and mine and real_uid(int(entry)) in (0, self.euid):
                titled[int(entry)] = parent
        masters = [pid for pid, parent in titled.items() if parent not in titled]  # a new worker shows the title too
        return (masters[0], children.get(masters[0], set())) if len(masters) == 1 else None

    @staticmethod
    def _not_running(text: str) -> bool:
        return any(marker in text for marker in NOT_RUNNING)

    def _start(self) -> Tuple[bool, str]:
        """Start the master (nginx itself retries a busy port five times, half a second apart)."""
        return self._control(self._command())
