"""Issue 27 item 1, the installer's pure trust-bundle rules: the host file's ``trust_bundles``, which
files a run may write, and what a bundle may hold (each certificate a CA: CA:TRUE and keyCertSign)."""

from __future__ import annotations

import base64
import datetime as dt
import os
import time
from pathlib import Path

import pytest
from certrotate_installer.host_file import parse_host_config
from certrotate_installer.output import Exit, InstallError
from certrotate_installer.path_policy import TrustStore
from certrotate_installer.servers import REGISTRY
from certrotate_installer.trust_bundle import (
    bundle_name,
    choose,
    destinations,
    find_entry,
    parse_trust_bundle,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rotation.fleet.trust_view import bundle_fingerprint
from tests.support.certs import LocalCA

SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:certrotate/trust-bundles/partners"
ARN = SECRET + "-AbCdEf"


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def truncated(cert: x509.Certificate) -> str:
    """A certificate's PEM whose DER lost its last 40 bytes."""
    body = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)[:-40]).decode()
    return "-----BEGIN CERTIFICATE-----\n" + body + "\n-----END CERTIFICATE-----\n"


def ca_without_cert_sign() -> x509.Certificate:
    """CA:TRUE but keyUsage cRLSign only: not a trust anchor for certificates."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "crl only")])
    now = dt.datetime.now(dt.UTC)
    usage = x509.KeyUsage(False, False, False, False, False, False, True, False, False)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .sign(key, hashes.SHA256())
    )


def config(**entry: object) -> object:
    settings = {
        "trust_bundles": {"partners": {"secret": SECRET, **entry}},
        "apache_client_ca_file": "/etc/apache2/ca.pem",
    }
    return parse_host_config("/etc/certrotate/installer.json", settings, REGISTRY)


def test_a_bundle_of_cas_is_taken_and_its_fingerprint_is_the_readers() -> None:
    first, second = LocalCA(name="A"), LocalCA(name="B")
    text = pem(first.certificate) + pem(second.certificate)
    bundle = parse_trust_bundle("partners", text, time.time())
    assert [c.common_name for c in bundle.certificates] == ["A", "B"]
    assert bundle.fingerprint == bundle_fingerprint(text)


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda: LocalCA(name="I").issue(["leaf.example"]).certificate_pem, "basicConstraints CA:TRUE is required"),
        (lambda: pem(ca_without_cert_sign()), "keyUsage keyCertSign is required"),
        (lambda: LocalCA(name="I").issue(["x.example"]).private_key_pem, "block 2 is a PRIVATE KEY"),
        (lambda: truncated(LocalCA(name="I").certificate), "does not parse"),
    ],
    ids=["leaf", "no-keyCertSign", "private-key", "mutated"],
)
def test_anything_but_a_ca_is_refused_naming_where_never_quoting_it(make: object, why: str) -> None:
    extra = make()  # type: ignore[operator]
    with pytest.raises(InstallError) as raised:
        parse_trust_bundle("partners", pem(LocalCA(name="ok").certificate) + extra, time.time())
    assert raised.value.code is Exit.BUNDLE_INVALID and why in raised.value.message
    assert "BEGIN" not in raised.value.message and "MII" not in raised.value.message


def test_an_empty_bundle_is_refused() -> None:
    with pytest.raises(InstallError, match="holds 0 blocks"):
        parse_trust_bundle("partners", "", time.time())


def test_a_sender_picks_only_among_the_host_files_destinations() -> None:
    host = config(client_ca=True, files=["/etc/certrotate/app.pem"])
    entry = find_entry(host.trust_bundles, ARN, host.source)  # type: ignore[attr-defined]
    found = destinations(entry, host.server_path("apache_client_ca_file"), "apache_client_ca_file")  # type: ignore[attr-defined]
    assert [d.path for d in found] == ["/etc/apache2/ca.pem", "/etc/certrotate/app.pem"]
    assert choose(found, "", "partners") == found
    with pytest.raises(InstallError, match="not a destination of bundle 'partners'"):
        choose(found, "/etc/ssl/certs/evil.pem", "partners")
    with pytest.raises(InstallError, match="is not the secret the host file"):
        find_entry(host.trust_bundles, ARN.replace("123456789012", "999999999999"), host.source)  # type: ignore[attr-defined]
    assert bundle_name(ARN) == "partners"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"secret": SECRET.replace("partners", "other")}, "ending in certrotate/trust-bundles/partners"),
        ({"client_ca": "yes"}, "client_ca must be true or false"),
        ({"files": ["relative.pem"]}, "is not an absolute path"),
        ({}, "names no destination"),
        ({"files": ["/a.pem"], "system_trust_files": ["/a.pem"]}, "names a file twice"),
        ({"client_ca": True, "colour": "red"}, "keys among"),
    ],
)
def test_a_bad_trust_bundles_entry_refuses_the_host_file(entry: dict[str, object], message: str) -> None:
    settings = {"trust_bundles": {"partners": {"secret": SECRET, **entry}}}
    with pytest.raises(InstallError, match=message):
        parse_host_config("/h.json", settings, REGISTRY)


def test_a_system_trust_directory_takes_a_bundle_only_when_the_host_file_names_it_there(tmp_path: Path) -> None:
    """The refusal is the installer's TrustStore (by path and by device and inode); a stand-in system
    trust directory under tmp_path, because the test runs unprivileged."""
    from certrotate_installer.host import Host
    from certrotate_installer.trust_run import open_bundle_targets

    system = tmp_path / "system-certs"
    system.mkdir()
    store = TrustStore((str(system),), (), frozenset({(os.stat(system).st_dev, os.stat(system).st_ino)}))
    target = str(system / "partners.pem")
    settings = {"allowed_directories": [str(tmp_path)], "state_directory": str(tmp_path / "state")}
    for key, refused in (("files", True), ("system_trust_files", False)):
        host_config = parse_host_config(
            "/h.json", {**settings, "trust_bundles": {"partners": {"secret": SECRET, key: [target]}}}, REGISTRY
        )
        host = Host.__new__(Host)
        host.config, host.euid = host_config, os.geteuid()
        found = destinations(host_config.trust_bundles[0], None, "")
        if refused:
            with pytest.raises(InstallError, match="names the file in the bundle's system_trust_files"):
                open_bundle_targets(found, host, store)
        else:
            (opened,) = open_bundle_targets(found, host, store)
            assert opened.path == target
            os.close(opened.dir_fd)


S_CLIENT = """\
---
Acceptable client certificate CA names
CN=certrotate a client CA
CN=Client CA 1,O=Acme\\, Inc
Requested Signature Algorithms: ECDSA+SHA256:RSA-PSS+SHA256
Shared Requested Signature Algorithms: ECDSA+SHA256
---
"""


def test_the_ca_names_the_server_sends_are_read_from_s_client_and_compared_exactly() -> None:
    from certrotate_installer.client_ca_check import compare, parse_ca_names

    names = parse_ca_names(S_CLIENT)
    assert names == ["CN=certrotate a client CA", "CN=Client CA 1,O=Acme\\, Inc"]
    assert compare(names, ["CN=Client CA 1,O=Acme\\, Inc", "CN=certrotate a client CA"]).summary == "2/2 CA names"
    missing = compare(names[:1], ["CN=certrotate a client CA", "CN=new"])
    assert not missing.ok and missing.summary == "1/2 CA names, missing CN=new"
    extra = compare(names, ["CN=certrotate a client CA"])
    assert not extra.ok and "extra CN=Client CA 1" in extra.summary
    assert parse_ca_names("---\nNo client certificate CA names sent\n---\n") == []
    assert parse_ca_names("---\nSSL handshake has read 1 bytes\n") is None
    assert not compare(None, ["CN=a"]).ok
