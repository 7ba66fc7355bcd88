"""Where ``certrotate demo`` installs: a real local server per host, fed by the RunUpdateTLS document,
or a clearly labelled Python TLS server standing in when none is installed."""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from rich.console import Console

from rotation.cli.local_apache import apache_available, free_port
from rotation.cli.local_harness import aws_cli_path
from rotation.cli.local_servers import LOCAL_SERVERS, LocalServer, server_available
from rotation.cli.tls_server import LocalTlsServer
from rotation.errors import CertRotateError
from rotation.issuance.bundle import CertBundle


@dataclass
class DemoSecret:
    label: str
    certificate_type: str
    arn: str
    hostname: str
    served_serial: str = ""
    bundle: CertBundle | None = None


class Target(Protocol):
    label: str

    def port(self, hostname: str) -> int: ...

    def deliver(self, secret: DemoSecret, bundle: CertBundle) -> None: ...


@dataclass
class ApacheTarget:
    """The real local Apache (or nginx, HAProxy), one per hostname as each would be its own host;
    certificates arrive through RunUpdateTLS run by the local SSM runner. Two hosts install side by
    side, as a fleet does (one server would refuse the second run: one install at a time per host)."""

    servers: dict[str, LocalServer]
    endpoint: str
    aws_cli: str
    label: str = "Apache"

    def port(self, hostname: str) -> int:
        return self.servers[hostname].port

    def deliver(self, secret: DemoSecret, bundle: CertBundle) -> None:
        from rotation.build.ssm_documents import DOCUMENTS, document_path
        from rotation.emulation.ssm_runner import run_document

        server = self.servers[secret.hostname]
        result = run_document(
            document_path(DOCUMENTS[0]),
            {"SecretArn": secret.arn, **server.document_parameters(secret.hostname)},
            env={
                "AWS_ENDPOINT_URL": self.endpoint,
                "PATH": f"{Path(self.aws_cli).parent}:{os.environ['PATH']}",
                **server.installer_environment(),
            },
        )
        if not result.ok:
            lines = result.stderr.strip().splitlines()
            raise CertRotateError(f"RunUpdateTLS failed for {secret.hostname}: {lines[-1] if lines else 'no output'}")


@dataclass
class PythonTarget:
    server: LocalTlsServer
    label: str = "Python TLS server"
    lock: threading.Lock = field(default_factory=threading.Lock)

    def port(self, hostname: str) -> int:
        return self.server.port

    def deliver(self, secret: DemoSecret, bundle: CertBundle) -> None:
        with self.lock:  # one server for every hostname
            self.server.install(secret.hostname, bundle)


def open_target(
    stack: contextlib.ExitStack,
    base: Path,
    hostnames: list[str],
    endpoint: str,
    *,
    use_apache: bool,
    name: str = "apache",
    console: Console,
) -> Target:
    from rotation.build.ssm_documents import REGISTRY  # the installer's adapters: the server's title

    harness, label = LOCAL_SERVERS[name], REGISTRY.adapter(name).title
    described = ", ".join(filter(None, (f"Debian {harness.binary}", harness.note)))
    if not use_apache:
        problem: str | None = "--no-apache given"
    else:
        problem = apache_available() if name == "apache" else server_available(name)
    aws_cli = aws_cli_path() or ""
    if problem is None and not aws_cli:
        problem = "the aws CLI is not installed (pip install awscli)"
    if problem is None:
        servers: dict[str, LocalServer] = {}
        stack.callback(_stop_all, servers)  # at once: the demo is over, nothing of them is left running
        for hostname in hostnames:
            local = harness(base / name / hostname, free_port(), [hostname])
            local.write_bundle(_placeholder_bundle(hostname), hostname)
            local.start()
            servers[hostname] = local
        ports = ", ".join(f"{h} on 127.0.0.1:{local.port}" for h, local in servers.items())
        console.print(
            f"[cyan]local {label} ({described}), one per host: {ports}; certificates are "
            "installed by the RunUpdateTLS document[/cyan]",
            soft_wrap=True,
        )
        return ApacheTarget(servers, endpoint, aws_cli, label)
    server = stack.enter_context(LocalTlsServer(base))
    console.print(
        f"[yellow]no local {label} ({problem}): a Python TLS server on 127.0.0.1:{server.port} stands in[/yellow]",
        soft_wrap=True,
    )
    return PythonTarget(server)


def _stop_all(servers: dict[str, LocalServer]) -> None:
    for server in servers.values():  # no graceful stop: its clients are gone, and it only waits on idle workers
        server.kill()


def _placeholder_bundle(hostname: str) -> CertBundle:
    """A throwaway self-signed certificate so Apache can start before the first install."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, f"placeholder {hostname}")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return CertBundle.with_key(pem, key, pem, "")
