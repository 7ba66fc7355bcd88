"""Issue 17: the second attacker pass on the host installer, each way through played again.

Real parts: Debian's apache2 on loopback, moto's server behind the real aws CLI, the documents
run by the local SSM runner as SSM would (RunUpdateTLS/RollbackTLS, parameters in SSM_<Name>),
real bind mounts and tmpfs file systems, real signals, a real Python 3.6 in a C locale. Each test
says what happened on the starting code (c42c5eb); each was run there and failed.
"""

from __future__ import annotations

import datetime as dt
import glob
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from certrotate_installer import host_file, path_policy
from certrotate_installer.servers.apache import Apache as ApacheServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from rotation.cli.local_apache import LocalApache as Apache
from rotation.cli.local_apache import apache_available, free_port
from rotation.emulation.ssm_inventory import ssm_inventory_in_moto
from rotation.emulation.ssm_runner import CommandResult, DocumentParameterError, run_document
from rotation.fleet.view import INVENTORY_TYPE
from rotation.issuance.bundle import CertBundle, join_pem
from rotation.issuance.keys import private_key_pem
from tests.integration.conftest import HOSTNAME, REGION, require
from tests.integration.test_install_document import INSTALL, install, rollback, served_serial, snapshot
from tests.support.certs import LocalCA

OLD_PYTHONS = sorted(glob.glob("/root/.pyenv/versions/3.6.*/bin/python3") + glob.glob("/usr/bin/python3.6"))
INSTANCE = "i-0a1b2c3d4e5f60718"


def code(result: CommandResult) -> int:
    return result.steps[-1].exit_code


def clean(result: CommandResult, expected: int) -> None:
    assert code(result) == expected, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "PRIVATE KEY" not in result.stdout + result.stderr


def crafted(
    ca: LocalCA,
    *,
    common_name: str = HOSTNAME,
    is_ca: bool = False,
    signs: bool = False,
    lifetime: dt.timedelta = dt.timedelta(days=30),
) -> CertBundle:
    """A leaf the attacker made with the CA's key (a secret's writer stages what they like)."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + lifetime)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, True, False, False, signs, signs, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    cert = builder.sign(ca.key, hashes.SHA256())
    return CertBundle(
        join_pem(cert.public_bytes(serialization.Encoding.PEM).decode()),
        private_key_pem(key),
        join_pem(ca.certificate.public_bytes(serialization.Encoding.PEM).decode()),
        "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/x/certificate/y",
    )


def fingerprint(ca: LocalCA) -> str:
    return ca.certificate.fingerprint(hashes.SHA256()).hex()


# 2. The default chain file became a system trust anchor -------------------------------------------------------


def test_17_2_the_default_files_are_outside_every_trust_directory() -> None:
    """On the starting code the default ChainFile was /etc/ssl/certs/certrotate-chain.pem."""
    trust = path_policy.TrustStore.of_this_host()
    for distro in ApacheServer.distros:
        for kind, path in zip(path_policy.TargetKind, path_policy.default_files(distro)):
            trust.check_path(kind, path)  # raises for a target in a trust directory
            path_policy.check_target_name(kind, path, host_file.DEFAULT_ALLOWED)
        assert not distro.cert_dir.startswith(("/etc/ssl/certs", "/etc/pki/tls/certs"))


@pytest.mark.parametrize("trust_dir", ["/etc/ssl/certs", "/usr/local/share/ca-certificates"])
def test_17_2_a_target_in_a_trust_directory_is_refused(
    apache: Apache, ca: LocalCA, put_secret: Any, host_env: dict[str, str], trust_dir: str
) -> None:
    """On the starting code ChainFile=/etc/ssl/certs/... was written (and update-ca-certificates then
    hash-linked it: a trust anchor for any name from the secret's CA)."""
    if not os.path.isdir(trust_dir):
        pytest.skip(f"{trust_dir} does not exist here")
    apache.write_installer_config(allowed_directories=[str(apache.root / "ssl"), "/usr/local/share"])
    target = Path(trust_dir) / f"certrotate-test-{os.getpid()}-chain.crt"
    live = snapshot(apache)
    try:
        result = install(apache, put_secret(ca.issue([HOSTNAME])), host_env, ChainFile=str(target))
        clean(result, 2)
        assert "ChainFile" in result.stderr and "trust" in result.stderr
        assert not target.exists() and snapshot(apache) == live
    finally:
        for path in glob.glob(f"{target}*"):
            os.unlink(path)


def test_17_2_a_trust_directory_reached_through_a_bind_mount_is_refused(
    apache: Apache, ca: LocalCA, put_secret: Any, host_env: dict[str, str]
) -> None:
    """By device and inode, not by path: /etc/ssl/certs mounted inside an allowed directory."""
    alias = apache.root / "ssl" / "anchors"
    alias.mkdir()
    mounted = subprocess.run(["mount", "--bind", "-o", "ro", "/etc/ssl/certs", str(alias)], check=False)
    require(None if mounted.returncode == 0 else "cannot bind-mount here")
    try:
        result = install(apache, put_secret(ca.issue([HOSTNAME])), host_env, ChainFile=str(alias / "x-chain.pem"))
        clean(result, 2)
        assert "device and inode" in result.stderr
    finally:
        subprocess.run(["umount", str(alias)], check=False)


# 3. ChainFile replaced a partner's client CA ----------------------------------------------------------------


def test_17_3_a_certificate_file_certrotate_did_not_install_is_never_replaced(
    apache: Apache, ca: LocalCA, put_secret: Any, host_env: dict[str, str]
) -> None:
    """On the starting code ChainFile pointed at Apache's SSLCACertificateFile replaced the partner's
    client CA with the secret's CA (exit 0)."""
    partner = LocalCA(name="Partner Client CA")
    client_ca = apache.root / "ssl" / "certs" / "partner-clients.pem"
    client_ca.write_bytes(partner.certificate.public_bytes(serialization.Encoding.PEM))
    before = client_ca.read_bytes()
    live = snapshot(apache)
    result = install(apache, put_secret(ca.issue([HOSTNAME])), host_env, ChainFile=str(client_ca))
    clean(result, 9)
    assert "was not created or installed by certrotate" in result.stderr and "managed_files" in result.stderr
    assert client_ca.read_bytes() == before and snapshot(apache) == live

    # a file certrotate creates is its own from then on; a file the host file names is too
    mine = apache.root / "ssl" / "certs" / "new-chain.pem"
    assert install(apache, put_secret(ca.issue([HOSTNAME])), host_env, ChainFile=str(mine)).ok
    assert install(apache, put_secret(ca.issue([HOSTNAME])), host_env, ChainFile=str(mine)).ok
    named = [str(p) for p in (apache.cert_file(), apache.key_file(), apache.chain_file(), client_ca)]
    apache.write_installer_config(managed_files=named)
    assert install(apache, put_secret(ca.issue([HOSTNAME])), host_env, ChainFile=str(client_ca)).ok


def test_17_3_a_ca_bundle_is_refused_by_its_content(
    apache: Apache, ca: LocalCA, put_secret: Any, host_env: dict[str, str]
) -> None:
    """Many CA certificates: a trust bundle, whatever its name, even when the host file names it."""
    bundle = apache.root / "ssl" / "certs" / "bundle.pem"
    bundle.write_bytes(
        b"".join(LocalCA(name=f"CA {n}").certificate.public_bytes(serialization.Encoding.PEM) for n in range(12))
    )
    apache.write_installer_config(managed_files=[*snapshot_paths(apache), str(bundle)])
    result = install(apache, put_secret(ca.issue([HOSTNAME])), host_env, ChainFile=str(bundle))
    clean(result, 9)
    assert "CA bundle" in result.stderr


# 4. VersionStage installed what a secret's writer staged -----------------------------------------------------


@pytest.mark.parametrize("stage", ["AWSPENDING", "attacker-label"])
def test_17_4_only_verified_stages_are_installed(
    apache: Apache, ca: LocalCA, put_secret: Any, host_env: dict[str, str], sm: Any, stage: str
) -> None:
    """On the starting code a CA:TRUE leaf staged under AWSPENDING or a custom label was installed."""
    arn = put_secret(ca.issue([HOSTNAME]))
    self_made = LocalCA(name="Self-made Root")
    evil = crafted(self_made, is_ca=True)
    value = json.dumps({"CERTIFICATE_TYPE": "PCA_ISSUED", "COMMON_NAME": HOSTNAME, **evil.to_fields()})
    sm.put_secret_value(SecretId=arn, SecretString=value, VersionStages=[stage])
    live, serial = snapshot(apache), served_serial(apache)
    result = install(apache, arn, host_env, VersionStage=stage)
    clean(result, 2)
    assert "VersionStage" in result.stderr and "AWSCURRENT, AWSPREVIOUS" in result.stderr
    assert snapshot(apache) == live and served_serial(apache) == serial


def test_17_4_the_host_file_may_allow_another_stage(
    apache: Apache, ca: LocalCA, put_secret: Any, host_env: dict[str, str], sm: Any
) -> None:
    arn = put_secret(ca.issue([HOSTNAME]))
    good = ca.issue([HOSTNAME])
    value = json.dumps({"CERTIFICATE_TYPE": "PCA_ISSUED", "COMMON_NAME": HOSTNAME, **good.to_fields()})
    sm.put_secret_value(SecretId=arn, SecretString=value, VersionStages=["CANARY"])
    apache.write_installer_config(version_stages=["CANARY"])
    result = install(apache, arn, host_env, VersionStage="CANARY")
    assert result.ok, result.stderr
    assert served_serial(apache) == good.certificate.serial_number


# 5. Leaves the engine refuses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bundle", "message"),
    [
        (lambda ca: crafted(ca, is_ca=True), "CA certificate (basicConstraints CA:TRUE)"),
        (lambda ca: crafted(ca, signs=True), "keyCertSign/cRLSign"),
        (lambda ca: crafted(ca, lifetime=dt.timedelta(minutes=1, seconds=30)), "in less than 3600 seconds"),
    ],
    ids=["ca-true", "key-cert-sign", "seconds-left"],
)
def test_17_5_a_leaf_the_engine_refuses_is_refused(
    apache: Apache, ca: LocalCA, put_secret: Any, host_env: dict[str, str], bundle: Any, message: str
) -> None:
    """On the starting code each of these was installed (exit 0)."""
    live, serial = snapshot(apache), served_serial(apache)
    result = install(apache, put_secret(bundle(ca)), host_env)
    clean(result, 4)
    assert message in result.stderr
    assert snapshot(apache) == live and served_serial(apache) == serial


def test_17_5_the_host_file_pins_the_issuing_ca(
    apache: Apache, ca: LocalCA, put_secret: Any, host_env: dict[str, str]
) -> None:
    """On the starting code a leaf under a self-made root (its own chain) was installed."""
    apache.write_installer_config(issuing_ca_sha256=[fingerprint(ca)])
    self_made = LocalCA(name="Self-made Root")
    live, serial = snapshot(apache), served_serial(apache)
    result = install(apache, put_secret(self_made.issue([HOSTNAME])), host_env)
    clean(result, 4)
    assert "pins" in result.stderr
    assert snapshot(apache) == live and served_serial(apache) == serial
    good = ca.issue([HOSTNAME])
    assert install(apache, put_secret(good), host_env).ok
    assert served_serial(apache) == good.certificate.serial_number


def test_17_5_a_newline_in_the_common_name_adds_no_line_to_the_output(
    apache: Apache, ca: LocalCA, put_secret: Any, host_env: dict[str, str]
) -> None:
    """On the starting code the CN's newline injected a line into the document's output."""
    injected = "certrotate: ok"
    result = install(apache, put_secret(crafted(ca, common_name=f"{HOSTNAME}\n{injected}")), host_env)
    assert injected not in result.stdout.splitlines() + result.stderr.splitlines()
    assert "Traceback" not in result.stderr
    if result.ok:
        assert f"{HOSTNAME}\\n{injected}" in result.stdout  # escaped, on the subject line


# 6. The fleet record outgrew one argument ------------------------------------------------------------------


def test_17_6_an_8_kb_secret_arn_is_refused_by_the_document_and_the_program(
    apache: Apache, host_env: dict[str, str]
) -> None:
    """On the starting code `arn:aws[a-z-]*` took any length: 17 failing 8 KB ARNs made every later
    put-inventory fail with E2BIG."""
    huge = "arn:aws" + "-x" * 4000 + ":secretsmanager:us-east-1:123456789012:secret:certs/web-AbCdEf"
    with pytest.raises(DocumentParameterError, match="SecretArn"):
        install(apache, huge, host_env)
    # an agent without ENV_VAR interpolation runs the fallback: the program checks again
    env = {**host_env, "SSM_SecretArn": huge}
    result = run_document(
        INSTALL,
        {"SecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:x", **apache.document_parameters()},
        env={**env, **apache.installer_environment()},
        env_var_interpolation=False,
        timeout=120,
    )
    clean(result, 2)
    assert "SecretArn" in result.stderr and len(result.stderr) < 2000


@pytest.fixture
def ssm(moto_endpoint: str) -> Iterator[Any]:
    with ssm_inventory_in_moto():
        yield boto3.client("ssm", region_name=REGION, endpoint_url=moto_endpoint)


def agent_run(document: str, apache: Apache, env: dict[str, str], **parameters: str) -> CommandResult:
    path = INSTALL.with_name(f"{document}.yaml")
    return run_document(
        path,
        {**apache.document_parameters(), **parameters},
        env={**env, **apache.installer_environment()},
        timeout=180,
        instance_id=INSTANCE,
        region=REGION,
    )


def test_17_6_records_travel_in_a_file_not_in_argv(
    apache: Apache, ca: LocalCA, put_secret: Any, host_env: dict[str, str], ssm: Any, tmp_path: Path
) -> None:
    """The aws CLI is given --items file://… (argv holds at most 128 KiB per string)."""
    log = tmp_path / "argv.log"
    real = Path(host_env["PATH"].split(":")[0]) / "aws"
    wrapper_dir = tmp_path / "bin"
    wrapper_dir.mkdir(mode=0o755)
    wrapper = wrapper_dir / "aws"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {log}\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    env = {**host_env, "PATH": f"{wrapper_dir}:{host_env['PATH']}"}
    assert agent_run("RunUpdateTLS", apache, env, SecretArn=put_secret(ca.issue([HOSTNAME]))).ok
    (line,) = [entry for entry in log.read_text().splitlines() if entry.startswith("ssm put-inventory")]
    assert "--items file:///" in line and "Custom:CertrotateCertificate" not in line
    (entry,) = ssm.list_inventory_entries(InstanceId=INSTANCE, TypeName=INVENTORY_TYPE)["Entries"]
    assert entry["Status"] == "installed"


# 7. Aliases through bind mounts ------------------------------------------------------------------------------


def test_17_7_the_same_file_through_a_bind_mount_is_a_bad_parameter(
    apache: Apache, ca: LocalCA, put_secret: Any, host_env: dict[str, str]
) -> None:
    """On the starting code: exit 10 "restored", the original certificate gone, Apache dead at the next reload."""
    alias = apache.root / "ssl" / "certs" / "alias-chain.pem"
    alias.write_text("")
    mounted = subprocess.run(["mount", "--bind", str(apache.cert_file()), str(alias)], check=False)
    require(None if mounted.returncode == 0 else "cannot bind-mount here")
    try:
        live, serial = snapshot(apache), served_serial(apache)
        apache.write_installer_config(managed_files=[*snapshot_paths(apache), str(alias)])
        result = install(apache, put_secret(ca.issue([HOSTNAME])), host_env, ChainFile=str(alias))
        clean(result, 2)
        assert "same file (same device and inode)" in result.stderr
        assert snapshot(apache) == live and served_serial(apache) == serial
    finally:
        subprocess.run(["umount", str(alias)], check=False)


def snapshot_paths(apache: Apache) -> list[str]:
    return [str(apache.cert_file()), str(apache.key_file()), str(apache.chain_file())]


# 9. Python 3.6 in a C locale ------------------------------------------------------------------------------


def test_17_9_a_non_ascii_common_name_on_python_3_6_in_a_c_locale(
    apache: Apache, ca: LocalCA, put_secret: Any, host_env: dict[str, str], tmp_path: Path
) -> None:
    """On the starting code: installed and committed, then printing the CN raised UnicodeEncodeError:
    exit 1 "nothing was changed"."""
    if not OLD_PYTHONS:
        require("no Python 3.6 here (RHEL 8's platform-python)")
    bin_dir = tmp_path / "py36"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(OLD_PYTHONS[-1])
    env = {**host_env, "PATH": f"{bin_dir}:{host_env['PATH']}", "LANG": "C", "LC_ALL": "C"}
    bundle = crafted(ca, common_name="www.certrotaté.test")
    result = install(apache, put_secret(bundle), env)
    assert result.ok, result.stdout + result.stderr
    assert "subject=CN=www.certrotat\\xe9.test" in result.stdout
    assert served_serial(apache) == x509.load_pem_x509_certificate(bundle.certificate_pem.encode()).serial_number


# 10. State file system full at commit ---------------------------------------------------------------------


@pytest.fixture
def tiny_state(apache: Apache) -> Iterator[Path]:
    """The state directory on a tmpfs of its own (64 KiB)."""
    state = apache.state_directory
    state.mkdir(mode=0o700, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(state)], check=False)
    require(None if mounted.returncode == 0 else "cannot mount a tmpfs here")
    yield state
    subprocess.run(["umount", "-l", str(state)], check=False)


def stopped_installer(config: Path, timeout: float = 30) -> int:
    """The pid of the installer (run for ``config``) once it has stopped itself (SIGSTOP)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                status = (entry / "status").read_text()
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if "State:\tT" in status and f"CERTROTATE_INSTALLER_CONFIG={config}".encode() in environ:
                return int(entry.name)
        time.sleep(0.05)
    raise AssertionError("the installer never stopped at the fault point")


def fill(directory: Path) -> None:
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 512)
    except OSError:
        pass
    finally:
        os.close(fd)


def test_17_10_a_full_state_file_system_at_commit_keeps_the_served_install(
    apache: Apache, ca: LocalCA, put_secret: Any, host_env: dict[str, str], tiny_state: Path
) -> None:
    """On the starting code: exit 10 "the next run finishes it", and the next run undid the
    served install (the journal still said swapped)."""
    new = ca.issue([HOSTNAME])
    arn = put_secret(new)
    apache.write_installer_config(test_fault={"at": "reloaded", "signal": "STOP"})
    done: list[CommandResult] = []
    runner = threading.Thread(target=lambda: done.append(install(apache, arn, host_env)))
    runner.start()
    pid = 0
    try:
        pid = stopped_installer(apache.installer_config)
        fill(tiny_state)  # a local process filled the state file system meanwhile
    finally:
        if pid:
            os.kill(pid, signal.SIGCONT)
        runner.join(180)
    (result,) = done
    said = result.stdout + result.stderr
    assert served_serial(apache) == new.certificate.serial_number
    if code(result) != 0:
        assert "the next run restores the previous" in said, said
    (tiny_state / "filler").unlink()
    apache.write_installer_config()
    again = install(apache, arn, host_env)
    assert again.ok, again.stderr
    assert "recovered an interrupted" not in again.stdout  # nothing undone
    assert served_serial(apache) == new.certificate.serial_number
    assert not (tiny_state / "journal.json").exists()


# 11. A local user fills /dev/shm ------------------------------------------------------------------------------


def full_shm_python(bin_dir: Path, python: str) -> None:
    """``python3`` that runs in a mount namespace whose /dev/shm is a full tmpfs."""
    bin_dir.mkdir()
    script = bin_dir / "python3"
    script.write_text(
        "#!/bin/sh\n"
        "exec unshare -m sh -c 'mount -t tmpfs -o size=8k tmpfs /dev/shm && "
        "(dd if=/dev/zero of=/dev/shm/fill bs=1k count=64 2>/dev/null; true) && "
        f'exec {python} "$@"\' sh "$@"\n'
    )
    script.chmod(0o755)


@pytest.mark.parametrize("python", ["current", "3.6"])
def test_17_11_a_full_dev_shm_does_not_stop_an_install(
    apache: Apache, ca: LocalCA, put_secret: Any, host_env: dict[str, str], tmp_path: Path, python: str
) -> None:
    """On the starting code every install failed (exit 10) while /dev/shm was full."""
    probe = subprocess.run(["unshare", "-m", "true"], check=False)
    require(None if probe.returncode == 0 else "unshare -m is not allowed here")
    interpreter = "/usr/bin/python3" if python == "current" else (OLD_PYTHONS[-1] if OLD_PYTHONS else "")
    if not interpreter:
        require("no Python 3.6 here")
    full_shm_python(tmp_path / "bin", interpreter)
    env = {**host_env, "PATH": f"{tmp_path / 'bin'}:{host_env['PATH']}"}
    new = ca.issue([HOSTNAME])
    result = install(apache, put_secret(new), env)
    assert result.ok, result.stdout + result.stderr
    assert served_serial(apache) == new.certificate.serial_number


# 12. SIGTERM during the finishers ------------------------------------------------------------------------------


def terminating_aws(tmp_path: Path, host_env: dict[str, str]) -> dict[str, str]:
    """An ``aws`` that sends SIGTERM to the installer (its parent) when asked to put inventory,
    as a service manager stopping the agent's command would, then does the real call."""
    real = Path(host_env["PATH"].split(":")[0]) / "aws"
    wrapper_dir = tmp_path / "termbin"
    wrapper_dir.mkdir(mode=0o755)
    wrapper = wrapper_dir / "aws"
    wrapper.write_text(
        f'#!/bin/sh\ncase "$*" in *put-inventory*) kill -TERM "$PPID"; sleep 0.2;; esac\nexec {real} "$@"\n'
    )
    wrapper.chmod(0o755)
    return {**host_env, "PATH": f"{wrapper_dir}:{host_env['PATH']}"}


def test_17_12_sigterm_during_the_finishers_reports_the_committed_install(
    apache: Apache, ca: LocalCA, put_secret: Any, host_env: dict[str, str], ssm: Any, tmp_path: Path
) -> None:
    """On the starting code: exit 11 "nothing was changed" with the new certificate installed and committed."""
    env = terminating_aws(tmp_path, host_env)
    new = ca.issue([HOSTNAME])
    result = agent_run("RunUpdateTLS", apache, env, SecretArn=put_secret(new))
    clean(result, 0)
    assert "nothing was changed" not in result.stderr and "SIGTERM arrived after the run was decided" in result.stdout
    assert served_serial(apache) == new.certificate.serial_number


def test_17_12_sigterm_while_a_failure_is_recorded_gives_no_traceback(
    apache: Apache, put_secret: Any, host_env: dict[str, str], ssm: Any, tmp_path: Path
) -> None:
    """On the starting code: a Python traceback."""
    env = terminating_aws(tmp_path, host_env)
    result = agent_run("RunUpdateTLS", apache, env, SecretArn=put_secret("not json"))
    clean(result, 3)


# 13. Info items ---------------------------------------------------------------------------------------------


def test_17_13_a_deeply_nested_secret_is_unreadable_not_a_bug(
    apache: Apache, put_secret: Any, host_env: dict[str, str]
) -> None:
    """On the starting code: RecursionError, exit 1 "unexpected"."""
    live = snapshot(apache)
    result = install(apache, put_secret("[" * 30000 + "]" * 30000), host_env)
    clean(result, 3)
    assert snapshot(apache) == live


def test_17_13_a_name_over_255_characters_is_a_bad_parameter(apache: Apache, host_env: dict[str, str]) -> None:
    """On the starting code: exit 10 (ENAMETOOLONG at the first write)."""
    long_name = str(apache.root / "ssl" / "certs" / ("n" * 300 + ".pem"))
    with pytest.raises(DocumentParameterError, match="CertificateFile"):
        install(apache, "arn:aws:secretsmanager:us-east-1:123456789012:secret:x", host_env, CertificateFile=long_name)


# 14. cert.pem was refused everywhere -----------------------------------------------------------------------------


def test_17_14_a_file_named_cert_pem_is_a_target_outside_the_trust_store(
    ca: LocalCA, put_secret: Any, host_env: dict[str, str], tmp_path: Path
) -> None:
    """On the starting code any target named cert.pem was "an OS trust bundle" (exit 2). Apache's
    virtual host here is named "cert", so its certificate file is ssl/certs/cert.pem."""
    require(apache_available())
    server = Apache(tmp_path / "apache-cert", free_port(), hostnames=["cert"])
    server.write_bundle(ca.issue(["cert"]), "cert")
    server.start()
    try:
        assert server.cert_file("cert").name == "cert.pem"
        new = ca.issue(["cert"])
        environment = {**host_env, **server.installer_environment()}
        parameters = {"SecretArn": put_secret(new), **server.document_parameters("cert")}
        result = run_document(INSTALL, parameters, env=environment, timeout=120)
        assert result.ok, result.stderr
        assert "BEGIN CERTIFICATE" in server.cert_file("cert").read_text()
        assert x509.load_pem_x509_certificate(server.cert_file("cert").read_bytes()).serial_number == (
            new.certificate.serial_number
        )
    finally:
        server.stop()


# 8. A SIGKILL between the renames left a mismatched pair ----------------------------------------------------


def combined_apache(apache: Apache) -> Path:
    """Point the Apache's virtual host at one file holding certificate, chain and key (0600)."""
    combined = apache.root / "ssl" / "private" / "combined.pem"
    data = apache.cert_file().read_bytes() + apache.chain_file().read_bytes() + apache.key_file().read_bytes()
    descriptor = os.open(combined, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    text = apache.config.read_text()
    text = text.replace(f'SSLCertificateFile "{apache.cert_file()}"', f'SSLCertificateFile "{combined}"')
    text = text.replace(f'    SSLCertificateKeyFile "{apache.key_file()}"\n', "")
    text = text.replace(f'    SSLCertificateChainFile "{apache.chain_file()}"\n', "")
    apache.config.write_text(text)
    graceful(apache)
    return combined


def graceful(apache: Apache) -> None:
    """A reload by something else (logrotate's postrotate, an operator)."""
    subprocess.run(["apache2", "-f", str(apache.config), "-k", "graceful"], check=True, capture_output=True)
    time.sleep(1.0)


def combined_parameters(combined: Path) -> dict[str, str]:
    return {"CertificateFile": str(combined), "KeyFile": "", "ChainFile": "", "FileLayout": "combined"}


@pytest.mark.parametrize("point", ["change:1", "change:2", "change:3"])
def test_17_8_killed_at_any_rename_of_a_combined_file_apache_survives_a_reload(
    apache: Apache, ca: LocalCA, put_secret: Any, host_env: dict[str, str], point: str
) -> None:
    """The combined layout switches certificate and key with one rename: killed anywhere, the file
    on disk is a whole pair, so a graceful reload by anything else keeps Apache serving. On the
    starting code there was no combined layout (FileLayout is refused), and with three files a
    kill after the certificate's rename made the next reload take Apache down."""
    combined = combined_apache(apache)
    old_serial = served_serial(apache)
    new = ca.issue([HOSTNAME])
    arn = put_secret(new)
    apache.write_installer_config(managed_files=[str(combined)], test_fault={"at": point, "signal": "KILL"})
    killed = install(apache, arn, host_env, **combined_parameters(combined))
    assert code(killed) == -signal.SIGKILL, killed.stdout + killed.stderr
    graceful(apache)  # logrotate, before any certrotate run repairs anything
    assert served_serial(apache) in (old_serial, new.certificate.serial_number)
    apache.write_installer_config(managed_files=[str(combined)])
    result = install(apache, arn, host_env, **combined_parameters(combined))
    assert result.ok, result.stdout + result.stderr
    assert served_serial(apache) == new.certificate.serial_number
    assert combined.stat().st_mode & 0o777 == 0o600
    assert ("file written:" in result.stdout) != ("already installed" in result.stdout)  # killed after the commit
    assert combined.read_text().count("BEGIN CERTIFICATE") == 2 and "PRIVATE KEY" in combined.read_text()
    back = rollback(apache, host_env, **combined_parameters(combined))
    assert back.ok, back.stdout + back.stderr
    assert served_serial(apache) == old_serial


def test_17_8_with_three_files_a_kill_between_the_renames_leaves_a_pair_a_reload_cannot_load(
    apache: Apache, ca: LocalCA, put_secret: Any, host_env: dict[str, str]
) -> None:
    """Why the combined layout exists: the separate layout's window, shown (the next certrotate
    run repairs it; a reload by anything else before that fails)."""
    apache.write_installer_config(test_fault={"at": "change:3", "signal": "KILL"})  # cert renamed, key not yet
    killed = install(apache, put_secret(ca.issue([HOSTNAME])), host_env)
    assert code(killed) == -signal.SIGKILL
    subprocess.run(["apache2", "-f", str(apache.config), "-k", "graceful"], capture_output=True, check=False)
    time.sleep(2.0)
    with pytest.raises(OSError):  # the reload took Apache down: nothing answers
        served_serial(apache)
    apache.write_installer_config()
    repaired = install(apache, put_secret(ca.issue([HOSTNAME])), host_env)  # the next run repairs first
    assert "recovered an interrupted install" in repaired.stdout, repaired.stdout + repaired.stderr
