"""Issue 28 item 4: mutual-TLS servers load the CA's CRL, refreshed by InstallCRL from the host file's sources.

What runs for real: moto's server (Private CA with CRLs published into S3 by rotation.emulation.pca_crl,
SSM inventory by rotation.emulation.ssm_inventory), the aws CLI, the InstallCRL document through the
local SSM runner, openssl, and the Debian apache2, nginx and haproxy on loopback doing mutual TLS.
Client certificates come from the emulated Private CA (IssueCertificate with a CSR); a revocation is
RevokeCertificate, then the emulated CA's publication (its schedule compressed to no delay). Acceptance
is a real TLS handshake presenting the client certificate, then an HTTP request. One server per kind
for the module: the scenario runs in order on it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from certrotate_installer.servers import REGISTRY
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rotation.build.ssm_documents import DOCUMENTS_DIR
from rotation.cli.local_apache import apache_available, free_port
from rotation.cli.local_servers import server_available
from rotation.emulation.pca_crl import CrlSchedule, publish, publish_due_crls
from rotation.emulation.pki import moto_ca
from rotation.emulation.ssm_inventory import ssm_inventory_in_moto
from rotation.emulation.ssm_runner import CommandResult, DocumentParameterError, run_document
from tests.integration.conftest import HOSTNAME, REGION, require
from tests.integration.test_trust_bundles import MUTUAL_TLS, Mtls, accepted
from tests.support.certs import LocalCA
from tests.support.crl import crl_ca

INSTANCE = "i-0c1d2e3f4a5b60718"
CRL_TYPE = "Custom:CertrotateCrl"
NOW = CrlSchedule(after_revocation=dt.timedelta(0))  # the emulated CA publishes a revocation at once


def add_crl_directive(server: Mtls, path: Path) -> None:
    """Root's opt-in in the server's own config: the directive each adapter names (``crl_directive``)."""
    text = server.config.read_text()
    if server.name == "apache":  # SSLCARevocationFile with SSLCARevocationCheck chain
        text += f'SSLCARevocationFile "{path}"\nSSLCARevocationCheck chain\n'
    elif server.name == "nginx":  # ssl_crl
        text = text.replace("        location / ", f"        ssl_crl {path};\n        location / ")
    else:  # crl-file on the bind line
        text = re.sub(r"(?m)^(    bind .* ssl .*)$", rf"\1 crl-file {path}", text)
    server.config.write_text(text)


class Pki:
    """Two emulated Private CAs publishing CRLs into moto's S3: A (the server's client CA) and B (not)."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.pca = self.aws("acm-pca")
        self.s3 = self.aws("s3")
        self.a = crl_ca(self.pca, self.s3, name=f"certrotate client CA A {uuid.uuid4().hex[:6]}")
        self.b = crl_ca(self.pca, self.s3, name=f"certrotate client CA B {uuid.uuid4().hex[:6]}")

    def aws(self, service: str) -> Any:
        """A client of moto's server (module-scoped: no function fixture sets the environment's keys)."""
        session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
        return session.client(service, endpoint_url=self.endpoint)  # type: ignore[call-overload]

    def ca_pem(self, arn: str) -> str:
        return str(self.pca.get_certificate_authority_certificate(CertificateAuthorityArn=arn)["Certificate"]) + "\n"

    def crl_object(self, arn: str) -> tuple[str, str]:
        bucket = self.pca.describe_certificate_authority(CertificateAuthorityArn=arn)["CertificateAuthority"][
            "RevocationConfiguration"
        ]["CrlConfiguration"]["S3BucketName"]
        return bucket, f"crl/{arn.rsplit('/', 1)[1]}.crl"

    def s3_source(self, arn: str) -> str:
        return "s3://{}/{}".format(*self.crl_object(arn))

    def http_source(self, arn: str) -> str:
        """The CRL over plain HTTP as an anonymous client reads it (PUBLIC_READ, moto's path-style URL)."""
        return "{}/{}/{}".format(self.endpoint, *self.crl_object(arn))

    def published(self, arn: str) -> bytes:
        bucket, key = self.crl_object(arn)
        return bytes(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    def client(self, arn: str, directory: Path, name: str) -> tuple[Path, Path, int]:
        """A client certificate IssueCertificate gives for a CSR (EndEntityCertificate/V1: clientAuth)."""
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .sign(key, hashes.SHA256())
        )
        issued = self.pca.issue_certificate(
            CertificateAuthorityArn=arn,
            Csr=csr.public_bytes(serialization.Encoding.PEM),
            SigningAlgorithm="SHA256WITHRSA",
            TemplateArn="arn:aws:acm-pca:::template/EndEntityCertificate/V1",
            Validity={"Value": 2, "Type": "DAYS"},
        )
        pem = self.pca.get_certificate(CertificateAuthorityArn=arn, CertificateArn=issued["CertificateArn"])
        cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
        cert_path.write_text(pem["Certificate"])
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return cert_path, key_path, x509.load_pem_x509_certificate(pem["Certificate"].encode()).serial_number

    def revoke(self, arn: str, serial: int) -> None:
        text = f"{serial:x}"
        text = text.rjust(len(text) + len(text) % 2, "0")
        colons = ":".join(text[i : i + 2] for i in range(0, len(text), 2))
        self.pca.revoke_certificate(
            CertificateAuthorityArn=arn, CertificateSerial=colons, RevocationReason="KEY_COMPROMISE"
        )
        publications = publish_due_crls(dt.datetime.now(dt.UTC), NOW)  # the CRL says the second before
        assert any(p.ca_arn == arn and serial in p.serials for p in publications)


@pytest.fixture(scope="module")
def pki(moto_endpoint: str) -> Iterator[Pki]:
    with ssm_inventory_in_moto():  # every run records its CRLs (PutInventory)
        yield Pki(moto_endpoint)


def _start(name: str, root: Path, pki: Pki) -> Mtls:
    require(apache_available() if name == "apache" else server_available(name))
    server = MUTUAL_TLS[name](root, free_port())
    server.write_bundle(LocalCA(name="server CA").issue([HOSTNAME]))
    server.client_ca.parent.mkdir(parents=True, exist_ok=True)
    server.client_ca.write_text(pki.ca_pem(pki.a))
    server.start()
    return server


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[dict[str, Mtls]]:
    """One mutual-TLS server per kind for the module, started lazily."""
    started: dict[str, Mtls] = {}

    class Lazy(dict[str, Mtls]):
        def __missing__(self, name: str) -> Mtls:
            started[name] = _start(name, tmp_path_factory.mktemp(name), pki)
            return started[name]

    yield Lazy()
    for server in started.values():
        server.stop()


def crl_path(server: Mtls) -> Path:
    return server.root / "ssl" / "client-crl.pem"


def host_file(server: Mtls, sources: list[str], **extra: Any) -> None:
    adapter = REGISTRY.adapter(server.name)
    server.write_installer_config(
        **{adapter.client_ca_key: str(server.client_ca), adapter.crl_key: str(crl_path(server))},
        crl_sources=sources,
        **extra,
    )


def refresh(server: Mtls, env: dict[str, str], **parameters: str) -> CommandResult:
    return run_document(
        DOCUMENTS_DIR / "InstallCRL.yaml",
        {"HttpsPort": str(server.port), **parameters},
        env={**env, **server.installer_environment()},
        timeout=120,
        instance_id=INSTANCE,
        region=REGION,
    )


def code(result: CommandResult) -> int:
    return result.steps[0].exit_code


def tally(server: Mtls, client: tuple[Path, Path, int], times: int = 6) -> int:
    """How many of ``times`` fresh handshakes presenting ``client`` get an HTTP answer."""
    return sum(accepted(server, (client[0], client[1])) for _ in range(times))


@pytest.mark.slow
# The refusals of bad CRLs are the installer's alone (the same code whatever the server): one kind plays them.
@pytest.mark.parametrize(
    ("kind", "via", "attacked"), [("apache", "s3", True), ("nginx", "http", False), ("haproxy", "s3", False)]
)
def test_a_revoked_client_is_refused_after_the_refresh_and_a_valid_one_accepted(
    kind: str, via: str, attacked: bool, servers: dict[str, Mtls], pki: Pki, host_env: dict[str, str], tmp_path: Path
) -> None:
    server = servers[kind]
    good, bad = (pki.client(pki.a, tmp_path, f"{kind}-{role}") for role in ("good", "bad"))
    source = pki.s3_source(pki.a) if via == "s3" else pki.http_source(pki.a)
    host_file(server, [source])
    add_crl_directive(server, crl_path(server))
    ssm = pki.aws("ssm")

    opted_in = refresh(server, host_env)  # root's opt-in: the first CRL file, then the reload
    assert opted_in.ok, opted_in.stderr
    assert "1 CRL(s)" in opted_in.stdout and "asks for 1/1 CA names" in opted_in.stdout
    assert tally(server, good) == tally(server, bad) == 6
    first = crl_path(server).read_bytes()

    pki.revoke(pki.a, bad[2])
    assert tally(server, bad) == 6  # listed in S3, not yet on the host: a client sees it after a refresh

    refreshed = refresh(server, host_env)
    assert refreshed.ok, refreshed.stderr
    published = x509.load_der_x509_crl(pki.published(pki.a))
    assert published.get_revoked_certificate_by_serial_number(bad[2]) is not None
    assert f"{len(published)} revoked" in refreshed.stdout
    assert tally(server, bad) == 0, "the revoked client is still accepted"
    assert tally(server, good, 12) == 12, "a valid client was refused"
    assert crl_path(server).read_bytes() != first
    assert Path(f"{crl_path(server)}.certrotate-previous").read_bytes() == first
    (record,) = ssm.list_inventory_entries(InstanceId=INSTANCE, TypeName=CRL_TYPE)["Entries"]
    assert record["Status"] == "installed" and record["Revoked"] == str(len(published))
    assert record["Source"] == source
    assert record["CrlNumber"] == str(published.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    assert record["CaName"].startswith("certrotate client CA A")

    inode = crl_path(server).stat().st_ino
    again = refresh(server, host_env)  # the same CRL: nothing changes, nothing reloads
    assert again.ok and "nothing changed, nothing reloaded" in again.stdout
    assert crl_path(server).stat().st_ino == inode
    (record,) = ssm.list_inventory_entries(InstanceId=INSTANCE, TypeName=CRL_TYPE)["Entries"]
    assert record["Status"] == "unchanged"

    if not attacked:
        return
    try:
        attacks(server, pki, host_env, first, good, bad)
    finally:
        publish(moto_ca(pki.a), dt.datetime.now(dt.UTC), "refresh")  # the next server's test reads a real CRL again


def attacks(
    server: Mtls,
    pki: Pki,
    host_env: dict[str, str],
    first: bytes,
    good: tuple[Path, Path, int],
    bad: tuple[Path, Path, int],
) -> None:
    """An older CRL, a forged one and a foreign CA's are each refused, and a newer one is rolled back
    when the config test fails; the installed CRL stays, and so does what the server refuses."""
    installed = crl_path(server).read_bytes()
    # The CRL replayed (a stale cache, or whoever can write the object): an older CRL is refused.
    bucket, key = pki.crl_object(pki.a)
    pki.s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=x509.load_pem_x509_crl(first).public_bytes(serialization.Encoding.DER),
        ACL="public-read",
    )
    older = refresh(server, host_env)
    assert code(older) == 4, older.stderr
    assert "is older than the installed one" in older.stderr
    assert crl_path(server).read_bytes() == installed and tally(server, bad) == 0

    # A CRL forged under CA A's name but signed by B's key, then B's own CRL (B is not in the bundle).
    pki.s3.put_object(Bucket=bucket, Key=key, Body=forged_crl(pki, good[2]), ACL="public-read")
    forged = refresh(server, host_env)
    assert code(forged) == 4 and "its signature does not verify under the CA of that name" in forged.stderr
    host_file(server, [pki.s3_source(pki.b)])
    foreign = refresh(server, host_env)
    assert code(foreign) == 4 and "no CA of it has its issuer's name" in foreign.stderr
    assert crl_path(server).read_bytes() == installed

    # A newer CRL, but the server's config test fails: the installed CRL file is back.
    host_file(server, [pki.s3_source(pki.a)])
    publish(moto_ca(pki.a), dt.datetime.now(dt.UTC), "refresh")
    config = server.config.read_text()
    server.config.write_text(config + "certrotate-invalid-directive\n")
    try:
        broken = refresh(server, host_env)
    finally:
        server.config.write_text(config)
    assert code(broken) == 5 and "the previous certificate files are restored" in broken.stderr, broken.stderr
    assert crl_path(server).read_bytes() == installed
    assert tally(server, bad) == 0 and tally(server, good) == 6


def forged_crl(pki: Pki, serial: int) -> bytes:
    """CA A's name, a newer number, the valid client listed, signed by B's key: a bucket writer's forgery."""
    a, b = moto_ca(pki.a), moto_ca(pki.b)
    now = dt.datetime.now(dt.UTC)
    revoked = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(a.certificate.subject)
        .last_update(now)
        .next_update(now + dt.timedelta(days=7))
        .add_extension(x509.CRLNumber(int(now.timestamp() * 1000) + 10**6), critical=False)
        .add_revoked_certificate(revoked)
        .sign(b.key, hashes.SHA256())
    )
    return crl.public_bytes(serialization.Encoding.DER)


def test_a_command_sender_cannot_name_a_crl_source_or_file(
    servers: dict[str, Mtls], pki: Pki, host_env: dict[str, str], tmp_path: Path
) -> None:
    """The attacker sends InstallCRL: it has no parameter naming a source or a file (SSM refuses one),
    and SSM_ variables it cannot send are not read; without the host file's opt-in nothing is fetched."""
    server = servers["apache"]
    evil = tmp_path / "evil.pem"
    for parameter in ("CrlSource", "CrlFile", "BundleFile"):
        with pytest.raises(DocumentParameterError):
            refresh(server, host_env, **{parameter: str(evil)})
    server.write_installer_config(**{REGISTRY.adapter("apache").client_ca_key: str(server.client_ca)})
    planted = {**host_env, "SSM_CrlSource": pki.s3_source(pki.b), "SSM_CrlFile": str(evil)}
    result = refresh(server, planted)
    assert code(result) == 9, result.stderr  # REFUSED: the host file does not opt in
    assert "names no apache_crl_file" in result.stderr
    assert not evil.exists()
    assert json.loads(server.installer_config.read_text()).get("crl_sources") is None
