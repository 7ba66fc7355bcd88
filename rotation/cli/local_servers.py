"""A real nginx or HAProxy (Debian's packages) on a loopback port, its config and files under one
directory; and ``LOCAL_SERVERS``, every server the demo can run, by the installer adapter's name.

Like :class:`rotation.cli.local_apache.LocalApache`, each is a
:class:`~rotation.cli.local_harness.LocalServer` (the surface the integration tests, the swap
benchmark and ``certrotate demo`` use). Each serves one combined file per host name (certificate,
chain and key, 0600): the layout the installer requires for both.

nginx runs its master as a daemon with two workers (``nginx -c``, a pid file of its own); HAProxy
runs in master-worker mode (``-W``) with a master socket (reloads, ``-S``) and an admin stats
socket (the Runtime API: ``set ssl cert`` + ``commit ssl cert``), listeners passed across reloads
(``expose-fd listeners``) so a reload drops no connection.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rotation.cli.local_apache import LocalApache
from rotation.cli.local_harness import LocalServer, binary_path, free_port

__all__ = ["LOCAL_SERVERS", "LocalHaproxy", "LocalNginx", "LocalServer", "free_port", "server_available"]

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
    if binary_path(name) is None:
        return f"{name} is not installed (apt-get install -y {name})"
    return None


@dataclass
class LocalNginx(LocalServer):
    name: ClassVar[str] = "nginx"
    binary: ClassVar[str] = "nginx"
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
    binary: ClassVar[str] = "haproxy"
    note: ClassVar[str] = "Runtime API"
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
        sockets = {"haproxy_runtime_socket": str(self.runtime_socket), "haproxy_master_socket": str(self.master_socket)}
        return {**super().host_settings(), **sockets}

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


#: Every server ``certrotate demo --server`` and the benchmarks can run, by the name of the installer
#: adapter it stands for (a subset of ``servers.REGISTRY``'s names: tests/installer/test_registry.py).
LOCAL_SERVERS: dict[str, type[LocalServer]] = {cls.name: cls for cls in (LocalApache, LocalNginx, LocalHaproxy)}
