"""A real Apache (Debian's apache2) on a loopback port, its config and files under one directory.

Used by ``certrotate demo`` and by the integration tests. One name-based virtual host per host
name, each with its own certificate, key and chain files, so the installer's SNI check applies.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rotation.issuance.bundle import CertBundle

MODULES = Path("/usr/lib/apache2/modules")
# The installer's host-file variable (ssm_documents/certrotate_installer/host_file.py HOST_CONFIG_VARIABLE):
# set by whoever runs the installer, never by a document or its sender.
INSTALLER_CONFIG_VARIABLE = "CERTROTATE_INSTALLER_CONFIG"
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def apache_available() -> str | None:
    """None when the real Apache can run here, else what is missing."""
    if shutil.which("apache2") is None and not Path("/usr/sbin/apache2").exists():
        return "apache2 is not installed (apt-get install -y apache2)"
    if not (MODULES / "mod_ssl.so").exists():
        return "mod_ssl is missing"
    return None


@dataclass
class LocalApache:
    root: Path
    port: int
    hostnames: list[str] = field(default_factory=lambda: ["www.certrotate.test"])
    #: ``ListenCoresBucketsRatio 1``: Apache's listeners join an SO_REUSEPORT group (one per core),
    #: as tuned production servers run; another process of the same user may then share the port.
    reuseport: bool = False
    #: The address Apache listens on (``Listen ADDRESS:PORT``): loopback, or another address of the
    #: host (127.0.0.2 stands for a host's own 10.0.0.5), or ``::1`` for a server on IPv6 only.
    address: str = "127.0.0.1"

    name: ClassVar[str] = "apache"
    # A line the config test refuses (appended by tests that need a failing config test).
    invalid_directive: ClassVar[str] = "ThisIsNotADirective on\n"

    @property
    def listen(self) -> str:
        """``ADDRESS:PORT`` as Apache's ``Listen`` takes it (an IPv6 address in brackets)."""
        return f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"

    @property
    def config(self) -> Path:
        return self.root / "apache2.conf"

    def live_files(self, hostname: str | None = None) -> list[Path]:
        """The files the installer replaces for ``hostname``: certificate, key, chain."""
        return [self.cert_file(hostname), self.key_file(hostname), self.chain_file(hostname)]

    def cert_file(self, hostname: str | None = None) -> Path:
        return self.root / "ssl" / "certs" / f"{hostname or self.hostnames[0]}.pem"

    def key_file(self, hostname: str | None = None) -> Path:
        return self.root / "ssl" / "private" / f"{hostname or self.hostnames[0]}.key"

    def chain_file(self, hostname: str | None = None) -> Path:
        return self.root / "ssl" / "certs" / f"{hostname or self.hostnames[0]}-chain.pem"

    def document_parameters(self, hostname: str | None = None) -> dict[str, str]:
        """RunUpdateTLS's parameters that point the installer at this Apache's files and port."""
        return {
            "CertificateFile": str(self.cert_file(hostname)),
            "KeyFile": str(self.key_file(hostname)),
            "ChainFile": str(self.chain_file(hostname)),
            "HttpsPort": str(self.port),
            "ServiceName": "apache2",
        }

    @property
    def installer_config(self) -> Path:
        return self.root / "installer.json"

    @property
    def state_directory(self) -> Path:
        return self.root / "state"

    def write_installer_config(self, **extra: Any) -> Path:
        """The host file the installer trusts for this Apache (owned by whoever runs it): the
        ``ssl`` directory allowed, this Apache's main config, a state directory of its own, and
        the files ``write_bundle`` put in place named as the installer's to replace."""
        files = [
            str(path(hostname))
            for hostname in self.hostnames
            for path in (self.cert_file, self.key_file, self.chain_file)
        ]
        settings = {
            "allowed_directories": [str(self.root / "ssl")],
            "managed_files": files,
            "apache_config": str(self.config),
            "state_directory": str(self.state_directory),
            **extra,
        }
        self.root.mkdir(parents=True, exist_ok=True)
        self.installer_config.write_text(json.dumps(settings, indent=2) + "\n")
        self.installer_config.chmod(0o644)
        return self.installer_config

    def installer_environment(self) -> dict[str, str]:
        """What the process running the installer for this Apache sets (never a document parameter)."""
        if not self.installer_config.exists():
            self.write_installer_config()
        return {INSTALLER_CONFIG_VARIABLE: str(self.installer_config)}

    def write_bundle(self, bundle: CertBundle, hostname: str | None = None) -> None:
        """Put files in place directly (before Apache starts; later installs go through the document)."""
        self.cert_file(hostname).parent.mkdir(parents=True, exist_ok=True)
        self.key_file(hostname).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.cert_file(hostname).write_text(bundle.certificate_pem)
        self.chain_file(hostname).write_text(bundle.chain_pem)
        descriptor = os.open(self.key_file(hostname), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(bundle.private_key_pem)

    def start(self) -> None:
        (self.root / "run").mkdir(parents=True, exist_ok=True)
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
        started = subprocess.run(
            [_apache2(), "-f", str(self.config), "-k", "start"],
            capture_output=True,
            text=True,
            env=_environment(),
            check=False,
        )
        if started.returncode != 0:
            raise RuntimeError(f"apache2 did not start: {started.stderr.strip() or self.error_log()}")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.address, self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"apache2 did not listen on {self.port}: {self.error_log()}")

    def stop(self) -> None:
        pid_file = self.root / "run" / "apache2.pid"
        pid = int(pid_file.read_text()) if pid_file.exists() else None
        subprocess.run(
            [_apache2(), "-f", str(self.config), "-k", "stop"], capture_output=True, env=_environment(), check=False
        )
        deadline = time.monotonic() + 10
        while pid and time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        if pid:
            os.kill(pid, signal.SIGKILL)

    def error_log(self) -> str:
        log = self.root / "error.log"
        return log.read_text()[-2000:] if log.exists() else ""


def _apache2() -> str:
    return shutil.which("apache2") or "/usr/sbin/apache2"


def _environment() -> dict[str, str]:
    return {"PATH": f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin", "LANG": "C"}
