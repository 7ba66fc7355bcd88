"""Where the installer may write: allow-list, directory ownership, links, file kinds, host file.

Each refusal is played by an attacker who owns something on the path (a real ``useradd`` user)
or by a planted link; on main the shell installer wrote through every one of them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from certrotate_installer import directories, host, host_file, output, parameters, path_policy, tools, validation
from certrotate_installer.servers import REGISTRY

from tests.installer.helpers import LocalUser

CERT = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"


def refused(call: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(output.InstallError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    assert caught.value.code == output.Exit.REFUSED, caught.value.message
    return str(caught.value.message)


def test_a_root_owned_path_is_accepted_even_below_sticky_tmp(tmp_path: Path) -> None:
    target = tmp_path / "tls"
    target.mkdir(mode=0o755)
    fd = directories.open_directory(str(target), 0)
    try:
        assert os.path.samestat(os.fstat(fd), target.stat())
    finally:
        os.close(fd)


def test_a_directory_another_user_owns_is_refused(tmp_path: Path, attacker: LocalUser) -> None:
    owned = tmp_path / "theirs"
    owned.mkdir(mode=0o755)
    os.chown(owned, attacker.uid, attacker.gid)
    (owned / "tls").mkdir(mode=0o755)  # root's, but inside the attacker's directory
    for path in (owned, owned / "tls"):
        message = refused(directories.open_directory, str(path), 0)
        assert f"owned by uid {attacker.uid}" in message


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757, 0o1777])
def test_a_directory_others_may_write_is_refused(tmp_path: Path, mode: int) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    assert "writable by group or others" in refused(directories.open_directory, str(shared), 0)


def test_the_installers_own_user_may_own_the_path(tmp_path: Path, attacker: LocalUser) -> None:
    """DESIGN rule 7: the unprivileged demo runs the installer as the user who owns its files."""
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    os.chown(mine, attacker.uid, attacker.gid)
    os.close(directories.open_directory(str(mine), attacker.uid))
    refused(directories.open_directory, str(mine), 0)  # the same directory is not root's


def owned_by(user: LocalUser, directory: Path, mode: int = 0o755) -> Path:
    directory.mkdir(mode=mode)
    os.chown(directory, user.uid, user.gid)
    return directory


def test_a_symlinked_directory_into_an_unsafe_place_is_refused(tmp_path: Path, attacker: LocalUser) -> None:
    (tmp_path / "certs").symlink_to(owned_by(attacker, tmp_path / "theirs"))
    refused(directories.open_directory, str(tmp_path / "certs"), 0)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/etc/passwd", "outside the allowed directories"),
        ("/etc/shadow", "outside the allowed directories"),
        ("/etc/sudoers", "outside the allowed directories"),
        ("/root/.ssh/authorized_keys", "outside the allowed directories"),
        ("/etc/ssl/certs/ca-certificates.crt", "OS trust bundle"),
        ("/etc/pki/tls/certs/ca-bundle.crt", "OS trust bundle"),
        ("/etc/ssl/openssl.cnf", "must end with"),
        ("/etc/apache2/apache2.conf", "must end with"),
        ("/etc/httpd/conf.d/evil.conf", "must end with"),
    ],
)
def test_a_target_outside_the_policy_is_a_bad_parameter(path: str, message: str) -> None:
    with pytest.raises(output.InstallError) as caught:
        path_policy.check_target_name(path_policy.TargetKind.CERTIFICATE, path, host_file.DEFAULT_ALLOWED)
        path_policy.TrustStore.of_this_host().check_path(path_policy.TargetKind.CERTIFICATE, path)
    assert caught.value.code == output.Exit.BAD_PARAMETER
    assert message in caught.value.message and "CertificateFile" in caught.value.message


def host_config(tmp_path: Path, directory: Path) -> object:
    return host_file.HostConfig("test", (str(directory),), str(tmp_path), str(tmp_path))


def test_the_same_file_twice_is_a_bad_parameter(tmp_path: Path) -> None:
    tls = tmp_path / "tls"
    tls.mkdir()
    with pytest.raises(output.InstallError) as caught:
        path_policy.open_targets(
            (str(tls / "a.pem"), str(tls / "a.key"), str(tls / "a.pem")), host_config(tmp_path, tls), 0
        )
    assert caught.value.code == output.Exit.BAD_PARAMETER
    assert "ChainFile must name a different file than CertificateFile" in caught.value.message


@pytest.fixture
def tls(tmp_path: Path) -> tuple[Path, int]:
    directory = tmp_path / "tls"
    directory.mkdir(mode=0o755)
    return directory, directories.open_directory(str(directory), 0)


def test_a_symlinked_target_is_refused_and_not_followed(tls: tuple[Path, int]) -> None:
    directory, fd = tls
    secret = directory.parent / "root-only"
    secret.write_text("root only\n")
    (directory / "site.pem").symlink_to(secret)
    assert "symbolic link" in refused(directories.read_regular, fd, "site.pem", "site.pem")


def test_a_hard_linked_target_is_refused(tls: tuple[Path, int]) -> None:
    directory, fd = tls
    (directory / "site.pem").write_text(CERT)
    os.link(directory / "site.pem", directory / "elsewhere.pem")
    assert "2 hard links" in refused(directories.read_regular, fd, "site.pem", "site.pem")


def test_a_fifo_target_is_refused(tls: tuple[Path, int]) -> None:
    directory, fd = tls
    os.mkfifo(directory / "site.pem")
    assert "not a regular file" in refused(directories.read_regular, fd, "site.pem", "site.pem")


def test_an_existing_file_of_another_kind_is_refused() -> None:
    validation.check_existing_content(path_policy.TargetKind.CERTIFICATE, CERT.encode(), "x.pem")
    validation.check_existing_content(path_policy.TargetKind.CERTIFICATE, b"", "x.pem")
    for kind, data in [
        (path_policy.TargetKind.CERTIFICATE, b"ServerName example\n"),
        (path_policy.TargetKind.CHAIN, b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
        (path_policy.TargetKind.KEY, CERT.encode()),
    ]:
        assert "not a" in refused(validation.check_existing_content, kind, data, "x")


def write_host_file(path: Path, settings: dict[str, object], mode: int = 0o644) -> Path:
    path.write_text(json.dumps(settings))
    path.chmod(mode)
    return path


def test_the_host_file_extends_the_allow_list(tmp_path: Path) -> None:
    path = write_host_file(tmp_path / "installer.json", {"allowed_directories": ["/srv/tls"]})
    config = host_file.load_host_config({host_file.HOST_CONFIG_VARIABLE: str(path)}, 0, REGISTRY)
    assert config.allowed == (*host_file.DEFAULT_ALLOWED, "/srv/tls")
    assert (config.journal_dir, config.lock_dir) == ("/var/lib/certrotate", "/run/certrotate")


def test_a_host_file_another_user_could_write_is_refused(tmp_path: Path, attacker: LocalUser) -> None:
    theirs = write_host_file(tmp_path / "theirs.json", {"allowed_directories": ["/"]})
    os.chown(theirs, attacker.uid, attacker.gid)
    assert "owned by root" in refused(
        host_file.load_host_config, {host_file.HOST_CONFIG_VARIABLE: str(theirs)}, 0, REGISTRY
    )
    writable = write_host_file(tmp_path / "writable.json", {}, mode=0o666)
    refused(host_file.load_host_config, {host_file.HOST_CONFIG_VARIABLE: str(writable)}, 0, REGISTRY)
    linked = tmp_path / "linked.json"
    linked.symlink_to(write_host_file(tmp_path / "real.json", {}))
    refused(host_file.load_host_config, {host_file.HOST_CONFIG_VARIABLE: str(linked)}, 0, REGISTRY)


@pytest.mark.parametrize(
    "settings",
    [
        {"allowed_directories": "/srv"},
        {"allowed_directories": ["relative"]},
        {"allowed_directories": ["/"]},
        {"apache_config": "x.conf"},
        {"state_directory": 7},
        {"test_fault": {"at": "staged", "signal": "HUP"}},
        {"version_stages": ["bad label!"]},
        {"issuing_ca_sha256": ["not-hex"]},
        {"managed_files": "/etc/ssl/x.pem"},
        {"CertificateFile": "/etc/passwd"},
        [],
    ],
)
def test_a_host_file_must_be_valid(tmp_path: Path, settings: object) -> None:
    path = tmp_path / "installer.json"
    path.write_text(json.dumps(settings))
    refused(host_file.load_host_config, {host_file.HOST_CONFIG_VARIABLE: str(path)}, 0, REGISTRY)


def test_no_host_file_means_the_defaults_and_a_named_one_must_exist(tmp_path: Path) -> None:
    if not os.path.exists(host_file.HOST_CONFIG):
        assert host_file.load_host_config({}, 0, REGISTRY) == host_file.default_host_config()
    refused(host_file.load_host_config, {host_file.HOST_CONFIG_VARIABLE: str(tmp_path / "none.json")}, 0, REGISTRY)


def test_the_lock_is_exclusive_and_never_inherited(tmp_path: Path) -> None:
    config = host_file.HostConfig("test", (), str(tmp_path / "state"), str(tmp_path / "state"))
    fd = host.acquire_lock(config, 0)
    try:
        assert not os.get_inheritable(fd)
        assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
        with pytest.raises(output.InstallError) as caught:
            host.acquire_lock(config, 0)
        assert caught.value.code == output.Exit.BUSY
    finally:
        os.close(fd)
    os.close(host.acquire_lock(config, 0))


def test_a_state_directory_another_user_owns_is_refused(tmp_path: Path, attacker: LocalUser) -> None:
    state = owned_by(attacker, tmp_path / "state", 0o700)
    config = host_file.HostConfig("test", (), str(state), str(state))
    refused(host.acquire_lock, config, 0)


# Issue 17 item 13 -------------------------------------------------------------------------------------------


def test_17_13_a_users_symlink_in_a_sticky_directory_is_not_followed(tmp_path: Path, attacker: LocalUser) -> None:
    """On the starting code ``realpath`` resolved the user's link before the O_NOFOLLOW walk, so a
    host-file path under /tmp led wherever the user pointed it (here: another root-owned directory)."""
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    roots = tmp_path / "roots-other-config"
    roots.mkdir(mode=0o755)
    link = sticky / "certrotate"
    link.symlink_to(roots)
    os.lchown(link, attacker.uid, attacker.gid)
    assert "symbolic link another user could have made" in refused(directories.open_directory, str(link), 0)
    os.lchown(link, 0, 0)  # root's own link there is followed
    os.close(directories.open_directory(str(link), 0))


def test_17_13_an_aws_cli_another_user_can_replace_is_not_run(tmp_path: Path, attacker: LocalUser) -> None:
    """On the starting code the first ``aws`` on PATH ran as root, whoever owned it."""
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    planted = theirs / "aws"
    planted.write_text("#!/bin/sh\ntouch /tmp/pwned\n")
    planted.chmod(0o755)
    os.chown(theirs, attacker.uid, attacker.gid)
    os.chown(planted, attacker.uid, attacker.gid)
    ours = tmp_path / "ours"
    ours.mkdir(mode=0o755)
    (ours / "aws").write_text("#!/bin/sh\n")
    (ours / "aws").chmod(0o755)
    found = tools.find_tool("aws", {"PATH": f"{theirs}:{ours}"})
    assert found == str(ours / "aws")
    with pytest.raises(output.InstallError) as caught:
        tools.find_tool("aws", {"PATH": str(theirs)})
    assert caught.value.code == output.Exit.HOST_UNSUPPORTED and "another user can change" in caught.value.message


def test_17_13_a_name_over_255_characters_is_a_bad_parameter() -> None:
    """On the starting code the pattern took it and the first write failed (exit 10)."""
    environ = {"SSM_SecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:x"}
    environ["SSM_CertificateFile"] = "/etc/ssl/web/" + "n" * 300 + ".pem"
    with pytest.raises(output.InstallError) as caught:
        parameters.read_request("install", environ, REGISTRY)
    assert caught.value.code == output.Exit.BAD_PARAMETER and "CertificateFile" in caught.value.message


@pytest.mark.parametrize(
    "path", ["/etc/ssl/myapp/cert.pem", "/etc/apache2/ssl/cert.pem", "/etc/pki/tls/private/cert.pem"]
)
def test_17_14_cert_pem_is_allowed_outside_the_trust_store(path: str) -> None:
    """On the starting code every target named cert.pem was "an OS trust bundle"."""
    kind = path_policy.TargetKind.CERTIFICATE
    path_policy.check_target_name(kind, path, host_file.DEFAULT_ALLOWED)
    path_policy.TrustStore.of_this_host().check_path(kind, path)


@pytest.mark.parametrize("path", ["/etc/ssl/cert.pem", "/etc/pki/tls/cert.pem", "/etc/ssl/certs/cert.pem"])
def test_17_14_the_trust_bundles_are_refused_by_exact_path(path: str) -> None:
    with pytest.raises(output.InstallError) as caught:
        path_policy.TrustStore.of_this_host().check_path(path_policy.TargetKind.CHAIN, path)
    assert caught.value.code == output.Exit.BAD_PARAMETER and "trust" in caught.value.message
