"""Issue 28 item 4, the installer's CRL rules without a server: the host file's ``crl_sources``, a CRL's
facts read from its DER, what may replace the installed CRLs, the signature check with the real openssl,
and a fetch that follows no redirect (a real HTTP server on loopback)."""

from __future__ import annotations

import datetime as dt
import http.server
import os
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from certrotate_installer.certificate import certificate_facts
from certrotate_installer.crl import (
    crl_facts,
    crls_of,
    file_content,
    installed_crls,
    older_problem,
    parse_crl_sources,
    time_problem,
    uncovered,
)
from certrotate_installer.crl_fetch import fetch, signed_by
from certrotate_installer.crl_record import CRL_KEYS, entries, next_crl_records
from certrotate_installer.host_file import host_config_keys, parse_host_config
from certrotate_installer.output import Exit, InstallError
from certrotate_installer.path_policy import TargetKind, TrustStore, check_target_name
from certrotate_installer.servers import REGISTRY
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from tests.support.certs import LocalCA

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def crl(ca: LocalCA, number: int | None, *, serials: tuple[int, ...] = (), signer: Any = None, **times: Any) -> bytes:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(times.get("this_update", NOW))
        .next_update(times.get("next_update", NOW + dt.timedelta(days=7)))
    )
    if number is not None:
        builder = builder.add_extension(x509.CRLNumber(number), critical=False)
    for serial in serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(NOW).build()
        )
    return builder.sign(signer or ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def test_the_host_file_names_crl_sources_and_each_servers_crl_file() -> None:
    keys = host_config_keys(REGISTRY)
    assert {"crl_sources", "apache_crl_file", "nginx_crl_file", "haproxy_crl_file"} <= set(keys)
    sources = ["s3://my-crl-bucket/crl/0b5e8f0e-1111-2222-3333-444455556666.crl", "https://crl.example.com/a.crl"]
    config = parse_host_config("/h.json", {"crl_sources": sources, "nginx_crl_file": "/etc/ssl/crl.pem"}, REGISTRY)
    assert config.crl_sources == tuple(sources) and config.server_path("nginx_crl_file") == "/etc/ssl/crl.pem"
    for bad in ("file:///etc/shadow", "s3://Bad_Bucket/k", "http://h/a b", "ftp://h/x.crl", 7):
        with pytest.raises(InstallError, match=r"crl_sources entry .* is not a CRL location") as caught:
            parse_crl_sources("/h.json", [bad])
        assert caught.value.code is Exit.REFUSED and "s3://BUCKET/KEY" in caught.value.message
    with pytest.raises(InstallError, match="names a location twice"):
        parse_crl_sources("/h.json", sources + sources[:1])


def test_a_crls_facts_come_from_its_der() -> None:
    ca = LocalCA(name="facts CA")
    facts = crl_facts(crl(ca, 2**70 + 5, serials=(7, 9)), "s3://b/k")
    assert facts.number == 2**70 + 5 and facts.revoked == 2 and facts.source == "s3://b/k"
    assert facts.issuer_der == certificate_facts(ca.certificate.public_bytes(serialization.Encoding.DER)).subject_der
    assert facts.this_update == NOW.timestamp() and facts.next_update == (NOW + dt.timedelta(days=7)).timestamp()
    assert crl_facts(crl(ca, None)).number is None and crl_facts(crl(ca, None)).revoked == 0
    pem_file = file_content([facts, crl_facts(crl(LocalCA(name="other"), 1))])
    assert [crl_facts(der).number for der in crls_of(pem_file, "f")] == [2**70 + 5, 1]
    assert [c.number for c in installed_crls(pem_file, "/f")] == [2**70 + 5, 1] and installed_crls(None, "/f") == []
    with pytest.raises(InstallError, match="exists and is not a CRL file") as caught:
        installed_crls(ca.certificate.public_bytes(serialization.Encoding.PEM), "/f")
    assert caught.value.code is Exit.REFUSED
    delta = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(NOW)
        .next_update(NOW + dt.timedelta(days=1))
        .add_extension(x509.DeltaCRLIndicator(4), critical=True)
        .sign(ca.key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    with pytest.raises(ValueError, match="delta CRL"):
        crl_facts(delta)
    with pytest.raises(ValueError):
        crl_facts(crl(ca, 1)[:-9])


def test_only_a_current_crl_not_older_than_the_installed_one_may_replace_it() -> None:
    ca, other = LocalCA(name="order CA"), LocalCA(name="other CA")
    installed = [crl_facts(crl(ca, 10)), crl_facts(crl(other, 500))]
    now = time.time()
    assert older_problem(crl_facts(crl(ca, 11)), installed) == ""
    assert older_problem(crl_facts(crl(ca, 12, this_update=NOW + dt.timedelta(seconds=1))), installed) == ""
    assert "CRL number 9 < 10" in older_problem(crl_facts(crl(ca, 9)), installed)
    earlier = crl_facts(crl(ca, 11, this_update=NOW - dt.timedelta(hours=1)))
    assert "thisUpdate is earlier" in older_problem(earlier, installed)
    assert "other content" in older_problem(crl_facts(crl(ca, 10, serials=(3,))), installed)
    assert older_problem(installed[0], installed) == ""  # the same CRL: unchanged, not refused
    assert time_problem(installed[0], now) == ""
    expired = crl_facts(crl(ca, 1, this_update=NOW - dt.timedelta(days=2), next_update=NOW - dt.timedelta(days=1)))
    assert "expired" in time_problem(expired, now)
    assert "not yet valid" in time_problem(crl_facts(crl(ca, 1, this_update=NOW + dt.timedelta(hours=1))), now)
    subjects = [
        (name, certificate_facts(c.certificate.public_bytes(serialization.Encoding.DER)).subject_der)
        for name, c in (("order CA", ca), ("third CA", LocalCA(name="third CA")))
    ]
    assert uncovered(subjects, installed) == ["third CA"]


def test_the_signature_is_checked_against_each_ca_of_that_name_with_openssl() -> None:
    """Two CAs share a name (a rollover, or a forger's CA): only the one whose key signed the CRL
    counts, whichever comes first; a CRL signed by another key under the name is refused."""
    real, impostor = LocalCA(name="shared name CA"), LocalCA(name="shared name CA")
    cas = [certificate_facts(c.certificate.public_bytes(serialization.Encoding.DER)) for c in (impostor, real)]
    env = {"PATH": "/usr/bin:/bin"}
    assert signed_by("/usr/bin/openssl", crl_facts(crl(real, 1)), cas, env) == "shared name CA"
    forged = crl_facts(crl(real, 2, signer=LocalCA(name="forger").key))
    assert signed_by("/usr/bin/openssl", forged, cas, env) is None
    assert signed_by("/usr/bin/openssl", crl_facts(crl(LocalCA(name="stranger"), 1)), cas, env) is None


class _Redirecting(http.server.BaseHTTPRequestHandler):
    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).asked.append(self.path)
        if self.path == "/moved.crl":
            self.send_response(302)
            self.send_header("Location", "/elsewhere.crl")
            self.end_headers()
            return
        body = b"\x30\x00"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def web() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Redirecting.asked = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_http_source_is_fetched_and_a_redirect_is_not_followed(web: str) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    assert fetch(f"{web}/a.crl", env) == b"\x30\x00"
    with pytest.raises(InstallError, match=r"redirect to .*elsewhere\.crl refused") as caught:
        fetch(f"{web}/moved.crl", env)
    assert caught.value.code is Exit.SECRET_UNREADABLE
    assert _Redirecting.asked == ["/a.crl", "/moved.crl"]  # nothing fetched from where it pointed


def test_the_crl_file_may_end_in_crl_and_never_lies_in_a_system_trust_directory() -> None:
    check_target_name(TargetKind.CRL, "/etc/ssl/certrotate/clients.crl", ["/etc/ssl"])
    with pytest.raises(InstallError, match=r"must end with one of .*\.key$"):
        check_target_name(TargetKind.TRUST_BUNDLE, "/etc/ssl/certrotate/clients.crl", ["/etc/ssl"])
    with pytest.raises(InstallError, match="outside the allowed directories"):
        check_target_name(TargetKind.CRL, "/srv/clients.crl", ["/etc/ssl"])
    with pytest.raises(InstallError, match="/etc/ssl/certs") as caught:  # OpenSSL's CApath reads CRLs there too
        TrustStore.of_this_host().check_path(TargetKind.CRL, "/etc/ssl/certs/clients.crl")
    assert caught.value.code is Exit.BAD_PARAMETER


def test_a_failed_run_keeps_the_recorded_crls_and_says_its_failure() -> None:
    ca = LocalCA(name="record CA")
    installed = entries([crl_facts(crl(ca, 41, serials=(5,)), "s3://b/k")], ["record CA"], "/etc/ssl/c.pem")
    first = next_crl_records(None, installed, ("installed", 0, ""), time.time())
    assert [(r["CaName"], r["CrlNumber"], r["Revoked"], r["Status"]) for r in first] == [
        ("record CA", "41", "1", "installed")
    ]
    assert set(first[0]) == set(CRL_KEYS) and first[0]["ThisUpdate"] == NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    failed = next_crl_records([*first, {"CaName": 3}], [], ("failed", 4, "the CRL from s3://b/k is older"), 0.0)
    assert [(r["CrlNumber"], r["Status"], r["ExitCode"]) for r in failed] == [("41", "failed", "4")]
    (blank,) = next_crl_records(None, [], ("failed", 9, "no opt-in"), 0.0)
    assert blank["CaName"] == "" and blank["Status"] == "failed" and blank["Message"] == "no opt-in"
