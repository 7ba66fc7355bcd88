"""One test (at least) per installer module whose main function no other unit test drives: the
parameters, the output and its classification, the journal, the distribution table, and the server
contract (``servers/base.py``) against a real TLS server on a loopback port and a real apache2."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from certrotate_installer import directories, distro, journal, output, parameters, validation
from certrotate_installer.servers import REGISTRY, apache, base
from certrotate_installer.tools import tool_environment

from tests.support.certs import LocalCA

ARN = "arn:aws:secretsmanager:us-east-1:111122223333:secret:certs/web-AbCdEf"


# parameters.py ----------------------------------------------------------------------------------


def test_read_request_fills_the_defaults_and_checks_the_rules() -> None:
    request = parameters.read_request("install", {"SSM_SecretArn": ARN}, REGISTRY)
    assert request == parameters.Request(
        parameters.Action.INSTALL, ARN, "AWSCURRENT", ("", "", ""), "", 0, "graceful", "", ""
    )  # Server, FileLayout, the files and the port empty: the host's (main.complete_request)
    rollback = parameters.read_request("rollback", {"SSM_FileLayout": "combined", "SSM_HttpsPort": "8443"}, REGISTRY)
    assert rollback.combined and rollback.port == 8443 and rollback.secret_arn == ""
    for environ, message in (
        ({}, "parameter SecretArn is required"),
        ({"SSM_SecretArn": ARN, "SSM_HttpsPort": "70000"}, "HttpsPort must be at most 65535, not 70000"),
        ({"SSM_SecretArn": ARN, "SSM_FileLayout": "combined", "SSM_KeyFile": "/etc/ssl/k.key"}, "must be empty"),
    ):
        with pytest.raises(output.InstallError, match=message) as caught:
            parameters.read_request("install", environ, REGISTRY)
        assert caught.value.code == output.Exit.BAD_PARAMETER
    with pytest.raises(output.InstallError, match="unknown action 'upgrade'"):
        parameters.read_request("upgrade", {}, REGISTRY)


def test_the_host_file_chooses_the_server_and_the_sender_may_only_repeat_it() -> None:
    """A command's sender must not have the installer drive (and start, when stopped) a server the
    host's root did not choose: Server may be empty or the host file's ``server`` (else Apache)."""
    from certrotate_installer import host_file, main

    def chosen(settings: dict[str, str], **environ: str) -> tuple[str, str]:
        config = host_file.parse_host_config("/etc/certrotate/installer.json", settings, REGISTRY)
        request = parameters.read_request("install", {"SSM_SecretArn": ARN, **environ}, REGISTRY)
        decided = main.complete_request(request, config, REGISTRY)
        return decided.server, decided.layout

    assert chosen({}) == ("apache", "separate")
    assert chosen({}, SSM_Server="apache", SSM_FileLayout="combined") == ("apache", "combined")
    assert chosen({"server": "nginx"}) == ("nginx", "combined")
    assert chosen({"server": "haproxy"}, SSM_Server="haproxy") == ("haproxy", "combined")
    for settings, environ, message in (
        (
            {},
            {"SSM_Server": "nginx"},
            "parameter Server 'nginx' is not allowed on this host \\(allowed: apache or "
            "empty\\): the host file /etc/certrotate/installer.json names no server, so it is Apache",
        ),
        ({"server": "nginx"}, {"SSM_Server": "apache"}, "allowed: nginx or empty.*names nginx"),
        ({"server": "haproxy"}, {"SSM_Server": "nginx"}, "allowed: haproxy or empty"),
        ({"server": "nginx"}, {"SSM_FileLayout": "separate"}, "FileLayout 'separate' is not allowed with Server nginx"),
        ({"server": "nginx"}, {"SSM_KeyFile": "/etc/ssl/k.key"}, "KeyFile and ChainFile must be empty"),
    ):
        with pytest.raises(output.InstallError, match=message) as caught:
            chosen(settings, **environ)
        assert caught.value.code == output.Exit.BAD_PARAMETER
    with pytest.raises(output.InstallError, match="server must be one of apache, nginx, haproxy, not 'lighttpd'"):
        host_file.parse_host_config("/etc/certrotate/installer.json", {"server": "lighttpd"}, REGISTRY)


def test_the_host_file_describes_the_files_and_port_a_sender_leaves_empty() -> None:
    """The association sends SecretArn alone: the host file says where this host's certificate goes
    and on which port it is served; a sender's values still win (and are checked as before)."""
    from certrotate_installer import host_file, main

    def completed(settings: dict[str, object], **environ: str) -> parameters.Request:
        config = host_file.parse_host_config("/etc/certrotate/installer.json", settings, REGISTRY)
        return main.complete_request(
            parameters.read_request("install", {"SSM_SecretArn": ARN, **environ}, REGISTRY), config, REGISTRY
        )

    site = {
        "certificate_file": "/etc/apache2/ssl/site.pem",
        "key_file": "/etc/apache2/ssl/site.key",
        "chain_file": "/etc/apache2/ssl/site-chain.pem",
        "https_port": 8443,
    }
    request = completed(site)
    assert request.files == (
        "/etc/apache2/ssl/site.pem",
        "/etc/apache2/ssl/site.key",
        "/etc/apache2/ssl/site-chain.pem",
    )
    assert request.port == 8443 and request.layout == "separate"
    given = completed(site, SSM_CertificateFile="/etc/ssl/other.pem", SSM_HttpsPort="9443")
    assert given.files[0] == "/etc/ssl/other.pem" and given.files[1] == "/etc/apache2/ssl/site.key"
    assert given.port == 9443
    combined = completed(site, SSM_FileLayout="combined")  # the separate layout's key and chain are not taken
    assert combined.files == ("/etc/apache2/ssl/site.pem", "", "")
    assert completed({}).files == ("", "", "") and completed({}).port == 443  # the distribution's, 443
    for bad, message in (
        ({"https_port": 70000}, "https_port must be a port number"),
        ({"https_port": "443"}, "https_port must be a port number"),
        ({"https_port": True}, "https_port must be a port number"),
        ({"https_port": False}, "https_port must be a port number"),
        ({"https_port": 0}, "https_port must be a port number"),
        ({"certificate_file": "relative.pem"}, "certificate_file must be an absolute path"),
    ):
        with pytest.raises(output.InstallError, match=message):
            host_file.parse_host_config("/etc/certrotate/installer.json", bad, REGISTRY)


def test_the_parameter_table_is_what_the_documents_render() -> None:
    install = [p.name for p in parameters.document_parameters(parameters.Action.INSTALL, REGISTRY)]
    rollback = [p.name for p in parameters.document_parameters(parameters.Action.ROLLBACK, REGISTRY)]
    assert install[:2] == ["SecretArn", "VersionStage"] and rollback == install[2:]
    assert REGISTRY.reload_modes() == ("graceful", "restart") and REGISTRY.layouts() == ("separate", "combined")


# output.py --------------------------------------------------------------------------------------


def test_classify_never_shows_an_arbitrary_exception_and_names_the_module() -> None:
    try:
        validation.parse_bundle(None, "", "", ("c", "k", "ch"))  # type: ignore[arg-type]
    except TypeError as exc:
        code, message = output.classify(exc)
    assert code is output.Exit.INTERNAL
    assert message.startswith("unexpected TypeError at line ") and message.endswith(
        " of the installer (certificate.py)"
    )
    assert output.classify(OSError(28, "No space left on device", "/x")) == (
        output.Exit.WRITE_FAILED,
        "a file operation failed: No space left on device (/x)",
    )
    assert output.classify(output.Interrupted(15)) == (output.Exit.INTERRUPTED, "interrupted by signal SIGTERM")


def test_say_and_warn_write_one_printable_line(capfd: pytest.CaptureFixture[str]) -> None:
    output.say("served\nCN=é")
    output.warn("error: \x1b[2J")
    captured = capfd.readouterr()
    assert captured.out == "certrotate: served\\nCN=\\xe9\n" and captured.err == "certrotate: error: \\x1b[2J\n"


# journal.py -------------------------------------------------------------------------------------


def test_the_journal_round_trips_and_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    state = tmp_path / "state"
    fd = directories.open_directory(str(state), os.geteuid(), create_mode=0o700)
    try:
        record = journal.Journal(fd, str(state))
        assert record.read() is None and record.phase() is None
        record.write({"phase": journal.Phase.SWAPPED.value, "targets": []})
        assert record.read() == {"phase": "swapped", "targets": []} and record.phase() == "swapped"
        assert oct((state / journal.JOURNAL_NAME).stat().st_mode & 0o777) == "0o600"
        (state / journal.JOURNAL_NAME).write_text("{not json")
        with pytest.raises(output.InstallError, match="is unreadable") as caught:
            record.read()
        assert caught.value.code == output.Exit.ROLLBACK_INCOMPLETE and record.phase() == "unreadable"
        record.clear()
        assert sorted(p.name for p in state.iterdir()) == []
    finally:
        os.close(fd)


# distro.py --------------------------------------------------------------------------------------


def test_this_hosts_os_release_picks_a_row() -> None:
    text = distro.read_os_release()
    if text is None:
        pytest.skip("no /etc/os-release on this machine")
    assert distro.pick_distro(apache.Apache.distros, "", text).family in ("debian", "rhel")
    assert distro.pick_distro(apache.Apache.distros, "httpd", None).control == "apachectl"


# servers/ ---------------------------------------------------------------------------------------


def test_every_server_keeps_the_contract() -> None:
    assert REGISTRY.names() == ("apache", "nginx", "haproxy") and REGISTRY.adapter("apache") is apache.Apache
    for server_class in REGISTRY.adapters:
        assert issubclass(server_class, base.Server) and server_class.title and "graceful" in server_class.reload_modes
        assert server_class.config_key == server_class.name + "_config" == server_class.host_paths()[0]
        assert {d.family for d in server_class.distros} == set(distro.OS_FAMILIES.values())
    bare = base.Server(apache.Apache.distros[0], None, 1, {})
    with pytest.raises(NotImplementedError):
        bare.config_test()
    with pytest.raises(NotImplementedError):
        bare.reload("graceful")


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, bytes, validation.Bundle]]:
    """A real TLS server on a loopback port serving one certificate; yields (port, DER, bundle)."""
    issued = LocalCA(name="Base CA").issue(["base.test"])
    (tmp_path / "c.pem").write_text(issued.certificate_pem + issued.chain_pem)
    (tmp_path / "k.pem").write_text(issued.private_key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tmp_path / "c.pem"), str(tmp_path / "k.pem"))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with context.wrap_socket(raw, server_side=True):
                    pass
            except (OSError, ssl.SSLError):
                raw.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    parsed = validation.parse_bundle(issued.certificate_pem, issued.private_key_pem, issued.chain_pem, ("c", "k", "ch"))
    try:
        yield listener.getsockname()[1], parsed.facts.der, parsed
    finally:
        stop.set()
        thread.join()
        listener.close()


def this_process_as_server(port: int) -> apache.Apache:
    """An adapter whose server binary is this interpreter: the TLS server of ``tls_server`` runs in
    this process, so its listener is the "server's own" (``server_processes``)."""
    binary = os.path.realpath(sys.executable)
    row = apache.Apache.distros[0]._replace(server=os.path.basename(binary))
    return apache.Apache(row, None, port, {"PATH": os.path.dirname(binary)})


def test_the_base_proves_what_is_served_over_tls(tls_server: tuple[int, bytes, validation.Bundle]) -> None:
    port, der, served = tls_server
    server = this_process_as_server(port)
    assert server.served("base.test") == der
    proof = server.wait_for(served.facts, 5.0)  # the served-truth check (tests/installer/test_served_check.py)
    assert proof.ok and proof.summary == "16/16"
    other = LocalCA(name="Other CA").issue(["base.test"])
    expected = validation.parse_bundle(other.certificate_pem, other.private_key_pem, other.chain_pem, ("c", "k", "ch"))
    proof = server.wait_for(expected.facts, 0.3)
    assert not proof.ok and set(proof.labels) == {served.facts.serial_hex}
    why = proof.why(port)
    assert why.startswith(f"of the last {len(proof.labels)} fresh connections to port {port}")
    assert f"{len(proof.labels)} serial {served.facts.serial_hex}" in why


def test_nothing_answering_is_said_so() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = this_process_as_server(port)
    assert server.served("a.test") is None
    gone = LocalCA(name="Gone CA").issue(["a.test"])
    facts = validation.parse_bundle(gone.certificate_pem, gone.private_key_pem, gone.chain_pem, ("c", "k", "ch")).facts
    proof = server.wait_for(facts, 0.2)
    assert not proof.ok and proof.why(port).startswith(f"nothing answers TLS on port {port} (waited ")


def test_apaches_config_test_runs_the_real_apache2(tmp_path: Path) -> None:
    if shutil.which("apache2", path="/usr/sbin:/usr/bin") is None:
        pytest.skip("apache2 is not installed")
    modules = "/usr/lib/apache2/modules"
    good = (
        f'ServerRoot "{tmp_path}"\nServerName 127.0.0.1\nListen 127.0.0.1:1\nErrorLog /dev/null\n'
        f"LoadModule mpm_event_module {modules}/mod_mpm_event.so\n"
        f"LoadModule authz_core_module {modules}/mod_authz_core.so\n"
    )
    config = tmp_path / "apache2.conf"
    server = apache.Apache(apache.Apache.distros[0], str(config), 1, tool_environment(dict(os.environ)))
    config.write_text(good)
    assert server.config_test() == (True, "Syntax OK\n")
    config.write_text(good + "CertrotateNoSuchDirective on\n")
    ok, text = server.config_test()
    assert not ok and "Invalid command 'CertrotateNoSuchDirective'" in text
