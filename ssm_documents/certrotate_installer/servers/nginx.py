"""nginx (Debian's and RHEL's ``nginx`` package): ``nginx -t`` for the config test, ``nginx -s
reload`` for the graceful reload (the master re-reads its configuration and certificates, starts
new workers and lets the old ones finish their connections), the served certificate proven by the
base class's TLS check.

nginx reads ``ssl_certificate`` and ``ssl_certificate_key`` from the same file, so it is fed the
combined layout only: one 0600 file holding the certificate, the chain and the key, switched by one
rename. (nginx has no directive for a separate chain file: with three files it would serve the
certificate without its chain.)

``nginx -s reload`` returns once SIGHUP is sent: it does not wait for the master to load the new
files, and a master that cannot load them keeps the old ones (it logs the error). So the reload's
exit status proves little, and ``wait_for`` (a fresh TLS handshake until the new certificate is
served) is what decides. The systemd unit's ExecReload does the same (``nginx -s reload``), so the
installer runs it directly on systemd hosts too.
"""

import time
from typing import List, Tuple

from ..distro import DEBIAN_DIRS, RHEL_DIRS, Distro
from ..tools import find_tool
from .base import Server

# Output of ``nginx -s`` when no master runs: no pid file, an empty one, or a stale pid.
NOT_RUNNING = ('.pid" failed (2:', "invalid PID number", "failed (3: No such process)")
RESTART_SECONDS = 10.0  # how long a restart waits for the stopped master to let go of its ports


class Nginx(Server):
    """The config test, reload and served-certificate check of the host's nginx."""

    name = "nginx"
    title = "nginx"
    layouts = ("combined",)
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
        """graceful: ``nginx -s reload``, or start nginx when no master runs; restart: stop the
        master (``nginx -s stop``) and start a new one."""
        if mode == "restart":
            stopped, text = self._control(self._command("-s", "stop"))
            if not stopped and not self._not_running(text):
                return False, text
            return self._start(RESTART_SECONDS)
        ok, text = self._control(self._command("-s", "reload"))
        if ok or not self._not_running(text):
            return ok, text
        return self._start(0.0)

    @staticmethod
    def _not_running(text: str) -> bool:
        return any(marker in text for marker in NOT_RUNNING)

    def _start(self, patience: float) -> Tuple[bool, str]:
        """Start the master; while a stopped one still holds the ports, try again for ``patience`` s
        (nginx itself retries a busy port five times, half a second apart)."""
        deadline = time.monotonic() + patience
        while True:
            ok, text = self._control(self._command())
            if ok or time.monotonic() >= deadline:
                return ok, text
            time.sleep(0.2)
