"""A mutual-TLS fleet on loopback that a CA rollover moves: Apache, nginx and HAProxy as hosts, the
two roots, the operators' policy and bundle, the rotation function, and the clients shaking hands.

Each server is a host: certrotate installs its leaf (RunUpdateTLS) and its client-CA bundle and the
application trust file its clients read (InstallTrustBundle), through the local SSM runner, the
real installer and the aws CLI against moto's server, each run recording the host's fleet records
in moto's SSM inventory. Leaves come from the rotation function (moto's RotateSecret runs it,
reading the policy parameter at every step) and the emulated Private CA; client certificates from
the same CAs (IssueCertificate, EndEntityCertificate/V1: serverAuth and clientAuth). The operator
runs ``certrotate ca-rollover`` (a subprocess, as typed); after each command every host converges
while one client per server keeps shaking hands (:mod:`tests.support.handshakes`). Used by
``tests/integration/test_ca_rollover_handshakes.py`` and ``bench/ca_rollover_handshakes.py``.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from certrotate_installer.servers import REGISTRY
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import rotation.handler
from rotation.build.ssm_documents import DOCUMENTS_DIR
from rotation.emulation.pki import create_ca
from rotation.emulation.rollover_world import settle
from rotation.emulation.rotation_service import LAMBDA_ARN, rotation_function_in_moto
from rotation.emulation.ssm_inventory import ssm_inventory_in_moto
from rotation.emulation.ssm_runner import CommandResult, run_document
from rotation.issuance.policy_store import PolicySource
from rotation.lifecycle.engine import build_services
from tests.integration.conftest import HOSTNAME, REGION
from tests.integration.test_trust_bundles import MUTUAL_TLS, Mtls, start_mtls
from tests.support import cli
from tests.support.certs import LocalCA
from tests.support.handshakes import ClientIdentity, HandshakeLoad, Tally

END_ENTITY = "arn:aws:acm-pca:::template/EndEntityCertificate/V1"
#: This fleet's own policy parameter (the session's moto server is shared: other tests own the stack's name).
PARAMETER = f"/certrotate-rollover-{uuid.uuid4().hex[:8]}/issuance-policy"


class Fleet:
    """The three hosts, their secrets, the operators' bundle and the two CAs, on moto's server."""

    def __init__(self, endpoint: str, env: dict[str, str], root: Path) -> None:
        self.sm = boto3.client("secretsmanager", region_name=REGION, endpoint_url=endpoint)
        self.pca = boto3.client("acm-pca", region_name=REGION, endpoint_url=endpoint)
        self.env, self.root = env, root
        self.old = create_ca(self.pca, key="RSA", name="certrotate rollover RSA root")
        self.new = create_ca(self.pca, key="EC", name="certrotate rollover EC root")
        tag = uuid.uuid4().hex[:8]
        self.ssm = boto3.client("ssm", region_name=REGION, endpoint_url=endpoint)
        self.endpoint = endpoint
        policy = {  # the operators' issuance policy: this fleet's secrets on the old root only
            "version": 1,
            "rules": [
                {
                    "name": "rollover",
                    "secrets": [f"rollover-{tag}/*"],
                    "ca_arns": [self.old],
                    "dns_names": [HOSTNAME],
                    "max_validity_days": 90,
                }
            ],
        }
        self.ssm.put_parameter(Name=PARAMETER, Value=json.dumps(policy), Type="String", Overwrite=True)
        self.bundle = f"rollover-{tag}"
        self.bundle_arn = str(
            self.sm.create_secret(
                Name=f"certrotate/trust-bundles/{self.bundle}", SecretString=self.bundle_value(self.old)
            )["ARN"]
        )
        self.servers: dict[str, Mtls] = {}
        self.secrets: dict[str, str] = {}
        placeholder = LocalCA(name="image placeholder CA")  # what the image ships before the first install
        for name in MUTUAL_TLS:
            server = start_mtls(name, root / name, placeholder)
            self.servers[name] = server
            spec = {
                "CERTIFICATE_TYPE": "PCA_ISSUED",
                "CA_ARN": self.old,
                "COMMON_NAME": HOSTNAME,
                "KEY_ALGORITHM": "RSA_2048",
                "VALIDITY": "30",
            }
            secret = self.sm.create_secret(Name=f"rollover-{tag}/{name}", SecretString=json.dumps(spec))
            self.secrets[name] = str(secret["ARN"])
            self.trust_file(server).parent.mkdir()  # root made the directory when it wrote the host file
            bundle = {"secret": self.bundle_arn[:-7], "client_ca": True, "files": [str(self.trust_file(server))]}
            key = REGISTRY.adapter(name).client_ca_key
            server.write_installer_config(**{key: str(server.client_ca)}, trust_bundles={self.bundle: bundle})

    @staticmethod
    def trust_file(server: Mtls) -> Path:
        """The application trust file the host's clients verify the server with."""
        return server.root / "ssl" / "trust" / "clients.pem"

    def ca_pem(self, arn: str) -> str:
        return str(self.pca.get_certificate_authority_certificate(CertificateAuthorityArn=arn)["Certificate"]) + "\n"

    def bundle_value(self, *cas: str) -> str:
        return json.dumps({"TRUST_BUNDLE_PEM": "".join(self.ca_pem(ca) for ca in cas)})

    def client(self, ca: str, name: str) -> ClientIdentity:
        """A client certificate from ``ca`` through IssueCertificate, its key kept on the client."""
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .sign(key, hashes.SHA256())
        )
        algorithm: Any = "SHA256WITHRSA" if ca == self.old else "SHA256WITHECDSA"
        issued = self.pca.issue_certificate(
            CertificateAuthorityArn=ca,
            Csr=csr.public_bytes(serialization.Encoding.PEM),
            SigningAlgorithm=algorithm,
            TemplateArn=END_ENTITY,
            Validity={"Value": 2, "Type": "DAYS"},
        )["CertificateArn"]
        pem = self.pca.get_certificate(CertificateAuthorityArn=ca, CertificateArn=issued)["Certificate"]
        directory = self.root / "clients"
        directory.mkdir(exist_ok=True)
        certificate, private = directory / f"{name}.pem", directory / f"{name}.key"
        certificate.write_text(pem + "\n")
        private.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return ClientIdentity(certificate, private)

    def rotate(self, name: str) -> str:
        """Rotate now (the rotation function issues the leaf); returns the new serial."""
        arn = self.secrets[name]
        before = self.current(arn).get("CERTIFICATE_SERIAL")
        self.sm.rotate_secret(SecretId=arn, RotationLambdaARN=LAMBDA_ARN)
        for _ in range(400):
            serial = self.current(arn).get("CERTIFICATE_SERIAL")
            if serial and serial != before:
                return str(serial)
            time.sleep(0.05)
        raise AssertionError(f"the rotation of {arn} did not finish")

    def current(self, arn: str) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.sm.get_secret_value(SecretId=arn)["SecretString"])
        return value

    def install_leaf(self, name: str) -> CommandResult:
        server = self.servers[name]
        return run_document(
            DOCUMENTS_DIR / "RunUpdateTLS.yaml",
            {"SecretArn": self.secrets[name], **server.document_parameters()},
            env={**self.env, **server.installer_environment()},
            timeout=120,
            instance_id=self.instance(name),
            region=REGION,
        )

    def install_bundle(self, name: str) -> CommandResult:
        server = self.servers[name]
        return run_document(
            DOCUMENTS_DIR / "InstallTrustBundle.yaml",
            {"BundleArn": self.bundle_arn, "HttpsPort": str(server.port)},
            env={**self.env, **server.installer_environment()},
            timeout=120,
            instance_id=self.instance(name),
            region=REGION,
        )

    @staticmethod
    def instance(name: str) -> str:
        return f"i-0{uuid.uuid5(uuid.NAMESPACE_URL, name).hex[:16]}"

    def rollover(self, action: str, *arguments: str) -> dict[str, Any]:
        """``certrotate ca-rollover ACTION root-2027`` as the operator runs it; returns its JSON."""
        result = cli.certrotate(
            "ca-rollover",
            action,
            "root-2027",
            *arguments,
            "--policy-parameter",
            PARAMETER,
            "--policy-ttl",
            "0",
            "--output",
            "json",
            endpoint=self.endpoint,
            timeout=300,
        )
        assert result.returncode == 0, (action, result.stdout, result.stderr)
        answer: dict[str, Any] = json.loads(result.stdout)
        return answer

    def converge(self, install: Callable[[str], CommandResult]) -> None:
        """Every host runs the install (the association's run, MaxConcurrency 100%)."""
        with ThreadPoolExecutor(len(self.servers)) as pool:
            results = dict(zip(self.servers, pool.map(install, self.servers), strict=True))
        failed = {name: result.stderr for name, result in results.items() if not result.ok}
        assert not failed, failed

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()


@contextlib.contextmanager
def rotation_function(endpoint: str) -> Iterator[list[BaseException]]:
    """moto's RotateSecret runs the rotation function, which reads the policy parameter on every
    step (a policy TTL of 0, as the command's ``--policy-ttl 0`` says), so a phase's change of the
    policy applies at once; and the hosts' records land in moto's SSM inventory."""

    def client(service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=endpoint)

    services = build_services(
        client("secretsmanager"),
        lambda region: client("acm-pca"),
        lambda region: client("acm"),
        policy=PolicySource(lambda: client("ssm"), PARAMETER, None, ttl_seconds=0),
    )
    before = rotation.handler._services
    rotation.handler._services = services
    try:
        with rotation_function_in_moto() as failures, ssm_inventory_in_moto():
            yield failures
    finally:
        rotation.handler._services = before


@dataclass
class Outcome:
    """The phases the rollover went through and what each client saw in each."""

    phases: list[str]
    loads: list[HandshakeLoad]
    tallies: dict[str, dict[str, Tally]]
    old_client: ClientIdentity
    #: The issuers of the leaves the servers hold at the end of each phase.
    issuers: dict[str, set[str]]


#: What changes on hosts when the rollover enters a phase: the bundles (``add``: the new CA joins;
#: ``retire``: the old CA leaves) or the leaves (``move``: re-issued from the new CA).
CHANGED_IN = {"add": "bundles", "move": "leaves", "retire": "bundles"}


def run_rollover(
    fleet: Fleet, *, rate: float, every_association: bool = True, abort_in: tuple[str, ...] = ()
) -> Outcome:
    """The fleet on the old root, then ``start`` and ``advance`` until done, each client at ``rate``
    handshakes a second throughout; the first time the rollover is in a phase of ``abort_in``, the
    operator runs ``abort`` there instead (and ``advance`` again after). After each command both
    associations run on every host, or (``every_association=False``) only the one whose artefact
    the phase changed (both after an abort)."""
    for name in fleet.servers:  # the fleet before: leaves and bundles from the old root
        fleet.rotate(name)
    fleet.converge(fleet.install_leaf)
    fleet.converge(fleet.install_bundle)
    old_client, new_client = fleet.client(fleet.old, "client-old"), fleet.client(fleet.new, "client-new")
    loads = [
        HandshakeLoad(name, server.port, HOSTNAME, fleet.trust_file(server), old_client, rate=rate)
        for name, server in fleet.servers.items()
    ]
    phases = ["before"]
    aborted: set[str] = set()
    issuers: dict[str, set[str]] = {}
    for load in loads:
        load.start("before")
    try:
        for load in loads:
            load.wait_for(3)
        answer = fleet.rollover("start", "--old-ca", fleet.old, "--new-ca", fleet.new, "--bundle", fleet.bundle)
        after_abort = False
        for _ in range(12):
            phase = answer["rollover"]["phase"]
            label = phase if phase not in phases else f"{phase} again"
            label = f"{phase} (abort)" if after_abort else label
            phases.append(label)
            for load in loads:
                load.enter(label)
                if phase in ("move", "retire", "done"):  # the clients' own certificates move with the leaves
                    load.present(new_client)
            settle()  # the re-issues the command started have finished
            if every_association or after_abort or CHANGED_IN.get(phase) == "bundles":
                fleet.converge(fleet.install_bundle)
            if every_association or after_abort or CHANGED_IN.get(phase) == "leaves":
                fleet.converge(fleet.install_leaf)
            for load in loads:
                load.wait_for(3)
            issuers[label] = {issuer_of(server) for server in fleet.servers.values()}
            if phase == "done":
                break
            after_abort = phase in abort_in and phase not in aborted
            if after_abort:
                aborted.add(phase)
                answer = fleet.rollover("abort")
            else:
                answer = fleet.rollover("advance")
    finally:
        tallies = {load.server: load.stop() for load in loads}
    return Outcome(phases, loads, tallies, old_client, issuers)


def issuer_of(server: Mtls) -> str:
    pem = server.cert_file().read_bytes() if not server.combined else server.combined_file().read_bytes()
    return x509.load_pem_x509_certificate(pem).issuer.rfc4514_string()
