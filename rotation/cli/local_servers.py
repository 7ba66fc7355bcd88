"""A real nginx or HAProxy (Debian's packages) on a loopback port, its config and files under one directory.

The siblings of :class:`rotation.cli.local_apache.LocalApache`, with the same surface (the
document parameters that point the installer at it, the host file it trusts, start and stop), used
by the integration tests, the swap benchmark and ``certrotate demo``. Each serves one combined file
per host name (certificate, chain and key, 0600): the layout the installer requires for both.

nginx runs its master as a daemon with two workers (``nginx -c``, a pid file of its own); HAProxy
runs in master-worker mode (``-W``) with a master socket (reloads, ``-S``) and an admin stats
socket (the Runtime API: ``set ssl cert`` + ``commit ssl cert``), listeners passed across reloads
(``expose-fd listeners``) so a reload drops no connection.
"""

from __future__ import annotations

import contextlib
import hashlib
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

from rotation.cli.local_apache import INSTALLER_CONFIG_VARIABLE, free_port
from rotation.issuance.bundle import CertBundle

__all__ = ["LocalHaproxy", "LocalNginx", "LocalServer", "free_port", "server_available"]

_NGINX = """\
daemon on;
master_process on;
worker_processes 2;
pid {root}/run/nginx.pid;
error_log {root}/error.log warn;
{user}events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
{servers}}}
"""
_NGINX_SERVER = """\
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name {hostname};
        ssl_certificate {combined};
        ssl_certificate_key {combined};
        location / {{ return 200 "ok\\n"; }}
    }}
"""
_HAPROXY = """\
global
    stats socket {runtime_socket} mode 600 level admin expose-fd listeners
    nbthread 2
{user}
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend tls
    bind 127.0.0.1:{port} ssl {crts}
    http-request return status 200 content-type text/plain string ok
"""


def server_available(name: str) -> str | None:
    """None when Debian's ``name`` (nginx or haproxy) can run here, else what is missing."""
    if _binary(name) is None:
        return f"{name} is not installed (apt-get install -y {name})"
    return None


def _binary(name: str) -> str | None:
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}",) if os.path.exists(p)), None)


def _environment() -> dict[str, str]:
    return {"PATH": f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin", "LANG": "C"}


@dataclass
class LocalServer:
    """What nginx and HAProxy share: one combined file per host name, the host file, the port."""

    root: Path
    port: int
    hostnames: list[str] = field(default_factory=lambda: ["www.certrotate.test"])
    name: ClassVar[str] = ""
    invalid_directive: ClassVar[str] = ""  # a line the config test refuses (appended by tests)

    @property
    def config(self) -> Path:
        raise NotImplementedError

    def combined_file(self, hostname: str | None = None) -> Path:
        return self.root / "ssl" / "private" / f"{hostname or self.hostnames[0]}.pem"

    def live_files(self, hostname: str | None = None) -> list[Path]:
        return [self.combined_file(hostname)]

    def document_parameters(self, hostname: str | None = None) -> dict[str, str]:
        """RunUpdateTLS's parameters that point the installer at this server's file and port."""
        return {
            "Server": self.name,
            "CertificateFile": str(self.combined_file(hostname)),
            "FileLayout": "combined",
            "HttpsPort": str(self.port),
        }

    @property
    def installer_config(self) -> Path:
        return self.root / "installer.json"

    @property
    def state_directory(self) -> Path:
        return self.root / "state"

    def host_settings(self) -> dict[str, Any]:
        return {"server": self.name, f"{self.name}_config": str(self.config)}

    def write_installer_config(self, **extra: Any) -> Path:
        """The host file the installer trusts for this server (owned by whoever runs it)."""
        settings = {
            "allowed_directories": [str(self.root / "ssl")],
            "managed_files": [str(self.combined_file(h)) for h in self.hostnames],
            "state_directory": str(self.state_directory),
            **self.host_settings(),
            **extra,
        }
        self.root.mkdir(parents=True, exist_ok=True)
        self.installer_config.write_text(json.dumps(settings, indent=2) + "\n")
        self.installer_config.chmod(0o644)
        return self.installer_config

    def installer_environment(self) -> dict[str, str]:
        if not self.installer_config.exists():
            self.write_installer_config()
        return {INSTALLER_CONFIG_VARIABLE: str(self.installer_config)}

    def write_bundle(self, bundle: CertBundle, hostname: str | None = None) -> None:
        """Put the combined file in place directly (later installs go through the document)."""
        path = self.combined_file(hostname)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(bundle.certificate_pem + bundle.chain_pem + bundle.private_key_pem)

    @property
    def pid_file(self) -> Path:
        return self.root / "run" / f"{self.name}.pid"

    def _run(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        binary = _binary(self.name)
        if binary is None:
            raise RuntimeError(f"{self.name} is not installed")
        return subprocess.run(  # noqa: S603 - the Debian binary, the test's own arguments
            [binary, *arguments], capture_output=True, text=True, env=_environment(), check=False, timeout=60
        )

    def write_config(self) -> None:
        raise NotImplementedError

    def start_command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        for directory in ("run", "tmp"):
            (self.root / directory).mkdir(parents=True, exist_ok=True)
        self.write_config()
        started = self._run(*self.start_command())
        if started.returncode != 0:
            raise RuntimeError(f"{self.name} did not start: {started.stderr.strip() or self.error_log()}")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not listen on {self.port}: {self.error_log()}")

    def pids(self) -> list[int]:
        """Every process of this server (master and workers), found by its config path."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if str(self.config) in (entry / "cmdline").read_bytes().decode(errors="replace"):
                        found.append(int(entry.name))
                except OSError:
                    continue
        return found

    def master_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        master = self.master_pid()
        if master:
            for pid in [master, *self.pids()]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.pids():
            time.sleep(0.05)
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def error_log(self) -> str:
        log = self.root / "error.log"
        return log.read_text()[-2000:] if log.exists() else ""


@dataclass
class LocalNginx(LocalServer):
    name: ClassVar[str] = "nginx"
    invalid_directive: ClassVar[str] = "certrotate_no_such_directive on;\n"

    @property
    def config(self) -> Path:
        return self.root / "nginx.conf"

    def write_config(self) -> None:
        servers = "".join(
            _NGINX_SERVER.format(port=self.port, hostname=h, combined=self.combined_file(h)) for h in self.hostnames
        )
        user = "user www-data;\n" if os.geteuid() == 0 else ""
        self.config.write_text(_NGINX.format(root=self.root, user=user, servers=servers))

    def start_command(self) -> list[str]:
        return ["-e", str(self.root / "error.log"), "-c", str(self.config)]


@dataclass
class LocalHaproxy(LocalServer):
    name: ClassVar[str] = "haproxy"
    invalid_directive: ClassVar[str] = "    certrotate-no-such-keyword on\n"

    @property
    def config(self) -> Path:
        return self.root / "haproxy.cfg"

    @property
    def socket_directory(self) -> Path:
        """Where the sockets live: a short path of its own (a Unix socket's path has at most 107
        bytes, HAProxy's 97, and a test's directory is longer), 0700 in /run as Debian's
        /run/haproxy (a sticky /tmp above it is refused for sockets), else under the root dir."""
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:16]
        run = Path("/run")
        if os.geteuid() == 0 and run.is_dir() and not run.stat().st_mode & 0o022:
            return run / f"certrotate-haproxy-{digest}"
        return self.root / "run"

    @property
    def runtime_socket(self) -> Path:
        return self.socket_directory / "admin.sock"

    @property
    def master_socket(self) -> Path:
        return self.socket_directory / "master.sock"

    def host_settings(self) -> dict[str, Any]:
        """The config and both sockets: the Runtime API swaps with no reload, the master reloads."""
        return {
            "server": self.name,
            "haproxy_config": str(self.config),
            "haproxy_runtime_socket": str(self.runtime_socket),
            "haproxy_master_socket": str(self.master_socket),
        }

    def write_config(self) -> None:
        crts = " ".join(f"crt {self.combined_file(h)}" for h in self.hostnames)
        user = "    user haproxy\n    group haproxy\n" if os.geteuid() == 0 else ""
        self.socket_directory.mkdir(mode=0o700, exist_ok=True)
        self.socket_directory.chmod(0o700)
        text = _HAPROXY.format(runtime_socket=self.runtime_socket, port=self.port, crts=crts, user=user)
        self.config.write_text(text)

    def start(self) -> None:
        """Start, then wait for the master socket too (the master makes it after the worker listens)."""
        super().start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.socket(socket.AF_UNIX) as probe:
                    probe.connect(str(self.master_socket))
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"haproxy's master socket {self.master_socket} does not answer")

    def start_command(self) -> list[str]:
        return ["-W", "-D", "-f", str(self.config), "-p", str(self.pid_file), "-S", f"{self.master_socket},mode,600"]

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.socket_directory, ignore_errors=True)

    def error_log(self) -> str:
        checked = self._run("-c", "-f", str(self.config))
        return (checked.stdout + checked.stderr)[-2000:]
