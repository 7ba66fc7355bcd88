"""Issue 29, "Wrong success": no command reports success that did not happen (console script, moto)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from rotation.emulation.ssm_inventory import ssm_inventory_in_moto
from tests.support import cli

#: One moto server serves the whole session: each test has its own secret prefix and policy parameter.
TEAM = f"payments-{uuid.uuid4().hex[:8]}"
POLICY_PARAMETER = f"/certrotate-{TEAM}/issuance-policy"


def _store_policy(endpoint: str, document: dict[str, object]) -> None:
    cli.client(endpoint, "ssm").put_parameter(
        Name=POLICY_PARAMETER, Value=json.dumps(document), Type="String", Overwrite=True
    )


def _payments_policy(ca: str) -> dict[str, object]:
    rule = {
        "name": "payments",
        "secrets": [f"{TEAM}/*"],
        "ca_arns": [ca],
        "dns_names": ["*.a.example.internal"],
        "max_validity_days": 90,
    }
    return {"version": 1, "rules": [rule]}


@pytest.fixture
def policy_env(endpoint: str, ca: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The payments policy stored, read by the rotation function (this process) and the CLI alike."""
    _store_policy(endpoint, _payments_policy(ca))
    monkeypatch.setenv("CERTROTATE_POLICY_PARAMETER", POLICY_PARAMETER)
    return cli.cli_env(AWS_ENDPOINT_URL=endpoint, CERTROTATE_POLICY_PARAMETER=POLICY_PARAMETER)


def _first_certificate(endpoint: str, name: str) -> str:
    """The serial of the secret's first certificate, once its first rotation (run by moto's thread) is done."""
    sm = cli.client(endpoint, "secretsmanager")
    for _ in range(200):
        value = json.loads(sm.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")["SecretString"])
        if value.get("CERTIFICATE_SERIAL"):
            return str(value["CERTIFICATE_SERIAL"])
        time.sleep(0.1)
    return ""


# 1. validate and create-secret evaluate the stored issuance policy, every violation, nothing created.


def test_create_secret_refuses_every_violation_of_the_stored_policy_and_creates_nothing(
    endpoint: str, ca: str, policy_env: dict[str, str]
) -> None:
    result = cli.run(
        "create-secret",
        f"{TEAM}/api",
        "--type",
        "PCA_ISSUED",
        "--ca-arn",
        ca,
        "--common-name",
        "api.other.example",
        "--san",
        "www.other.example",
        "--rotation-lambda-arn",
        cli.LAMBDA,
        "--schedule",
        "rate(30 days)",
        env=policy_env,
    )
    assert result.returncode == 3, result.stdout + result.stderr
    errors = cli.error_lines(result)
    assert any("COMMON_NAME='api.other.example'" in e and "rule 'payments'" in e for e in errors), errors
    assert any("SUBJECT_ALTERNATIVE_NAMES='www.other.example'" in e for e in errors), errors
    # VALIDITY was not given: the 365-day default is over the rule's 90 days, and the line says so.
    assert any("VALIDITY" in e and "default" in e and "at most 90 days" in e for e in errors), errors
    assert len(errors) == 3
    assert "first certificate is issued" not in result.stdout
    listed = cli.client(policy_env["AWS_ENDPOINT_URL"], "secretsmanager").list_secrets()["SecretList"]
    assert f"{TEAM}/api" not in [s["Name"] for s in listed]


def test_create_secret_inside_the_rule_creates_and_the_rotation_issues(
    endpoint: str, ca: str, policy_env: dict[str, str]
) -> None:
    # moto's Private CA issues 365 days whatever VALIDITY says: this rule allows them.
    _store_policy(endpoint, {"version": 1, "rules": [{**_payments_policy(ca)["rules"][0], "max_validity_days": 397}]})  # type: ignore[index]
    result = cli.run(
        "create-secret",
        f"{TEAM}/ok",
        "--type",
        "PCA_ISSUED",
        "--ca-arn",
        ca,
        "--common-name",
        "api.a.example.internal",
        "--validity",
        "365",
        "--rotation-lambda-arn",
        cli.LAMBDA,
        env=policy_env,
    )
    assert result.returncode == 0, result.stderr
    assert f"issuance policy (ssm:{POLICY_PARAMETER} version " in result.stdout, result.stdout
    assert "): rule 'payments'" in result.stdout
    assert _first_certificate(endpoint, f"{TEAM}/ok"), "the first rotation issued under the rule"


def test_validate_of_a_secret_outside_its_rule_lists_every_violation(
    endpoint: str, ca: str, policy_env: dict[str, str]
) -> None:
    cli.make_secret(endpoint, f"{TEAM}/web", cli.pca_fields(ca, COMMON_NAME="web.other.example", VALIDITY="120"))
    result = cli.run("validate", f"{TEAM}/web", env=policy_env)
    assert result.returncode == 3, result.stdout
    errors = cli.error_lines(result)
    assert len(errors) == 2 and "COMMON_NAME" in errors[0] and "VALIDITY='120 DAYS'" in errors[1], errors
    assert "valid:" not in result.stdout
    as_json = cli.run("validate", f"{TEAM}/web", "--output", "json", env=policy_env)
    document = json.loads(as_json.stdout)
    assert document["valid"] is False and [p["field"] for p in document["problems"]] == ["COMMON_NAME", "VALIDITY"]
    assert document["policy"].endswith("rule 'payments'")


def test_validate_file_with_a_name_checks_the_rule_of_that_name(
    endpoint: str, ca: str, policy_env: dict[str, str], tmp_path: Path
) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(cli.pca_fields(ca, COMMON_NAME="web.a.example.internal", VALIDITY="30")))
    assert cli.run("validate", str(spec), "--name", f"{TEAM}/web", env=policy_env).returncode == 0
    orphan = cli.run("validate", str(spec), "--name", "billing/web", env=policy_env)
    assert orphan.returncode == 3 and "no rule of the issuance policy" in cli.the_error(orphan)


# 3. A certificate not yet valid is a health flag, shows its not-before, and fails status --check.


def test_a_certificate_not_yet_valid_is_flagged_shown_and_fails_check(endpoint: str, ca: str) -> None:
    import datetime as dt

    from tests.support.certs import LocalCA

    start = dt.datetime.now(dt.UTC) + dt.timedelta(days=10)
    bundle = LocalCA().issue(["future.example.internal"], not_before=start, lifetime=dt.timedelta(days=100))
    fields = {**cli.pca_fields(ca, COMMON_NAME="future.example.internal"), "CERTIFICATE_PEM": bundle.certificate_pem}
    cli.make_secret(endpoint, f"future-{TEAM}/web", fields)
    check = cli.certrotate("status", "--prefix", f"future-{TEAM}/", "--check", "--output", "json", endpoint=endpoint)
    assert check.returncode == 1, check.stdout + check.stderr
    (row,) = json.loads(check.stdout)
    assert "not-yet-valid" in row["flags"] and row["not_before"] == start.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert f"future-{TEAM}/web (not-yet-valid" in check.stderr
    detail = cli.certrotate("status", f"future-{TEAM}/web", endpoint=endpoint)
    (line,) = [x for x in detail.stdout.splitlines() if x.startswith("not before")]
    assert start.strftime("%Y-%m-%dT%H:%M:%SZ") in line, detail.stdout
    assert "not-yet-valid" in detail.stdout


# 2. The sandbox's deploy to instances that do not exist fails as SSM fails it.


@pytest.mark.slow
def test_the_sandbox_refuses_a_deploy_to_instances_that_are_not_managed_nodes() -> None:
    import os
    import re
    import signal

    started = cli.run("sandbox", "--detach", timeout=180)
    assert started.returncode == 0, started.stderr
    exports = dict(re.findall(r"^export (\w+)=(\S+)$", started.stdout, re.MULTILINE))
    pid = int(exports["CERTROTATE_SANDBOX_PID"])
    env = cli.cli_env(**{k: v.strip("'") for k, v in exports.items() if k.startswith("AWS_")})
    try:
        created = cli.run(
            "create-secret",
            "payments/web",
            "--type",
            "PCA_ISSUED",
            "--ca-arn",
            exports["CA_ARN"].strip("'"),
            "--common-name",
            "web.example.internal",
            "--rotation-lambda-arn",
            exports["ROTATION_LAMBDA_ARN"].strip("'"),
            env=env,
        )
        assert created.returncode == 0, created.stderr
        assert _first_certificate(env["AWS_ENDPOINT_URL"], "payments/web")
        ids = cli.run("deploy", "payments/web", "--targets", "i-0123456789abcdef0,i-0fedcba9876543210", env=env)
        assert ids.returncode == 3, ids.stdout + ids.stderr
        error = cli.the_error(ids)
        assert "InvalidInstanceId" in error and "i-0123456789abcdef0" in error and "certrotate sandbox" in error
        assert "done" not in ids.stdout + ids.stderr and "Success" not in ids.stdout
        tagged = cli.run("deploy", "payments/web", "--targets", "tag:certrotate=web", env=env)
        assert tagged.returncode == 1 and "reached no instance" in cli.the_error(tagged)
    finally:
        os.kill(pid, signal.SIGTERM)


# 4. policy validate --output json prints a document that is stored as it is, validates, and issues.


def test_the_json_of_policy_validate_is_a_policy_that_validates_stores_and_issues(
    endpoint: str, ca: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "policy.json"
    rule = {"name": "payments", "secrets": [f"{TEAM}/*"], "ca_arns": [ca], "dns_names": [".Example.Internal."]}
    source.write_text(json.dumps({"version": 1, "rules": [rule]}))
    printed = cli.run("policy", "validate", str(source), "--output", "json")
    assert printed.returncode == 0, printed.stderr
    normalized = tmp_path / "normalized.json"
    normalized.write_text(printed.stdout)
    again = cli.run("policy", "validate", str(normalized), "--output", "json")
    assert again.returncode == 0 and json.loads(again.stdout) == json.loads(printed.stdout)
    # Stored exactly as printed, the rotation function reads it and issues under it.
    cli.client(endpoint, "ssm").put_parameter(
        Name=POLICY_PARAMETER, Value=printed.stdout, Type="String", Overwrite=True
    )
    monkeypatch.setenv("CERTROTATE_POLICY_PARAMETER", POLICY_PARAMETER)
    arn = cli.make_secret(endpoint, f"{TEAM}/round-trip", cli.pca_fields(ca, COMMON_NAME="web.example.internal"))
    cli.enable_rotation(endpoint, arn)
    assert _first_certificate(endpoint, f"{TEAM}/round-trip"), "a rotation under the stored document issued"


# 5. Every CA ARN's syntax is checked; --check-cas asks Private CA.


def test_policy_validate_refuses_an_arn_with_an_ellipsis_and_checks_cas_on_request(
    endpoint: str, ca: str, tmp_path: Path
) -> None:
    readme_example = "arn:aws:acm-pca:eu-west-1:111122223333:certificate-authority/…"
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"version": 1, "rules": [{"name": "a", "secrets": ["*"], "ca_arns": [readme_example]}]}))
    refused = cli.run("policy", "validate", str(path))
    assert refused.returncode == 3
    line = cli.one_error_line(refused)
    assert "rules[0].ca_arns" in line and "certificate-authority/…" in line and "<12-digit account>" in line
    missing = ca[:-12] + "000000000000"
    path.write_text(json.dumps({"version": 1, "rules": [{"name": "a", "secrets": ["*"], "ca_arns": [ca, missing]}]}))
    env = cli.cli_env(AWS_ENDPOINT_URL=endpoint)
    assert cli.run("policy", "validate", str(path), env=env).returncode == 0  # syntax alone: both well-formed
    checked = cli.run("policy", "validate", str(path), "--check-cas", env=env)
    assert checked.returncode == 3
    line = cli.one_error_line(checked)
    assert missing in line and "ResourceNotFoundException" in line and ca not in line.replace(missing, "")
    cli.client(endpoint, "acm-pca").update_certificate_authority(CertificateAuthorityArn=ca, Status="DISABLED")
    disabled = cli.run("policy", "validate", str(path), "--check-cas", env=env)
    assert len(cli.error_lines(disabled)) == 2 and "DISABLED, not ACTIVE" in disabled.stderr


# 6. An early Ctrl-C is the one line and exit 130, whenever certrotate's own code has started.

#: Moments of the start after the console script's module began, each known by what the interpreter
#: reports (PYTHONVERBOSE: a line per module it loads), not by a delay: the first import of the
#: ``signal`` module (the old entry point imported it before its handler existed), the command
#: line's import, the import of the commands' modules (cryptography's binding). Before the console
#: module's first line is the interpreter's own start (site, .pth files), which no package reaches.
_MOMENTS = ("/signal.py", "rotation/cli/__init__.py", "bindings/_rust.abi3.so'")


def _interrupt_at(marker: str, url: str) -> tuple[int, list[str]]:
    """Start ``certrotate status``; SIGINT once the interpreter reports ``marker``; exit code and own lines."""
    import signal
    import subprocess

    process = subprocess.Popen(
        [*cli.script(), "status", "--endpoint-url", url, "--read-timeout", "60"],
        env=cli.cli_env(PYTHONVERBOSE="1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if line.rstrip().endswith(marker):
            process.send_signal(signal.SIGINT)
            break
    rest = process.stderr.read()
    code = process.wait(timeout=60)
    assert seen[-1].rstrip().endswith(marker), f"{marker} never loaded"
    own = [x for x in rest.splitlines() if x.strip() and not x.startswith(("#", "import "))]
    return code, own


def test_a_ctrl_c_at_each_moment_of_the_start_is_one_line_and_130() -> None:
    import signal
    import socket
    import subprocess

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        for marker in _MOMENTS:
            assert _interrupt_at(marker, url) == (130, ["certrotate: interrupted"]), marker
        # Waiting on AWS: the request reached the endpoint, which never answers.
        process = subprocess.Popen(
            [*cli.script(), "status", "--endpoint-url", url, "--read-timeout", "60"],
            env=cli.cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        server.settimeout(60)
        connection, _ = server.accept()
        with connection:
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=60)
    assert (process.returncode, stderr) == (130, "certrotate: interrupted\n")


# Friction: a reader gone (`certrotate … | head`) is exit 141, quietly, never 1 (a failed check).


@pytest.mark.parametrize(
    "command",
    [
        ("status", "{name}"),
        ("status", "--prefix", "{prefix}"),
        ("hosts", "{name}"),
        ("revoke", "{name}", "--compromised", "--dry-run"),
        ("status", "--prefix", "{prefix}", "--output", "json"),
    ],
)
def test_a_reader_that_is_gone_is_exit_141_and_quiet(
    endpoint: str, ca: str, command: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    import rotation.handler
    from rotation.fleet.ledger import LEDGER_TABLE_ENV, create_table

    name = f"pipe-{TEAM}/web"
    if command[0] == "revoke":  # revoke finds the certificate in the issuance ledger: its rotation records it
        name, table = f"pipe-{TEAM}/ledgered", "certrotate-ledger-pipe"
        monkeypatch.setenv(LEDGER_TABLE_ENV, table)
        rotation.handler.reset()
        if table not in cli.client(endpoint, "dynamodb").list_tables()["TableNames"]:  # one moto server per session
            create_table(cli.client(endpoint, "dynamodb"), table)
        command = (*command, "--ledger-table", table)
    if not cli.client(endpoint, "secretsmanager").list_secrets(Filters=[{"Key": "name", "Values": [name]}])[
        "SecretList"
    ]:
        cli.rotated(endpoint, name, ca)
    rotation.handler.reset()
    argv = [part.format(name=name, prefix=f"pipe-{TEAM}/") for part in command]
    with ssm_inventory_in_moto():  # hosts and revoke read the fleet's records
        process = subprocess.Popen(
            [*cli.script(), *argv, "--endpoint-url", endpoint],
            env=cli.cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()  # the reader is gone before certrotate writes its first line
        stderr = process.stderr.read()
        assert process.wait(timeout=120) == 141, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr and "error" not in stderr, stderr


def test_a_bad_number_names_the_unit_of_its_flag() -> None:
    window = cli.run("status", "--window-days", "abc")
    assert window.returncode == 2 and "--window-days 'abc': expected a number of days greater than 0" in window.stderr
    interval = cli.run("hosts", "--interval", "abc")
    assert "expected a number of minutes" in interval.stderr
    timeout = cli.run("rotate", "x", "--timeout", "abc")
    assert "expected a number of seconds" in timeout.stderr


# Friction: status output.


def test_status_names_keys_as_private_ca_does_and_flags_what_needs_attention(endpoint: str, ca: str) -> None:
    from tests.support.certs import LocalCA

    prefix = f"health-{TEAM}/"
    original = {"CERTIFICATE_TYPE": "PCA_ISSUED", "CA_ARN": ca, "COMMON_NAME": "old.example.internal"}
    cli.make_secret(endpoint, prefix + "original", {**original, "KEY_ALGORITHM": "TYPE_RSA", "KEY_SIZE": "2048"})
    bundle = LocalCA().issue(["bare.example.internal"])  # an EC P-256 certificate and no metadata
    cli.make_secret(endpoint, prefix + "bare", {**cli.pca_fields(ca), "CERTIFICATE_PEM": bundle.certificate_pem})
    cli.make_secret(endpoint, prefix + "invalid", cli.pca_fields(ca, KEY_ALGORITHM="TYPE_DSA"))
    key = bundle.private_key_pem
    cli.make_secret(endpoint, prefix + "pasted", cli.pca_fields(ca, COMMON_NAME=key))
    result = cli.certrotate("status", "--prefix", prefix, "--check", "--output", "json", endpoint=endpoint)
    rows = {r["name"].removeprefix(prefix): r for r in json.loads(result.stdout)}
    assert rows["original"]["key_algorithm"] == "RSA_2048"
    assert rows["bare"]["key_algorithm"] == "EC_prime256v1"
    assert "invalid-spec" in rows["invalid"]["flags"]
    assert any("KEY_ALGORITHM='TYPE_DSA'" in p for p in rows["invalid"]["problems"])
    # No certificate and rotation off: nothing will ever issue one, so --check fails for it too.
    assert result.returncode == 1
    assert f"{prefix}original (no-certificate, rotation-disabled)" in result.stderr
    assert f"{prefix}invalid (invalid-spec" in result.stderr
    detail = cli.certrotate("status", prefix + "pasted", endpoint=endpoint)
    lines = detail.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("subject"))
    assert "<redacted PEM>" in lines[at] and lines[at + 1].startswith("names"), detail.stdout


def test_validate_file_refuses_what_create_secret_from_file_refuses(tmp_path: Path) -> None:
    from tests.support.certs import CA_ARN, LocalCA

    key = LocalCA().issue(["x.example.internal"]).private_key_pem
    fields = {**cli.pca_fields(CA_ARN), "PRIVATE_KEY_PEM": key, "CERTIFICATE_PEM": key}
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(fields))
    alone = cli.run("validate", str(spec), "--offline")
    bulk_file = tmp_path / "specs.jsonl"
    bulk_file.write_text(json.dumps({"name": "parity/web", "spec": fields}) + "\n")
    bulk = cli.run("create-secret", "--from-file", str(bulk_file), "--dry-run")
    assert alone.returncode == bulk.returncode == 3
    for field in ("PRIVATE_KEY_PEM", "CERTIFICATE_PEM"):
        assert any(f"{field}='(not shown)'" in line for line in cli.error_lines(alone)), alone.stderr
        assert any(f"spec.{field}='(not shown)'" in line for line in cli.error_lines(bulk)), bulk.stderr


def test_doctor_reports_a_spec_problem_on_the_secrets_line_not_its_cas(endpoint: str, ca: str) -> None:
    prefix = f"doctor-{TEAM}/"
    cli.make_secret(endpoint, prefix + "good", cli.pca_fields(ca))
    cli.make_secret(endpoint, prefix + "bad", cli.pca_fields(ca, KEY_ALGORITHM="TYPE_DSA"))
    result = cli.certrotate("doctor", "--prefix", prefix, endpoint=endpoint)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    (ca_line,) = [line for line in lines if f"CA {ca}" in line and "revocation/" not in line]  # not its CRL's lines
    assert ca_line.startswith("ok") and "TYPE_DSA" not in ca_line, ca_line
    (bad_line,) = [line for line in lines if f"secret {prefix}bad:" in line and "TYPE_DSA" in line]
    assert bad_line.startswith("FAIL") and f"certrotate validate {prefix}bad" in bad_line


# Friction: error messages that say where the call went and what to do next.


def test_an_arn_of_another_region_or_account_says_which_and_the_fix(endpoint: str) -> None:
    other_region = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:payments/web-AbCdEf"
    result = cli.certrotate("status", other_region, endpoint=endpoint)
    assert result.returncode == 3
    line = cli.one_error_line(result)
    assert "the ARN names region eu-west-1, account 123456789012 but the call went to region us-east-1" in line
    assert "next: --region eu-west-1" in line
    other_account = "arn:aws:secretsmanager:us-east-1:999988887777:secret:payments/web-AbCdEf"
    line = cli.one_error_line(cli.certrotate("rotate", other_account, endpoint=endpoint))
    assert "account 999988887777" in line and "credentials of account 999988887777" in line


def test_connection_refused_says_what_to_do_next() -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = cli.run("status", "--endpoint-url", f"http://127.0.0.1:{port}", "--connect-timeout", "2")
    assert result.returncode == 4
    line = cli.one_error_line(result)
    assert "EndpointConnectionError" in line and "next: start the sandbox" in line


def test_the_deploy_table_keeps_the_arn_whole_and_claims_no_serial_it_did_not_see(endpoint: str, ca: str) -> None:
    """moto (without the sandbox's emulation) reports every invocation Success and runs nothing."""
    arn = cli.rotated(endpoint, f"deploy-{TEAM}/web", ca)
    result = cli.run(
        "deploy", arn, "--targets", "i-0123456789abcdef0", "--endpoint-url", endpoint, env=cli.cli_env(COLUMNS="60")
    )
    assert result.returncode == 0, result.stderr
    assert f"deploy {arn}" in result.stdout.splitlines()
    assert "not reported" in result.stdout and " - " not in result.stdout, result.stdout


# Friction: the sandbox.


def test_a_foreground_sandbox_stopped_by_ctrl_c_exits_130() -> None:
    import signal
    import subprocess

    process = subprocess.Popen(
        [*cli.script(), "sandbox"], env=cli.cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("# certrotate sandbox ready"):
            break
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-2:] == ["certrotate sandbox stopped", "certrotate: interrupted"], stderr


def test_a_detached_sandbox_leaves_no_log_behind_when_it_stops() -> None:
    import os
    import re
    import signal

    started = cli.run("sandbox", "--detach", timeout=180)
    assert started.returncode == 0, started.stderr
    pid = int(re.findall(r"CERTROTATE_SANDBOX_PID=(\d+)", started.stdout)[0])
    log = Path(re.findall(r"log (\S+)\)", started.stderr)[0])
    assert log.exists()
    os.kill(pid, signal.SIGTERM)
    for _ in range(600):  # until the process is gone (its own work, not a time limit of ours)
        if not log.exists():
            break
        time.sleep(0.1)
    assert not log.exists(), log.read_text()


def test_status_shows_the_schedule_and_next_rotation_create_secret_set(endpoint: str, ca: str) -> None:
    name = f"schedule-{TEAM}/web"
    created = cli.certrotate(
        "create-secret", name, "--type", "PCA_ISSUED", "--ca-arn", ca, "--common-name", "web.example.internal",
        "--rotation-lambda-arn", cli.LAMBDA, "--schedule", "rate(30 days)", endpoint=endpoint,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert _first_certificate(endpoint, name)
    (detail,) = json.loads(cli.certrotate("status", name, "--output", "json", endpoint=endpoint).stdout)
    assert detail["rotation_schedule"] == "rate(30 days)" and detail["rotation_enabled"] is True
    assert detail["next_rotation"][:4].isdigit(), detail


def test_an_interrupted_detach_leaves_no_sandbox_and_no_log(tmp_path: Path) -> None:
    import signal
    import subprocess

    logs = tmp_path  # its own temporary directory: other tests' sandboxes write their logs elsewhere
    launcher = subprocess.Popen(
        [*cli.script(), "sandbox", "--detach"],
        env=cli.cli_env(TMPDIR=str(tmp_path)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children")
    child = ""
    while not child and launcher.poll() is None:  # until the launcher has started the sandbox
        child = children.read_text().strip() if children.exists() else ""
    assert child, "the launcher started no sandbox"
    launcher.send_signal(signal.SIGINT)
    _, stderr = launcher.communicate(timeout=120)
    assert launcher.returncode == 130 and stderr.strip().endswith("certrotate: interrupted"), stderr
    assert "BrokenPipe" not in stderr and "Traceback" not in stderr
    assert not Path(f"/proc/{child.split()[0]}").exists()  # killed and reaped: nothing runs on, unknown
    assert not list(logs.glob("certrotate-sandbox-*.log"))


def test_create_secret_from_file_checks_each_line_against_the_rule_of_its_name(
    endpoint: str, ca: str, policy_env: dict[str, str], tmp_path: Path
) -> None:
    lines = [
        {"name": f"{TEAM}/in", "spec": cli.pca_fields(ca, COMMON_NAME="in.a.example.internal", VALIDITY="90")},
        {"name": f"{TEAM}/out", "spec": cli.pca_fields(ca, COMMON_NAME="out.other.example")},
    ]
    path = tmp_path / "specs.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = cli.run("create-secret", "--from-file", str(path), env=policy_env)
    assert result.returncode == 3, result.stdout + result.stderr
    errors = cli.error_lines(result)
    assert len(errors) == 2 and all("line 2" in e for e in errors), errors
    assert "COMMON_NAME='out.other.example'" in errors[0] and "VALIDITY" in errors[1] and "default" in errors[1]
    names = [s["Name"] for s in cli.client(endpoint, "secretsmanager").list_secrets()["SecretList"]]
    assert f"{TEAM}/in" not in names and f"{TEAM}/out" not in names  # nothing created
