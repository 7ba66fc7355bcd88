"""Issue 27 item 1: trust bundles installed by InstallTrustBundle on a real Apache doing mutual TLS.

The document runs through the local SSM runner (parameters checked as SSM does), the installer reads
the bundle from moto's server with the aws CLI and records it in moto's SSM inventory
(rotation.emulation.ssm_inventory). Acceptance is a real TLS handshake presenting a client
certificate, then an HTTP request: Apache answers only a client its SSLCACertificateFile trusts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import socket
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import boto3
import pytest
from certrotate_installer.servers import REGISTRY
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from rotation.build.ssm_documents import DOCUMENTS_DIR
from rotation.cli.local_apache import LocalApache, apache_available, free_port
from rotation.cli.local_servers import LocalHaproxy, LocalNginx, server_available
from rotation.emulation.ssm_inventory import ssm_inventory_in_moto
from rotation.emulation.ssm_runner import CommandResult, DocumentParameterError, run_document
from rotation.fleet.trust_view import bundle_fingerprint
from tests.integration.conftest import HOSTNAME, REGION, require
from tests.support.certs import LocalCA

INSTANCE = "i-0a1b2c3d4e5f60718"
TRUST_TYPE = "Custom:CertrotateTrustBundle"


@dataclass
class MutualTlsApache(LocalApache):
    """The local Apache asking every client for a certificate from the CAs of ``client_ca.pem``."""

    name: ClassVar[str] = "apache"

    @property
    def client_ca(self) -> Path:
        return self.root / "ssl" / "client-ca.pem"

    def write_config(self) -> None:
        super().write_config()
        with self.config.open("a") as config:
            config.write(f'SSLCACertificateFile "{self.client_ca}"\nSSLVerifyClient require\nSSLVerifyDepth 2\n')


class MutualTlsNginx(LocalNginx):
    """The local nginx asking every client for a certificate (``ssl_client_certificate``)."""

    @property
    def client_ca(self) -> Path:
        return self.root / "ssl" / "client-ca.pem"

    def write_config(self) -> None:
        super().write_config()
        verify = f"        ssl_client_certificate {self.client_ca};\n        ssl_verify_client on;\n"
        self.config.write_text(self.config.read_text().replace("        location / ", verify + "        location / "))


class MutualTlsHaproxy(LocalHaproxy):
    """The local HAProxy asking every client for a certificate (``ca-file ... verify required``)."""

    @property
    def client_ca(self) -> Path:
        return self.root / "ssl" / "client-ca.pem"

    def write_config(self) -> None:
        super().write_config()
        text = re.sub(
            r"(?m)^(    bind .* ssl .*)$", rf"\1 ca-file {self.client_ca} verify required", self.config.read_text()
        )
        self.config.write_text(text)


MUTUAL_TLS: dict[str, type[MutualTlsApache | MutualTlsNginx | MutualTlsHaproxy]] = {
    "apache": MutualTlsApache,
    "nginx": MutualTlsNginx,
    "haproxy": MutualTlsHaproxy,
}
Mtls = MutualTlsApache | MutualTlsNginx | MutualTlsHaproxy


def pem_of(ca: LocalCA) -> str:
    return ca.certificate.public_bytes(serialization.Encoding.PEM).decode()


def client_of(ca: LocalCA, directory: Path, name: str) -> tuple[Path, Path]:
    """A client certificate (clientAuth) and its key from ``ca``, written to ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def accepted(server: Mtls, client: tuple[Path, Path]) -> bool:
    """Whether the server answers an HTTP request over a handshake presenting ``client``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(str(client[0]), str(client[1]))
    try:
        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=HOSTNAME) as tls,
        ):
            tls.sendall(f"GET / HTTP/1.1\r\nHost: {HOSTNAME}\r\nConnection: close\r\n\r\n".encode())
            answer = tls.recv(16)
            # Apache and HAProxy end the handshake of a client whose CA they do not trust; nginx
            # finishes it and answers 400 ("The SSL certificate error").
            return answer.startswith(b"HTTP/1.1 ") and not answer.startswith(b"HTTP/1.1 400")
    except (OSError, ssl.SSLError):
        return False


@pytest.fixture
def cas() -> dict[str, LocalCA]:
    return {name: LocalCA(name=f"certrotate {name} client CA") for name in ("old", "a", "b")}


def start_mtls(name: str, root: Path, old: LocalCA) -> Mtls:
    require(apache_available() if name == "apache" else server_available(name))
    server = MUTUAL_TLS[name](root, free_port())
    server.write_bundle(LocalCA(name="server CA").issue([HOSTNAME]))
    server.client_ca.parent.mkdir(parents=True, exist_ok=True)
    server.client_ca.write_text(pem_of(old))
    server.start()
    return server


@pytest.fixture
def mtls(tmp_path: Path, cas: dict[str, LocalCA]) -> Iterator[MutualTlsApache]:
    server = start_mtls("apache", tmp_path / "apache", cas["old"])
    assert isinstance(server, MutualTlsApache)
    yield server
    server.stop()


@pytest.fixture(params=list(MUTUAL_TLS))
def any_mtls(request: pytest.FixtureRequest, tmp_path: Path, cas: dict[str, LocalCA]) -> Iterator[Mtls]:
    server = start_mtls(request.param, tmp_path / request.param, cas["old"])
    yield server
    server.stop()


@pytest.fixture
def sm(moto_endpoint: str) -> Any:
    return boto3.client("secretsmanager", region_name=REGION, endpoint_url=moto_endpoint)


@pytest.fixture
def ssm(moto_endpoint: str) -> Iterator[Any]:
    with ssm_inventory_in_moto():
        yield boto3.client("ssm", region_name=REGION, endpoint_url=moto_endpoint)


def put_bundle(sm: Any, pem: str) -> str:
    """The operators' bundle secret (the central template's TrustBundleSecret), a fresh name on the
    session's moto server; returns its ARN."""
    value = json.dumps({"TRUST_BUNDLE_PEM": pem})
    name = f"partners-{uuid.uuid4().hex[:8]}"
    return str(sm.create_secret(Name=f"certrotate/trust-bundles/{name}", SecretString=value)["ARN"])


def host_file(server: Mtls, arn: str, **entry: Any) -> None:
    """The host file: this bundle goes to the server's client-CA file, the key its adapter owns (and
    what ``entry`` adds)."""
    bundle = {"secret": arn[:-7], "client_ca": True, **entry}
    name = arn.split("trust-bundles/")[1][:-7]
    key = REGISTRY.adapter(server.name).client_ca_key
    server.write_installer_config(**{key: str(server.client_ca)}, trust_bundles={name: bundle})


def install(server: Mtls, env: dict[str, str], arn: str, **parameters: str) -> CommandResult:
    return run_document(
        DOCUMENTS_DIR / "InstallTrustBundle.yaml",
        {"BundleArn": arn, "HttpsPort": str(server.port), **parameters},
        env={**env, **server.installer_environment()},
        timeout=120,
        instance_id=INSTANCE,
        region=REGION,
    )


def exit_code(result: CommandResult) -> int:
    return result.steps[0].exit_code


@pytest.mark.slow
def test_a_bundle_of_two_cas_is_installed_and_a_client_of_each_is_accepted_after_the_reload(
    any_mtls: Mtls, cas: dict[str, LocalCA], sm: Any, ssm: Any, host_env: dict[str, str], tmp_path: Path
) -> None:
    clients = {name: client_of(ca, tmp_path, f"client-{name}") for name, ca in cas.items()}
    assert (
        accepted(any_mtls, clients["old"])
        and not accepted(any_mtls, clients["a"])
        and not accepted(any_mtls, clients["b"])
    )
    arn = put_bundle(sm, pem_of(cas["a"]) + pem_of(cas["b"]))
    host_file(any_mtls, arn)

    result = install(any_mtls, host_env, arn)

    assert result.ok, result.stderr
    assert "2/2 CA names" in result.stdout
    assert accepted(any_mtls, clients["a"]) and accepted(any_mtls, clients["b"])
    assert not accepted(any_mtls, clients["old"])  # the old CA left with the old bundle
    installed = any_mtls.client_ca.read_bytes()
    assert installed == (pem_of(cas["a"]) + pem_of(cas["b"])).encode()
    assert Path(str(any_mtls.client_ca) + ".certrotate-previous").read_text() == pem_of(cas["old"])
    (record,) = ssm.list_inventory_entries(InstanceId=INSTANCE, TypeName=TRUST_TYPE)["Entries"]
    assert (
        record["BundleName"].startswith("partners-") and record["Status"] == "installed" and record["BundleArn"] == arn
    )
    assert record["FingerprintSha256"] == hashlib.sha256(installed).hexdigest()
    assert record["FingerprintSha256"] == bundle_fingerprint(pem_of(cas["a"]) + pem_of(cas["b"]))  # the operator's

    again = install(any_mtls, host_env, arn)  # the same bundle: nothing to change, recorded as such
    assert again.ok and "nothing changed" in again.stdout
    (record,) = ssm.list_inventory_entries(InstanceId=INSTANCE, TypeName=TRUST_TYPE)["Entries"]
    assert record["Status"] == "unchanged" and record["FingerprintSha256"] == hashlib.sha256(installed).hexdigest()


@pytest.mark.slow
def test_a_non_ca_certificate_in_the_bundle_is_refused_and_nothing_changes(
    mtls: MutualTlsApache, cas: dict[str, LocalCA], sm: Any, ssm: Any, host_env: dict[str, str], tmp_path: Path
) -> None:
    leaf = cas["b"].issue(["not-a-ca.example"]).certificate_pem
    arn = put_bundle(sm, pem_of(cas["a"]) + leaf)
    host_file(mtls, arn)
    before = mtls.client_ca.read_bytes()

    result = install(mtls, host_env, arn)

    assert exit_code(result) == 4  # BUNDLE_INVALID
    assert "certificate 2 (CN=not-a-ca.example) is not a CA certificate" in result.stderr
    assert "BEGIN" not in result.stderr + result.stdout
    assert mtls.client_ca.read_bytes() == before
    assert not Path(str(mtls.client_ca) + ".certrotate-new").exists()
    assert accepted(mtls, client_of(cas["old"], tmp_path, "client-old"))
    (record,) = ssm.list_inventory_entries(InstanceId=INSTANCE, TypeName=TRUST_TYPE)["Entries"]
    assert record["Status"] == "failed" and record["ExitCode"] == "4" and record["FingerprintSha256"] == ""


@pytest.mark.slow
def test_a_failed_config_test_rolls_the_previous_bundle_back(
    mtls: MutualTlsApache, cas: dict[str, LocalCA], sm: Any, ssm: Any, host_env: dict[str, str], tmp_path: Path
) -> None:
    arn = put_bundle(sm, pem_of(cas["a"]))
    host_file(mtls, arn)
    before = mtls.client_ca.read_bytes()
    with mtls.config.open("a") as config:  # the next config test fails, whatever the bundle
        config.write(MutualTlsApache.invalid_directive)

    result = install(mtls, host_env, arn)

    assert exit_code(result) == 5  # CONFIG_TEST_FAILED
    assert "the previous certificate files are restored" in result.stderr
    assert mtls.client_ca.read_bytes() == before
    (record,) = ssm.list_inventory_entries(InstanceId=INSTANCE, TypeName=TRUST_TYPE)["Entries"]
    assert record["Status"] == "failed" and record["ExitCode"] == "5"
    assert accepted(mtls, client_of(cas["old"], tmp_path, "client-old"))
    assert not accepted(mtls, client_of(cas["a"], tmp_path, "client-a"))


@pytest.mark.slow
@pytest.mark.usefixtures("ssm")  # the run is recorded (PutInventory), as on an instance
def test_a_server_that_does_not_ask_for_the_new_cas_rolls_the_bundle_back(
    mtls: MutualTlsApache, cas: dict[str, LocalCA], sm: Any, host_env: dict[str, str], tmp_path: Path
) -> None:
    """The served-truth check for trust: a server whose CertificateRequest names other CAs than the
    bundle's (here an SSLCADNRequestFile naming the old CA) fails the run, and the old bundle is back."""
    arn = put_bundle(sm, pem_of(cas["a"]))
    host_file(mtls, arn)
    pinned = mtls.root / "ssl" / "dn-request.pem"
    pinned.write_text(pem_of(cas["old"]))
    mtls.stop()
    mtls.start()
    with mtls.config.open("a") as config:
        config.write(f'SSLCADNRequestFile "{pinned}"\n')
    before = mtls.client_ca.read_bytes()

    result = install(mtls, host_env, arn)

    assert exit_code(result) == 6, result.stderr  # RELOAD_FAILED
    assert "does not ask client certificates of the bundle's CAs: 0/1 CA names" in result.stderr
    assert mtls.client_ca.read_bytes() == before


@pytest.mark.usefixtures("ssm")  # the run is recorded (PutInventory), as on an instance
def test_a_command_sender_cannot_choose_a_bundle_file_or_another_accounts_bundle(
    mtls: MutualTlsApache, cas: dict[str, LocalCA], sm: Any, host_env: dict[str, str]
) -> None:
    """The attacker sends the document: a BundleFile the host file does not name (a system trust
    directory, or the server's certificate file) is refused, as is a same-named bundle from an account
    the host file does not name; nothing is written."""
    arn = put_bundle(sm, pem_of(cas["a"]))
    host_file(mtls, arn)
    before = mtls.client_ca.read_bytes()
    for path in ("/etc/ssl/certs/evil.pem", str(mtls.cert_file())):
        result = install(mtls, host_env, arn, BundleFile=path)
        assert exit_code(result) == 2, result.stderr
        assert f"parameter BundleFile {path!r} is not a destination of bundle 'partners-" in result.stderr
    foreign = arn.replace(":123456789012:", ":999999999999:")
    result = install(mtls, host_env, foreign)
    assert exit_code(result) == 2
    assert "is not the secret the host file" in result.stderr
    certificate = put_secret_arn(sm)
    with pytest.raises(DocumentParameterError, match="parameter BundleArn value"):  # no bundle: SSM refuses it
        install(mtls, host_env, certificate)
    assert mtls.client_ca.read_bytes() == before
    assert not Path("/etc/ssl/certs/evil.pem").exists()


def put_secret_arn(sm: Any) -> str:
    return str(sm.create_secret(Name=f"certs/{uuid.uuid4()}", SecretString="{}")["ARN"])


@pytest.mark.usefixtures("ssm")  # the run is recorded (PutInventory), as on an instance
def test_an_application_trust_file_in_a_system_trust_directory_is_refused_unless_named_there(
    mtls: MutualTlsApache, cas: dict[str, LocalCA], sm: Any, host_env: dict[str, str]
) -> None:
    arn = put_bundle(sm, pem_of(cas["a"]))
    host_file(mtls, arn, client_ca=False, files=["/etc/ssl/certs/partners.pem"])

    result = install(mtls, host_env, arn)

    assert exit_code(result) == 2
    assert "/etc/ssl/certs/partners.pem is in /etc/ssl/certs" in result.stderr
    assert "names the file in the bundle's system_trust_files" in result.stderr
    assert not Path("/etc/ssl/certs/partners.pem").exists()


@pytest.mark.slow
@pytest.mark.usefixtures("ssm")  # the run is recorded (PutInventory), as on an instance
def test_a_run_killed_after_the_reload_is_undone_by_the_next_run_from_its_journal(
    mtls: MutualTlsApache, cas: dict[str, LocalCA], sm: Any, host_env: dict[str, str], tmp_path: Path
) -> None:
    """SIGKILL after the reload (the host file's test fault): the next run restores the old bundle
    from the journal, reloads, then installs the bundle again and proves it."""
    arn = put_bundle(sm, pem_of(cas["a"]))
    host_file(mtls, arn)
    settings = json.loads(mtls.installer_config.read_text())
    mtls.write_installer_config(**{**settings, "test_fault": {"at": "reloaded", "signal": "KILL"}})

    killed = install(mtls, host_env, arn)

    assert exit_code(killed) != 0
    assert (mtls.state_directory / "journal.json").exists()
    mtls.write_installer_config(**settings)
    again = install(mtls, host_env, arn)
    assert again.ok, again.stderr
    assert "recovered an interrupted trust" in again.stdout + again.stderr
    assert mtls.client_ca.read_text() == pem_of(cas["a"])
    assert accepted(mtls, client_of(cas["a"], tmp_path, "client-a"))
    assert not (mtls.state_directory / "journal.json").exists()
