"""Issue 27's proof: a CA rollover (RSA root to EC root) across Apache, nginx and HAProxy doing mutual
TLS, judged by what clients see: 0 failed handshakes in every phase.

Each server is a host: certrotate installs its leaf (RunUpdateTLS) and its client-CA bundle and the
application trust file its clients read (InstallTrustBundle), through the local SSM runner, the
real installer and the aws CLI against moto's server. Leaves come from the rotation function
(moto's RotateSecret runs it) and the emulated Private CA; client certificates from the same CAs
(IssueCertificate, EndEntityCertificate/V1: serverAuth and clientAuth). One client per server
shakes hands continuously (:mod:`tests.support.handshakes`): it verifies the server with the
host's trust file as it is at that moment and presents its own client certificate.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import rotation.handler
from rotation.build.ssm_documents import DOCUMENTS_DIR
from rotation.emulation.pki import create_ca
from rotation.emulation.rotation_service import LAMBDA_ARN, rotation_function_in_moto
from rotation.emulation.ssm_inventory import ssm_inventory_in_moto
from rotation.emulation.ssm_runner import CommandResult, run_document
from tests.integration.conftest import HOSTNAME, REGION
from tests.integration.test_trust_bundles import MUTUAL_TLS, Mtls, start_mtls
from tests.support.certs import LocalCA
from tests.support.handshakes import ClientIdentity, HandshakeLoad, table

END_ENTITY = "arn:aws:acm-pca:::template/EndEntityCertificate/V1"
PHASES = ["before", "add", "prove", "move", "retire", "after"]


class Fleet:
    """The three hosts, their secrets, the operators' bundle and the two CAs, on moto's server."""

    def __init__(self, endpoint: str, env: dict[str, str], root: Path) -> None:
        self.sm = boto3.client("secretsmanager", region_name=REGION, endpoint_url=endpoint)
        self.pca = boto3.client("acm-pca", region_name=REGION, endpoint_url=endpoint)
        self.env, self.root = env, root
        self.old = create_ca(self.pca, key="RSA", name="certrotate rollover RSA root")
        self.new = create_ca(self.pca, key="EC", name="certrotate rollover EC root")
        tag = uuid.uuid4().hex[:8]
        self.bundle_arn = str(
            self.sm.create_secret(
                Name=f"certrotate/trust-bundles/rollover-{tag}", SecretString=self.bundle_value(self.old)
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
            }
            secret = self.sm.create_secret(Name=f"rollover-{tag}/{name}", SecretString=json.dumps(spec))
            self.secrets[name] = str(secret["ARN"])
            self.trust_file(server).parent.mkdir()  # root made the directory when it wrote the host file
            bundle = {"secret": self.bundle_arn[:-7], "client_ca": True, "files": [str(self.trust_file(server))]}
            from certrotate_installer.servers import REGISTRY

            key = REGISTRY.adapter(name).client_ca_key
            server.write_installer_config(
                **{key: str(server.client_ca)}, trust_bundles={self.bundle_arn.split("trust-bundles/")[1][:-7]: bundle}
            )

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
        algorithm = "SHA256WITHRSA" if ca == self.old else "SHA256WITHECDSA"
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
            import time

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
        )

    def install_bundle(self, name: str) -> CommandResult:
        server = self.servers[name]
        return run_document(
            DOCUMENTS_DIR / "InstallTrustBundle.yaml",
            {"BundleArn": self.bundle_arn, "HttpsPort": str(server.port)},
            env={**self.env, **server.installer_environment()},
            timeout=120,
            instance_id=f"i-0{uuid.uuid5(uuid.NAMESPACE_URL, name).hex[:16]}",
            region=REGION,
        )

    def converge(self, install: Callable[[str], CommandResult]) -> None:
        """Every host runs the install, one after another (MaxConcurrency 1)."""
        for name in self.servers:
            result = install(name)
            assert result.ok, (name, result.stderr)

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()


@pytest.fixture
def fleet(moto_endpoint: str, host_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    rotation.handler.reset()
    with rotation_function_in_moto() as failures, ssm_inventory_in_moto():
        fleet = Fleet(moto_endpoint, host_env, tmp_path)
        try:
            yield fleet
        finally:
            fleet.stop()
    rotation.handler.reset()
    assert failures == []


def issuer_of(server: Mtls) -> str:
    pem = server.cert_file().read_bytes() if not server.combined else server.combined_file().read_bytes()
    return x509.load_pem_x509_certificate(pem).issuer.rfc4514_string()


@pytest.mark.slow
def test_an_rsa_to_ec_root_rollover_fails_no_handshake_on_apache_nginx_and_haproxy(fleet: Fleet) -> None:
    for name in fleet.servers:  # the fleet before: leaves and bundles from the old (RSA) root
        fleet.rotate(name)
    fleet.converge(fleet.install_leaf)
    fleet.converge(fleet.install_bundle)
    old_client, new_client = fleet.client(fleet.old, "client-old"), fleet.client(fleet.new, "client-new")
    loads = [
        HandshakeLoad(name, server.port, HOSTNAME, fleet.trust_file(server), old_client)
        for name, server in fleet.servers.items()
    ]
    for load in loads:
        load.start("before")
    try:
        for load in loads:
            load.enter("add")
        fleet.sm.put_secret_value(SecretId=fleet.bundle_arn, SecretString=fleet.bundle_value(fleet.old, fleet.new))
        fleet.converge(fleet.install_bundle)

        for load in loads:
            load.enter("prove")
        # every host reports the bundle with both roots (its trust record)

        for load in loads:
            load.enter("move")
        # the leaves move: re-issued from the new root, installed; the clients' own certificates move too
        for name in fleet.servers:
            spec = fleet.current(fleet.secrets[name])
            fleet.sm.put_secret_value(SecretId=fleet.secrets[name], SecretString=json.dumps({**spec, "CA_ARN": fleet.new}))
            fleet.rotate(name)
        fleet.converge(fleet.install_leaf)
        for load in loads:
            load.present(new_client)

        for load in loads:
            load.enter("retire")
        fleet.sm.put_secret_value(SecretId=fleet.bundle_arn, SecretString=fleet.bundle_value(fleet.new))
        fleet.converge(fleet.install_bundle)
        for load in loads:
            load.enter("after")
    finally:
        tallies = {load.server: load.stop() for load in loads}
    print(table(loads, PHASES))

    assert {server: {phase: t.failed for phase, t in phases.items()} for server, phases in tallies.items()} == {
        server: dict.fromkeys(PHASES, 0) for server in fleet.servers
    }, {server: {p: dict(t.reasons) for p, t in phases.items() if t.reasons} for server, phases in tallies.items()}
    assert all(t.ok > 0 for phases in tallies.values() for p, t in phases.items() if p not in ("prove", "after"))
    for load in loads:  # the clients can tell: an old-root client certificate is now refused
        assert load.handshake(old_client) != ""
    for server in fleet.servers.values():
        assert "EC root" in issuer_of(server)
        assert fleet.trust_file(server).read_text() == fleet.ca_pem(fleet.new)
