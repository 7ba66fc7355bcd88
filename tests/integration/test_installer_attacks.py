"""The seven ways the shell installer failed (issue 9), each played against the documents.

Real parts: Debian's apache2 on loopback, moto's server, the aws CLI, the local SSM runner, a real
local user (useradd) as the attacker, real SIGKILL/SIGTERM, a real tmpfs for the full disk. Each
test fails on the shell installer of main: there the attack or fault succeeded (see each test).

Kills and SIGTERM come from the program itself at a named point, because only the program knows
when it has just renamed a file: the test-only ``test_fault`` setting of the host file (which a
command's sender cannot write: it is root's, or in these tests the test's own) makes the program
send itself the signal there. On main the setting does not exist, so no kill happens and the
tests that expect one fail.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from certrotate_installer import output

from rotation.cli.local_apache import LocalApache as Apache
from rotation.emulation.ssm_runner import CommandResult, DocumentParameterError
from tests.installer.helpers import LocalUser
from tests.integration.conftest import HOSTNAME, LocalServer, require
from tests.integration.test_install_document import install, rollback, served_serial, snapshot
from tests.support.certs import LocalCA

DOCUMENTED = {int(code) for code in output.Exit}
WORK_SUFFIXES = (".certrotate-new", ".certrotate-undo", ".tmp")


def exit_code(result: CommandResult) -> int:
    return result.steps[-1].exit_code


def leftovers(apache: LocalServer) -> list[str]:
    found = [p for p in apache.root.joinpath("ssl").rglob("*") if p.name.endswith(WORK_SUFFIXES)]
    found += [p for p in apache.state_directory.glob("journal*")] if apache.state_directory.exists() else []
    return sorted(str(p) for p in found)


def clean_failure(result: CommandResult, code: int) -> None:
    assert exit_code(result) == code, result.stderr
    assert code in DOCUMENTED
    assert "Traceback" not in result.stderr and "cp:" not in result.stderr
    assert "PRIVATE KEY" not in result.stdout + result.stderr


# 1. High: ApacheConfigFile ran `apache2 -f FILE -k graceful` as root from a user's file -------------


def test_1_a_senders_apache_config_is_not_a_parameter_and_never_runs(
    apache: Apache, ca: LocalCA, put_secret: Any, host_env: dict[str, str], tmp_path: Path, attacker: LocalUser
) -> None:
    """On main the document accepted ApacheConfigFile and the piped ErrorLog ran as root."""
    marker = tmp_path / "pwned"
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, attacker.uid, attacker.gid)
    evil = theirs / "evil.conf"
    evil.write_text(
        apache.config.read_text().replace(
            f'ErrorLog "{apache.root}/error.log"', f"ErrorLog \"|/bin/sh -c 'touch {marker}'\""
        )
    )
    os.chown(evil, attacker.uid, attacker.gid)
    arn = put_secret(ca.issue([HOSTNAME]))
    with pytest.raises(DocumentParameterError, match="ApacheConfigFile"):
        install(apache, arn, host_env, ApacheConfigFile=str(evil))
    result = install(apache, arn, {**host_env, "SSM_ApacheConfigFile": str(evil)})  # ignored by the program
    assert result.ok, result.stderr
    apache.write_installer_config(apache_config=str(evil))  # even the host file cannot name a user's file
    clean_failure(install(apache, put_secret(ca.issue([HOSTNAME])), host_env), 9)
    assert not marker.exists()


# 2. Medium: any absolute path was a target ------------------------------------------------------------


@contextlib.contextmanager
def password_files_locked() -> Iterator[None]:
    """The lock useradd and userdel take before they rewrite /etc/passwd, /etc/shadow and /etc/group
    (shadow-utils' commonio_lock calls glibc's lckpwdf: an fcntl lock on /etc/.pwd.lock)."""
    with open("/etc/.pwd.lock", "a") as lock:
        fcntl.lockf(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(lock, fcntl.LOCK_UN)


@pytest.mark.parametrize(
    ("parameter", "path"),
    [
        ("CertificateFile", "/etc/passwd"),
        ("KeyFile", "/etc/shadow"),
        ("ChainFile", "/etc/group"),
        ("CertificateFile", "/etc/ssl/certs/ca-certificates.crt"),
        ("ChainFile", "/etc/ssl/openssl.cnf"),
    ],
)
def test_2_a_system_file_is_never_a_target(
    apache: Apache, ca: LocalCA, put_secret: Any, host_env: dict[str, str], parameter: str, path: str
) -> None:
    """On main each of these was replaced by a PEM, mode 0644."""
    if not os.path.exists(path):
        pytest.skip(f"{path} does not exist here")
    with password_files_locked():  # useradd in a parallel test would rewrite /etc/shadow meanwhile
        before = (Path(path).read_bytes(), os.stat(path))
        live, serial = snapshot(apache), served_serial(apache)
        result = install(apache, put_secret(ca.issue([HOSTNAME])), host_env, **{parameter: path})
        clean_failure(result, 2)
        assert parameter in result.stderr
        assert any(reason in result.stderr for reason in ("trust bundle", "outside the allowed", "must end with"))
        after = os.stat(path)
    assert Path(path).read_bytes() == before[0] and (after.st_ino, after.st_mode) == (
        before[1].st_ino,
        before[1].st_mode,
    )
    assert snapshot(apache) == live and served_serial(apache) == serial


# 3. Medium: symlinks and hard links were followed -------------------------------------------------------

KINDS = ["cert", "key", "chain"]


def target_of(apache: LocalServer, kind: str) -> Path:
    files = apache.live_files()
    return files[0] if len(files) == 1 else dict(zip(KINDS, files))[kind]


# Each kind of target on Apache's three files; the one combined file (cert) on nginx and HAProxy.
SERVER_KINDS = [("apache", kind) for kind in KINDS] + [("nginx", "cert"), ("haproxy", "cert")]


@pytest.mark.parametrize(("server", "kind"), SERVER_KINDS, indirect=["server"])
def test_3_a_directory_another_user_can_write_is_refused(
    server: LocalServer, ca: LocalCA, put_secret: Any, host_env: dict[str, str], attacker: LocalUser, kind: str
) -> None:
    apache = server
    """On main an attacker-owned certificate directory let planted links redirect root's writes."""
    directory = target_of(apache, kind).parent
    stat = directory.stat()
    os.chown(directory, attacker.uid, attacker.gid)
    planted = directory / f"{target_of(apache, kind).name}.certrotate-new"
    try:
        planted.symlink_to(apache.root / "grabbed")  # what the attacker would like root to write
        live = snapshot(apache)
        result = install(apache, put_secret(ca.issue([HOSTNAME])), host_env)
        clean_failure(result, 9)
        assert f"owned by uid {attacker.uid}" in result.stderr
        assert snapshot(apache) == live and not (apache.root / "grabbed").exists()
    finally:
        planted.unlink(missing_ok=True)
        os.chown(directory, stat.st_uid, stat.st_gid)


@pytest.mark.parametrize(("server", "kind"), SERVER_KINDS, indirect=["server"])
@pytest.mark.parametrize("link", ["symlink", "hard link"])
def test_3_a_linked_target_is_refused_and_never_written_through(
    server: LocalServer, ca: LocalCA, put_secret: Any, host_env: dict[str, str], tmp_path: Path, kind: str, link: str
) -> None:
    apache = server
    """On main the install replaced links (and `cp -p` wrote through them)."""
    target = target_of(apache, kind)
    elsewhere = tmp_path / f"elsewhere-{kind}"
    shutil.copy2(target, elsewhere)
    original = elsewhere.read_bytes()
    if link == "symlink":
        target.unlink()
        target.symlink_to(elsewhere)
    else:
        os.link(target, elsewhere.with_suffix(".hard"))
    result = install(apache, put_secret(ca.issue([HOSTNAME])), host_env)
    clean_failure(result, 9)
    assert ("symbolic link" if link == "symlink" else "2 hard links") in result.stderr
    assert elsewhere.read_bytes() == original and target.read_bytes() == original
    assert (target.is_symlink()) == (link == "symlink") and leftovers(apache) == []


def test_3_rollback_never_follows_a_planted_previous_link(
    server: LocalServer, ca: LocalCA, put_secret: Any, host_env: dict[str, str], tmp_path: Path
) -> None:
    """On main RollbackTLS copied whatever a *.certrotate-previous link pointed at into the certificate."""
    apache = server
    assert install(apache, put_secret(ca.issue([HOSTNAME])), host_env).ok
    root_only = tmp_path / "root-only.pem"
    root_only.write_text(ca.issue(["secret.internal"]).certificate_pem)
    root_only.chmod(0o600)
    previous = Path(f"{apache.live_files()[-1]}.certrotate-previous")
    previous.unlink()
    previous.symlink_to(root_only)
    live, serial = snapshot(apache), served_serial(apache)
    clean_failure(rollback(apache, host_env), 9)
    assert snapshot(apache) == live and served_serial(apache) == serial


def test_3_a_state_directory_another_user_owns_is_refused(
    apache: Apache, ca: LocalCA, put_secret: Any, host_env: dict[str, str], attacker: LocalUser
) -> None:
    """On main the lock file lived in the key directory and a planted link made root create files anywhere."""
    apache.state_directory.mkdir(mode=0o700, exist_ok=True)
    os.chown(apache.state_directory, attacker.uid, attacker.gid)
    live = snapshot(apache)
    clean_failure(install(apache, put_secret(ca.issue([HOSTNAME])), host_env), 9)
    assert snapshot(apache) == live


# 4. Medium: Apache started by the installer inherited the lock -------------------------------------------


@pytest.mark.parametrize("server", ["apache", "nginx"], indirect=True)  # HAProxy is never started by certrotate
def test_4_apache_started_by_the_installer_holds_no_lock(
    server: LocalServer, ca: LocalCA, put_secret: Any, host_env: dict[str, str]
) -> None:
    """On main every later install failed with "another certrotate install is running" (exit 8)."""
    apache = server
    apache.stop()
    first = ca.issue([HOSTNAME])
    result = install(apache, put_secret(first), host_env)
    assert result.ok, result.stderr
    assert served_serial(apache) == first.certificate.serial_number
    pids = apache.pids()  # every process of the server (LocalServer.pids: by its config path)
    assert pids
    lock = str(apache.state_directory / "install.lock")
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                assert os.readlink(fd) != lock, f"Apache {pid} holds the install lock"
            except FileNotFoundError:
                continue
    second = ca.issue([HOSTNAME])
    again = install(apache, put_secret(second), host_env)
    assert again.ok, again.stderr
    assert served_serial(apache) == second.certificate.serial_number
    assert rollback(apache, host_env).ok


# 5. Medium: the three-file swap was not atomic --------------------------------------------------------------

RENAMES = [f"change:{n}" for n in range(1, 10)]  # 3 links + 3 renames of the swap, 3 renames of the commit
# One combined file: 1 link + 1 rename of the swap, 1 rename of the commit.
SERVER_RENAMES = (
    [("apache", point) for point in RENAMES]
    + [("nginx", f"change:{n}") for n in range(1, 4)]
    + [("haproxy", f"change:{n}") for n in range(1, 4)]
)


@pytest.mark.parametrize(("server", "point"), SERVER_RENAMES, indirect=["server"])
def test_5_killed_at_each_rename_the_next_run_repairs_first(
    server: LocalServer, ca: LocalCA, put_secret: Any, host_env: dict[str, str], point: str
) -> None:
    """On main a kill after the certificate rename left a mismatched pair that took Apache down at
    the next reload, and the next install saved that pair as *.certrotate-previous."""
    apache = server
    old, old_serial = snapshot(apache), served_serial(apache)
    new = ca.issue([HOSTNAME])
    arn = put_secret(new)
    apache.write_installer_config(test_fault={"at": point, "signal": "KILL"})
    killed = install(apache, arn, host_env)
    assert exit_code(killed) == -signal.SIGKILL, killed.stderr
    committing = int(point.split(":")[1]) > 2 * len(old)  # the swap's links and renames are done
    assert served_serial(apache) == (new.certificate.serial_number if committing else old_serial)

    apache.write_installer_config()
    result = install(apache, arn, host_env)
    assert result.ok, result.stderr
    assert ("finished an interrupted install" if committing else "recovered an interrupted install") in result.stdout
    assert served_serial(apache) == new.certificate.serial_number
    previous = {name: Path(f"{p}.certrotate-previous").read_bytes() for name, p in _files(apache).items()}
    assert previous == old  # the pair that was live before, never a mixture
    assert leftovers(apache) == []
    back = rollback(apache, host_env)  # and the kept pair is a good one to go back to
    assert back.ok, back.stderr
    assert served_serial(apache) == old_serial


def _files(apache: LocalServer) -> dict[str, Path]:
    return {p.name: p for p in apache.live_files()}


# 6. Medium: `set -e` exited without rolling back ----------------------------------------------------------


def test_6_rollback_refuses_a_truncated_previous_file_without_touching_live_files(
    apache: Apache, ca: LocalCA, put_secret: Any, host_env: dict[str, str]
) -> None:
    """On main RollbackTLS exited 1 with the live files already replaced."""
    assert install(apache, put_secret(ca.issue([HOSTNAME])), host_env).ok
    previous = Path(f"{apache.key_file()}.certrotate-previous")
    previous.write_bytes(previous.read_bytes()[:100])
    live, serial = snapshot(apache), served_serial(apache)
    result = rollback(apache, host_env)
    clean_failure(result, 4)
    assert "saved previous files are not a valid pair" in result.stderr
    assert snapshot(apache) == live and served_serial(apache) == serial and leftovers(apache) == []


def test_6_chain_file_equal_to_certificate_file_is_a_bad_parameter(
    apache: Apache, ca: LocalCA, put_secret: Any, host_env: dict[str, str]
) -> None:
    """On main this exited 1 after the swap, and the next reload took Apache down."""
    live, serial = snapshot(apache), served_serial(apache)
    result = install(apache, put_secret(ca.issue([HOSTNAME])), host_env, ChainFile=str(apache.cert_file()))
    clean_failure(result, 2)
    assert "ChainFile must name a different file than CertificateFile" in result.stderr
    assert snapshot(apache) == live and served_serial(apache) == serial


# change:3 is the certificate's rename among three files, change:2 the combined file's.
SERVER_TERMS = [("apache", p) for p in ("staged", "change:3", "swapped", "reloaded")] + [
    (name, p) for name in ("nginx", "haproxy") for p in ("staged", "change:2", "swapped", "reloaded")
]


@pytest.mark.parametrize(("server", "point"), SERVER_TERMS, indirect=["server"])
def test_6_sigterm_rolls_back_and_reloads(
    server: LocalServer, ca: LocalCA, put_secret: Any, host_env: dict[str, str], point: str
) -> None:
    """On main SIGTERM ended the script wherever it was, with no rollback."""
    apache = server
    live, serial = snapshot(apache), served_serial(apache)
    apache.write_installer_config(test_fault={"at": point, "signal": "TERM"})
    result = install(apache, put_secret(ca.issue([HOSTNAME])), host_env)
    clean_failure(result, 11)
    assert "interrupted by signal SIGTERM" in result.stderr
    assert snapshot(apache) == live and served_serial(apache) == serial and leftovers(apache) == []


# 7. Low: leftovers, and a full disk gave exit 1 with raw `cp:` messages ----------------------------------


@pytest.fixture
def tiny_disk(apache: Apache) -> Callable[[int], None]:
    """Moves Apache's ssl/ onto a tmpfs of its own; ``fill(pages)`` leaves that many 4 KiB pages free."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        require("a tmpfs for the full disk needs root and mount")
    ssl_dir = apache.root / "ssl"
    saved = {p.relative_to(ssl_dir): (p.read_bytes(), p.stat().st_mode) for p in ssl_dir.rglob("*") if p.is_file()}
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", str(ssl_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    require(None if mounted.returncode == 0 else f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    (ssl_dir / "certs").mkdir(mode=0o755)
    (ssl_dir / "private").mkdir(mode=0o700)
    for relative, (data, mode) in saved.items():
        (ssl_dir / relative).write_bytes(data)
        (ssl_dir / relative).chmod(mode & 0o777)

    def fill(pages: int) -> None:
        vfs = os.statvfs(ssl_dir)
        (ssl_dir / "filler").write_bytes(b"\0" * ((vfs.f_bavail - pages) * vfs.f_bsize))
        assert os.statvfs(ssl_dir).f_bavail == pages

    yield fill  # type: ignore[misc]
    subprocess.run(["umount", "-l", str(ssl_dir)], check=False)


@pytest.mark.parametrize("free_pages", [0, 1, 2])
def test_7_a_full_disk_rolls_back_with_a_documented_code_and_no_leftovers(
    apache: Apache, ca: LocalCA, put_secret: Any, host_env: dict[str, str], tiny_disk: Any, free_pages: int
) -> None:
    """On main: exit 1, raw `cp:` messages, *.certrotate-new files left behind."""
    live, serial = snapshot(apache), served_serial(apache)
    tiny_disk(free_pages)
    result = install(apache, put_secret(ca.issue([HOSTNAME], key_algorithm=_rsa())), host_env)
    clean_failure(result, 10)
    assert "No space left on device" in result.stderr
    assert snapshot(apache) == live and served_serial(apache) == serial and leftovers(apache) == []


def _rsa() -> Any:
    from rotation.issuance.spec import KeyAlgorithm

    return KeyAlgorithm.RSA_2048


def test_7_after_a_kill_nothing_but_the_journaled_work_files_remain(
    apache: Apache, ca: LocalCA, put_secret: Any, host_env: dict[str, str], tmp_path: Path
) -> None:
    """On main 30/30 kills left a work directory, 11 of them holding key.pem."""
    before = {p for p in Path("/tmp").iterdir()} | {p for p in Path("/dev/shm").iterdir()}
    apache.write_installer_config(test_fault={"at": "change:2", "signal": "KILL"})
    assert exit_code(install(apache, put_secret(ca.issue([HOSTNAME])), host_env)) == -signal.SIGKILL
    stray = ({p for p in Path("/tmp").iterdir()} | {p for p in Path("/dev/shm").iterdir()}) - before
    # Not the installer's, and made by other xdist workers at any moment: the local SSM runner's
    # script directory (the agent's), a sandbox's log, a demo's work directory.
    others = ("certrotate-ssm-", "certrotate-sandbox-", "certrotate-demo-")
    installer_made = [p for p in stray if p.name.startswith(("certrotate", ".certrotate"))]
    assert not [p for p in installer_made if not p.name.startswith(others)]
    journal = json.loads((apache.state_directory / "journal.json").read_text())
    assert journal["phase"] == "swapping"
    named = {Path(t["path"]).name for t in journal["targets"]}
    work = {p.name for p in apache.root.joinpath("ssl").rglob("*") if p.name.endswith(WORK_SUFFIXES)}
    assert all(name.rsplit(".certrotate-", 1)[0] in named for name in work)  # only the journal's own
    assert apache.state_directory.stat().st_mode & 0o777 == 0o700
    apache.write_installer_config()
    assert install(apache, put_secret(ca.issue([HOSTNAME])), host_env).ok
    assert leftovers(apache) == []
