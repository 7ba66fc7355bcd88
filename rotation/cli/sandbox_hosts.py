"""``certrotate sandbox --hosts N``: local TLS servers as the sandbox's managed nodes, and what a CA rollover needs.

Each node is a real Debian server on a loopback port (Apache when installed, else nginx, else
HAProxy: ``local_apache``, ``local_servers``) serving a placeholder certificate until the first
install, with its own host file: its certificate files and port (so ``SecretArn`` alone installs,
as an association or ``certrotate deploy`` sends it) and the trust bundle :data:`BUNDLE` written to
an application trust file. Each is registered with the emulated Systems Manager
(``rotation.emulation.managed_hosts``) under an instance id, tagged ``certrotate:secret`` =
:data:`SECRET` and ``Name``; its agent runs documents with the aws CLI pointed at the sandbox, so
every install records the host in the SSM inventory that ``hosts`` reads. For a rollover: a second
CA (EC, ``NEW_CA_ARN``), the bundle secret ``certrotate/trust-bundles/<BUNDLE>`` holding the first
CA, and one InstallTrustBundle association over the nodes (:data:`BUNDLE_ASSOCIATION`), which State
Manager runs at once and on its schedule, and the operator starts with StartAssociationsOnce.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rotation.cli.local_apache import apache_available
from rotation.cli.local_harness import LocalServer, aws_cli_path, free_port
from rotation.cli.local_servers import LOCAL_SERVERS, server_available
from rotation.errors import CertRotateError
from rotation.fleet.view import INSTANCE_TAG

#: The secret the nodes serve (their ``certrotate:secret`` tag); the operator creates it.
SECRET = "sandbox/web"
#: The name the nodes serve (SNI) and the secret's common name.
HOSTNAME = "web.example.internal"
#: The trust bundle the nodes install: ``certrotate/trust-bundles/sandbox``, the first CA in it.
BUNDLE = "sandbox"
BUNDLE_ASSOCIATION = "certrotate-sandbox-trust-bundle"
#: The most nodes a sandbox starts (each is a server process on this machine).
MOST_HOSTS = 10
#: The servers a node can be, the first installed one chosen.
PREFERENCE = ("apache", "nginx", "haproxy")


class SandboxHostsError(CertRotateError):
    """The sandbox cannot start managed nodes here (no server installed, no aws CLI)."""


@dataclass(frozen=True)
class SandboxHosts:
    """The nodes started: their instance ids, the server they run, and the rollover's parts."""

    instance_ids: tuple[str, ...]
    server: str
    new_ca: str
    bundle_arn: str
    association_id: str

    def exports(self) -> dict[str, str]:
        return {
            "NEW_CA_ARN": self.new_ca,
            "CERTROTATE_SANDBOX_INSTANCES": ",".join(self.instance_ids),
            "CERTROTATE_SANDBOX_BUNDLE": BUNDLE,
            "CERTROTATE_SANDBOX_BUNDLE_ASSOCIATION": self.association_id,
        }


def instance_id(number: int) -> str:
    """The sandbox's ``number``-th node (1-based): ``i-`` and 17 hex digits, as EC2 gives."""
    return f"i-{number:017x}"


def choose_server(available: Callable[[str], str | None] | None = None) -> str:
    """The first of :data:`PREFERENCE` this machine can run.

    Raises:
        SandboxHostsError: none is installed (each one's reason named).
    """
    check = available or (lambda name: apache_available() if name == "apache" else server_available(name))
    reasons = {name: check(name) for name in PREFERENCE}
    for name in PREFERENCE:
        if reasons[name] is None:
            return name
    missing = "; ".join(f"{name}: {reason}" for name, reason in reasons.items())
    raise SandboxHostsError(f"--hosts: no TLS server a node could run is installed ({missing})")


def aws_cli() -> str:
    """The aws CLI the nodes' agent runs (``local_harness.aws_cli_path``, as the demo's hosts).

    Raises:
        SandboxHostsError: none is installed.
    """
    found = aws_cli_path()
    if not found:
        raise SandboxHostsError("--hosts: the nodes' installer needs the aws CLI: pip install -e '.[demo]'")
    return found


def _host_file(server: LocalServer, bundle_arn: str) -> dict[str, Any]:
    """The host-file keys beyond the server's: its files and port, and the bundle's trust file."""
    trust = {BUNDLE: {"secret": bundle_arn[: -len("-AbCdEf")], "files": [str(trust_file(server))]}}
    return {**server.association_settings(), "trust_bundles": trust}


def trust_file(server: LocalServer) -> Path:
    """The application trust file a node's clients verify with (the bundle goes there)."""
    return server.root / "ssl" / "trust" / f"{BUNDLE}.pem"


@contextlib.contextmanager
def sandbox_hosts(count: int, endpoint: str, region: str, ca_arn: str, state_manager: Any) -> Iterator[SandboxHosts]:
    """``count`` nodes registered with ``state_manager``'s hosts, the second CA, the bundle and its
    association, for the duration; the servers are killed and their directory removed on the way out."""
    import boto3

    from rotation.cli.demo_targets import _placeholder_bundle
    from rotation.emulation.pki import create_ca

    server_name = choose_server()
    cli = aws_cli()
    session: Any = boto3.Session(region_name=region)
    pca = session.client("acm-pca", endpoint_url=endpoint)
    new_ca = create_ca(pca, key="EC", name="certrotate Sandbox EC Root CA")
    old_pem = str(pca.get_certificate_authority_certificate(CertificateAuthorityArn=ca_arn)["Certificate"]) + "\n"
    bundle_arn = str(
        session.client("secretsmanager", endpoint_url=endpoint).create_secret(
            Name=f"certrotate/trust-bundles/{BUNDLE}", SecretString=json.dumps({"TRUST_BUNDLE_PEM": old_pem})
        )["ARN"]
    )
    agent = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "sandbox"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "sandbox"),
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "PATH": f"{Path(cli).parent}:{os.environ.get('PATH', '')}:/usr/sbin:/sbin",
    }
    base = Path(tempfile.mkdtemp(prefix="certrotate-sandbox-hosts-"))
    servers: list[LocalServer] = []
    try:
        ids = []
        for number in range(1, count + 1):
            server = LOCAL_SERVERS[server_name](base / f"host-{number}", free_port(), [HOSTNAME])
            servers.append(server)
            server.write_bundle(_placeholder_bundle(HOSTNAME), HOSTNAME)
            trust_file(server).parent.mkdir(parents=True)  # root made it when it wrote the host file
            server.write_installer_config(**_host_file(server, bundle_arn))
            server.start()
            ids.append(instance_id(number))
            state_manager.hosts.register(
                ids[-1],
                tags={"Name": f"certrotate-sandbox-{number}", INSTANCE_TAG: SECRET},
                environment={**agent, **server.installer_environment()},
                server=server,
            )
        association = session.client("ssm", endpoint_url=endpoint).create_association(
            Name="InstallTrustBundle",
            AssociationName=BUNDLE_ASSOCIATION,
            Targets=[{"Key": "InstanceIds", "Values": ids}],
            Parameters={"BundleArn": [bundle_arn]},
            ScheduleExpression="rate(30 minutes)",
        )["AssociationDescription"]["AssociationId"]
        yield SandboxHosts(tuple(ids), server_name, new_ca, bundle_arn, str(association))
    finally:
        for server in servers:
            with contextlib.suppress(OSError):
                server.kill()
        shutil.rmtree(base, ignore_errors=True)
