"""The one design of the demo's real servers: :class:`LocalServer`, a Debian server on a loopback
port with its config, files, host file and state under one directory.

Each server is a subclass (``local_apache.LocalApache``, ``local_servers.LocalNginx`` and
``LocalHaproxy``) named as the installer's adapter it stands for (``servers.REGISTRY``), that adds
only its config file, its start command and what differs in how it stops. The surface the
integration tests, the benchmarks and ``certrotate demo`` use is here: the files the installer
replaces (three, or one combined file: ``combined``), the document parameters that point the
installer at them, the host file it trusts, start and stop.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rotation.issuance.bundle import CertBundle

# The installer's host-file variable (ssm_documents/certrotate_installer/host_file.py HOST_CONFIG_VARIABLE):
# set by whoever runs the installer, never by a document or its sender.
INSTALLER_CONFIG_VARIABLE = "CERTROTATE_INSTALLER_CONFIG"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def binary_path(name: str) -> str | None:
    """Debian's ``name`` binary (``/usr/sbin`` may be off a user's PATH), None when not installed."""
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}",) if os.path.exists(p)), None)


def aws_cli_path() -> str | None:
    """The aws CLI a local host's installer runs: the first on PATH, as a host's agent finds it, else
    the one installed beside this interpreter (``pip install -e '.[demo]'``); None when there is none."""
    beside = Path(sys.executable).with_name("aws")
    return shutil.which("aws") or (str(beside) if beside.exists() else None)


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a process that has not ended (a zombie has ended: its parent reaps it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def server_environment() -> dict[str, str]:
    return {"PATH": f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin", "LANG": "C"}


@dataclass
class LocalServer:
    """A real server on ``port`` serving each of ``hostnames`` (SNI) from files under ``root``."""

    root: Path
    port: int
    hostnames: list[str] = field(default_factory=lambda: ["www.certrotate.test"])

    name: ClassVar[str] = ""  # the installer adapter's name (``servers.REGISTRY``)
    binary: ClassVar[str] = ""  # Debian's binary
    combined: ClassVar[bool] = True  # one 0600 file of certificate, chain and key; else three files
    invalid_directive: ClassVar[str] = ""  # a line the config test refuses (appended by tests)
    note: ClassVar[str] = ""  # how the installer feeds it, when worth saying ("Runtime API")

    @property
    def config(self) -> Path:
        raise NotImplementedError

    def write_config(self) -> None:
        raise NotImplementedError

    def start_command(self) -> list[str]:
        """The arguments of ``binary`` that start the server as a daemon."""
        raise NotImplementedError

    # The files --------------------------------------------------------------------------------

    def combined_file(self, hostname: str | None = None) -> Path:
        return self.root / "ssl" / "private" / f"{hostname or self.hostnames[0]}.pem"

    def cert_file(self, hostname: str | None = None) -> Path:
        return self.root / "ssl" / "certs" / f"{hostname or self.hostnames[0]}.pem"

    def key_file(self, hostname: str | None = None) -> Path:
        return self.root / "ssl" / "private" / f"{hostname or self.hostnames[0]}.key"

    def chain_file(self, hostname: str | None = None) -> Path:
        return self.root / "ssl" / "certs" / f"{hostname or self.hostnames[0]}-chain.pem"

    def live_files(self, hostname: str | None = None) -> list[Path]:
        """The files the installer replaces for ``hostname``: the combined file, or certificate, key, chain."""
        if self.combined:
            return [self.combined_file(hostname)]
        return [self.cert_file(hostname), self.key_file(hostname), self.chain_file(hostname)]

    def association_settings(self) -> dict[str, Any]:
        """The host-file keys that let ``SecretArn`` alone install here (the files and the port): what
        a State Manager association sends, no per-host document parameter."""
        if self.combined:
            files = {"certificate_file": str(self.combined_file())}
        else:
            files = dict(zip(("certificate_file", "key_file", "chain_file"), map(str, self.live_files()), strict=True))
        return {**files, "https_port": self.port}

    def document_parameters(self, hostname: str | None = None) -> dict[str, str]:
        """RunUpdateTLS's parameters that point the installer at this server's files and port."""
        if self.combined:
            files = {"CertificateFile": str(self.combined_file(hostname)), "FileLayout": "combined"}
        else:
            files = dict(
                zip(("CertificateFile", "KeyFile", "ChainFile"), map(str, self.live_files(hostname)), strict=True)
            )
        return {**self.server_parameters(), **files, "HttpsPort": str(self.port)}

    def server_parameters(self) -> dict[str, str]:
        """The document parameters that name the server: ``Server`` (Apache: its ServiceName)."""
        return {"Server": self.name}

    def write_bundle(self, bundle: CertBundle, hostname: str | None = None) -> None:
        """Put the files in place directly (before the server starts; later installs go through the document)."""
        key_pem = bundle.private_key_pem
        if self.combined:
            self._write_private(self.combined_file(hostname), bundle.certificate_pem + bundle.chain_pem + key_pem)
            return
        self.cert_file(hostname).parent.mkdir(parents=True, exist_ok=True)
        self.cert_file(hostname).write_text(bundle.certificate_pem)
        self.chain_file(hostname).write_text(bundle.chain_pem)
        self._write_private(self.key_file(hostname), key_pem)

    @staticmethod
    def _write_private(path: Path, text: str) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)

    # The host file ----------------------------------------------------------------------------

    @property
    def installer_config(self) -> Path:
        return self.root / "installer.json"

    @property
    def state_directory(self) -> Path:
        return self.root / "state"

    def host_settings(self) -> dict[str, Any]:
        """The host file's keys for this server: ``server`` and its config (the adapter's ``config_key``)."""
        return {"server": self.name, f"{self.name}_config": str(self.config)}

    def write_installer_config(self, **extra: Any) -> Path:
        """The host file the installer trusts for this server (owned by whoever runs it): the ``ssl``
        directory allowed, this server's config, a state directory of its own, and the files
        ``write_bundle`` put in place named as the installer's to replace."""
        settings = {
            "allowed_directories": [str(self.root / "ssl")],
            "managed_files": [str(path) for h in self.hostnames for path in self.live_files(h)],
            "state_directory": str(self.state_directory),
            **self.host_settings(),
            **extra,
        }
        self.root.mkdir(parents=True, exist_ok=True)
        self.installer_config.write_text(json.dumps(settings, indent=2) + "\n")
        self.installer_config.chmod(0o644)
        return self.installer_config

    def installer_environment(self) -> dict[str, str]:
        """What the process running the installer for this server sets (never a document parameter)."""
        if not self.installer_config.exists():
            self.write_installer_config()
        return {INSTALLER_CONFIG_VARIABLE: str(self.installer_config)}

    # The process ------------------------------------------------------------------------------

    @property
    def pid_file(self) -> Path:
        return self.root / "run" / f"{self.binary}.pid"

    def _run(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        binary = binary_path(self.binary)
        if binary is None:
            raise RuntimeError(f"{self.binary} is not installed")
        return subprocess.run(  # noqa: S603 - the Debian binary, the test's own arguments
            [binary, *arguments], capture_output=True, text=True, env=server_environment(), check=False, timeout=60
        )

    def listening_address(self) -> tuple[str, int]:
        """Where ``start`` waits for the server to accept connections."""
        return "127.0.0.1", self.port

    def start(self) -> None:
        for directory in ("run", "tmp"):
            (self.root / directory).mkdir(parents=True, exist_ok=True)
        self.write_config()
        started = self._run(*self.start_command())
        if started.returncode != 0:
            raise RuntimeError(f"{self.binary} did not start: {started.stderr.strip() or self.error_log()}")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(self.listening_address(), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.binary} did not listen on {self.port}: {self.error_log()}")

    def pids(self) -> list[int]:
        """Every process of this server: those whose command line names its config (the master,
        Apache's workers) and their descendants (nginx's workers are ``nginx: worker process``)."""
        parents: dict[int, int] = {}
        found: set[int] = set()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                    parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
                    if str(self.config) in (entry / "cmdline").read_bytes().decode(errors="replace"):
                        found.add(int(entry.name))
                except (OSError, ValueError, IndexError):
                    continue
        while grown := {pid for pid, parent in parents.items() if parent in found} - found:
            found |= grown
        return sorted(found)

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
        self.wait_then_kill()

    def wait_then_kill(self) -> None:
        """Wait up to 10 s for every process of this server to end, then SIGKILL what is left."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.pids():
            time.sleep(0.05)
        self.kill()

    def kill(self) -> None:
        """Stop at once (SIGKILL to every process of this server) and wait until none is left: for a
        throwaway server whose clients are gone, where a graceful stop only waits on idle workers.

        Each process is frozen (SIGSTOP) before any is killed, and the tree read again until it
        holds nothing new: a master killed while it started a worker (after a reload) left that
        worker to init, where nothing names the server any more (an nginx worker, once per ~10 suite
        runs). A stopped master forks no more, and its children keep it as their parent."""
        frozen: set[int] = set()
        while fresh := set(self.pids()) - frozen:
            for pid in fresh:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
            frozen |= fresh
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(process_alive(pid) for pid in frozen) and time.monotonic() < deadline:
            time.sleep(0.02)

    def error_log(self) -> str:
        log = self.root / "error.log"
        return log.read_text()[-2000:] if log.exists() else ""
