"""The real Debian apache2, on a loopback port, with its config and files under a temp dir."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from rotation.bundle import CertBundle

MODULES = Path("/usr/lib/apache2/modules")
CONFIG = """\
ServerRoot "{root}"
DefaultRuntimeDir "{root}/run"
PidFile "{root}/run/apache2.pid"
Listen 127.0.0.1:{port}
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule socache_shmcb_module {modules}/mod_socache_shmcb.so
LoadModule ssl_module {modules}/mod_ssl.so
User www-data
Group www-data
ServerName 127.0.0.1
ErrorLog "{root}/error.log"
LogLevel warn
DocumentRoot "{root}/htdocs"
SSLSessionCache "shmcb:{root}/run/ssl_scache(512000)"
MaxRequestWorkers 64
ThreadsPerChild 16
<VirtualHost 127.0.0.1:{port}>
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


@dataclass
class Apache:
    root: Path
    port: int

    @property
    def config(self) -> Path:
        return self.root / "apache2.conf"

    @property
    def cert_file(self) -> Path:
        return self.root / "ssl" / "certs" / "server.pem"

    @property
    def key_file(self) -> Path:
        return self.root / "ssl" / "private" / "server.key"

    @property
    def chain_file(self) -> Path:
        return self.root / "ssl" / "certs" / "chain.pem"

    def write_bundle(self, bundle: CertBundle) -> None:
        for path in (self.cert_file, self.chain_file, self.key_file):
            path.parent.mkdir(parents=True, exist_ok=True)
        self.key_file.parent.chmod(0o700)
        self.cert_file.write_text(bundle.certificate_pem)
        self.chain_file.write_text(bundle.chain_pem)
        self.key_file.touch(mode=0o600)
        self.key_file.write_text(bundle.private_key_pem)

    def start(self) -> None:
        (self.root / "run").mkdir(exist_ok=True)
        (self.root / "htdocs").mkdir(exist_ok=True)
        self.config.write_text(
            CONFIG.format(
                root=self.root,
                port=self.port,
                modules=MODULES,
                cert=self.cert_file,
                key=self.key_file,
                chain=self.chain_file,
            )
        )
        subprocess.run(
            ["apache2", "-f", str(self.config), "-k", "start"],
            check=True,
            capture_output=True,
            text=True,
            env=_apache_env(),
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"apache2 did not listen on {self.port}: {self.error_log()}")

    def stop(self) -> None:
        pid_file = self.root / "run" / "apache2.pid"
        pid = int(pid_file.read_text()) if pid_file.exists() else None
        subprocess.run(
            ["apache2", "-f", str(self.config), "-k", "stop"], capture_output=True, env=_apache_env(), check=False
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


def _apache_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LANG": "C"}


def apache_available() -> str | None:
    """None when the real Apache can run here, else what is missing."""
    if shutil.which("apache2") is None:
        return "apache2 is not installed (apt-get install -y apache2)"
    if not (MODULES / "mod_ssl.so").exists():
        return "mod_ssl is missing"
    return None
