"""A real Apache (Debian's apache2) on a loopback port, its config and files under one directory.

Used by ``certrotate demo`` and by the integration tests: a :class:`~rotation.cli.local_harness.LocalServer`
fed three files per host name. One name-based virtual host per host name, each with its own
certificate, key and chain files, so the installer's SNI check applies.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rotation.cli.local_harness import (
    INSTALLER_CONFIG_VARIABLE,
    LocalServer,
    binary_path,
    free_port,
    server_environment,
)

__all__ = ["INSTALLER_CONFIG_VARIABLE", "LocalApache", "apache_available", "free_port"]

MODULES = Path("/usr/lib/apache2/modules")
_MAIN = """\
ServerRoot "{root}"
DefaultRuntimeDir "{root}/run"
PidFile "{root}/run/apache2.pid"
Listen {listen}
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule socache_shmcb_module {modules}/mod_socache_shmcb.so
LoadModule ssl_module {modules}/mod_ssl.so
{user}ServerName 127.0.0.1
ErrorLog "{root}/error.log"
LogLevel warn
DocumentRoot "{root}/htdocs"
SSLSessionCache "shmcb:{root}/run/ssl_scache(512000)"
MaxRequestWorkers 64
ThreadsPerChild 16
"""
_VHOST = """\
<VirtualHost {listen}>
    ServerName {hostname}
    SSLEngine on
    SSLCertificateFile "{cert}"
    SSLCertificateKeyFile "{key}"
    SSLCertificateChainFile "{chain}"
</VirtualHost>
"""


def apache_available() -> str | None:
    """None when the real Apache can run here, else what is missing."""
    if binary_path("apache2") is None:
        return "apache2 is not installed (apt-get install -y apache2)"
    if not (MODULES / "mod_ssl.so").exists():
        return "mod_ssl is missing"
    return None


@dataclass
class LocalApache(LocalServer):
    #: ``ListenCoresBucketsRatio 1``: Apache's listeners join an SO_REUSEPORT group (one per core),
    #: as tuned production servers run; another process of the same user may then share the port.
    reuseport: bool = False
    #: The address Apache listens on (``Listen ADDRESS:PORT``): loopback, or another address of the
    #: host (127.0.0.2 stands for a host's own 10.0.0.5), or ``::1`` for a server on IPv6 only.
    address: str = "127.0.0.1"

    name: ClassVar[str] = "apache"
    binary: ClassVar[str] = "apache2"
    combined: ClassVar[bool] = False
    # A line the config test refuses (appended by tests that need a failing config test).
    invalid_directive: ClassVar[str] = "ThisIsNotADirective on\n"

    @property
    def listen(self) -> str:
        """``ADDRESS:PORT`` as Apache's ``Listen`` takes it (an IPv6 address in brackets)."""
        return f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"

    @property
    def config(self) -> Path:
        return self.root / "apache2.conf"

    def server_parameters(self) -> dict[str, str]:
        """No Server (the host file names none: Apache), the Debian service instead."""
        return {"ServiceName": "apache2"}

    def host_settings(self) -> dict[str, Any]:
        return {"apache_config": str(self.config)}

    def listening_address(self) -> tuple[str, int]:
        return self.address, self.port

    def write_config(self) -> None:
        (self.root / "htdocs").mkdir(exist_ok=True)
        user = "User www-data\nGroup www-data\n" if os.geteuid() == 0 else ""
        text = _MAIN.format(root=self.root, listen=self.listen, modules=MODULES, user=user)
        if self.reuseport:
            text += "ListenCoresBucketsRatio 1\n"
        for hostname in self.hostnames:
            text += _VHOST.format(
                listen=self.listen,
                hostname=hostname,
                cert=self.cert_file(hostname),
                key=self.key_file(hostname),
                chain=self.chain_file(hostname),
            )
        self.config.write_text(text)

    def start_command(self) -> list[str]:
        return ["-f", str(self.config), "-k", "start"]

    def stop(self) -> None:
        """``apache2 -k stop``, then every process of this server awaited (SIGKILL after 10 s).

        ``-k stop`` parses the config before it signals the parent: with a config that no longer
        parses (a test appended ``invalid_directive``) it fails, so the parent gets the SIGTERM
        itself; and a parent SIGKILLed would leave its workers running, so each is killed too.
        """
        master = self.master_pid()
        stopped = subprocess.run(
            [binary_path(self.binary) or "/usr/sbin/apache2", "-f", str(self.config), "-k", "stop"],
            capture_output=True,
            env=server_environment(),
            check=False,
        )
        if stopped.returncode != 0 and master:
            with contextlib.suppress(ProcessLookupError):
                os.kill(master, signal.SIGTERM)
        self.wait_then_kill()
