"""The command line an operator can trust (issue 19), through the installed console script against
moto's server: nothing secret printed, nothing expired missed, nothing cut, errors that say what
to do next. Each test plays the operator (or the secret's writer) and fails on the code before it.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from rotation.emulation.ssm_inventory import ssm_inventory_in_moto
from rotation.fleet.view import INVENTORY_TYPE
from rotation.issuance.spec import END_ENTITY_TEMPLATES
from tests.support import cli
from tests.support.certs import LocalCA
from tests.support.cli import certrotate, client, error_lines, make_secret, pca_fields, rotated, the_error


def _unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}/"


def _key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _body(pem: str) -> str:
    """A key's base64 body without its armour, on one line (what a careless paste leaves)."""
    return "".join(line for line in pem.splitlines() if not line.startswith("-----"))


def _no_key(result: subprocess.CompletedProcess[str], *secrets: str) -> None:
    shown = result.stdout + result.stderr
    for secret in secrets:
        for line in secret.splitlines():
            if len(line) >= 40 and not line.startswith("-----"):
                assert line not in shown, "a line of key material was printed"


# 1. Key material pasted into a secret's fields is never printed, by any command, in any format.


@pytest.mark.slow
def test_key_material_in_a_secrets_fields_is_never_printed(endpoint: str, ca: str) -> None:
    prefix = _unique("leak")
    pem, body = _key_pem(), _body(_key_pem())
    armoured = make_secret(endpoint, f"{prefix}armoured", pca_fields(ca, COMMON_NAME=pem))
    bare = make_secret(
        endpoint,
        f"{prefix}bare",
        pca_fields(ca, COMMON_NAME=body, SUBJECT_ALTERNATIVE_NAMES=body, CERTIFICATE_NOT_AFTER=body),
    )
    for args in (
        ("status", armoured),
        ("status", bare),
        ("status", "--prefix", prefix),
        ("status", "--prefix", prefix, "--check", "--output", "json"),
        ("status", armoured, bare, "--output", "json"),
        ("validate", armoured),
        ("validate", bare),
        ("validate", bare, "--output", "json"),
        ("doctor", "--prefix", prefix),
        ("doctor", "--prefix", prefix, "--output", "json"),
    ):
        result = certrotate(*args, endpoint=endpoint)  # asserts no "PRIVATE KEY" anywhere
        _no_key(result, pem, body)
        assert result.returncode in (0, 1, 3), result.stderr
    shown = certrotate("status", armoured, bare, "--output", "json", endpoint=endpoint).stdout
    assert "<redacted PEM>" in shown and "<redacted base64>" in shown


def test_key_material_in_a_host_record_is_never_printed(moto_endpoint: str) -> None:
    pem = _key_pem()
    bundle = LocalCA(name="Leak CA").issue(["www.certrotate.test"])
    prefix = _unique("hostleak")
    fields = {"CERTIFICATE_TYPE": "PCA_ISSUED", "COMMON_NAME": "www.certrotate.test", **bundle.to_fields()}
    arn = make_secret(moto_endpoint, f"{prefix}www", fields)
    record = {
        "SecretArn": arn,
        "VersionStage": "AWSCURRENT",
        "CertificateFile": "/etc/ssl/certs/www.pem",
        "Status": "failed",
        "ExitCode": "6",
        "Message": f"apache said {pem}",
        "RecordedAt": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Serial": bundle.serial_hex,
        "Subject": _body(pem),
    }
    with ssm_inventory_in_moto():
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        item = {"TypeName": INVENTORY_TYPE, "SchemaVersion": "1.0", "CaptureTime": now, "Content": [record]}
        client(moto_endpoint, "ssm").put_inventory(InstanceId="i-0000000000000leak", Items=[item])
        for args in (("hosts", "--prefix", prefix), ("hosts", "--prefix", prefix, "--output", "json")):
            result = certrotate(*args, endpoint=moto_endpoint)
            _no_key(result, pem)


# 2. A certificate without its metadata (the original sample's format) or with metadata that lies.


def _certificate_only(ca: LocalCA, **lifetime: Any) -> dict[str, str]:
    bundle = ca.issue(["old.example.internal"], **lifetime)
    return {
        "CERTIFICATE_TYPE": "PCA_ISSUED",
        "CA_ARN": "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/x",
        "COMMON_NAME": "old.example.internal",
        "CERTIFICATE_PEM": bundle.certificate_pem,
        "CERTIFICATE_CHAIN_PEM": bundle.chain_pem,
    }


def test_an_expired_certificate_without_metadata_is_flagged_and_fails_the_check(moto_endpoint: str) -> None:
    local = LocalCA(name="Sample CA")
    prefix = _unique("sample")
    five_days_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=95)
    make_secret(moto_endpoint, f"{prefix}expired", _certificate_only(local, not_before=five_days_ago))
    soon = dt.datetime.now(dt.UTC) - dt.timedelta(days=80)
    make_secret(moto_endpoint, f"{prefix}expiring", _certificate_only(local, not_before=soon))
    result = certrotate("status", "--prefix", prefix, "--check", "--output", "json", endpoint=moto_endpoint)
    assert result.returncode == 1
    rows = {row["name"].removeprefix(prefix): row for row in json.loads(result.stdout)}
    assert "expired" in rows["expired"]["flags"] and "no-certificate" not in rows["expired"]["flags"]
    assert -6 < rows["expired"]["days_to_expiry"] < -4
    assert "expiring" in rows["expiring"]["flags"] and 9 < rows["expiring"]["days_to_expiry"] < 11
    assert "expired" in result.stderr and f"{prefix}expired" in result.stderr


def test_metadata_that_disagrees_with_the_certificate_loses(moto_endpoint: str) -> None:
    local = LocalCA(name="Liar CA")
    prefix = _unique("liar")
    fields = _certificate_only(local, not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=91))
    fields["CERTIFICATE_NOT_AFTER"] = "2099-01-01T00:00:00Z"  # the writer says fine; the certificate has expired
    arn = make_secret(moto_endpoint, f"{prefix}web", fields)
    result = certrotate("status", arn, "--check", "--output", "json", endpoint=moto_endpoint)
    assert result.returncode == 1
    [row] = json.loads(result.stdout)
    assert {"expired", "bad-metadata"} <= set(row["flags"])
    assert row["not_after"] != "2099-01-01T00:00:00Z"
    assert any("disagrees with the certificate" in p for p in row["problems"])


# 3. Never cut a command the user must paste.


def test_the_stuck_rotation_fix_is_whole_with_a_long_name(endpoint: str, ca: str) -> None:
    name = "stuck/" + "n" * 490
    arn = rotated(endpoint, name, ca)
    sm = client(endpoint, "secretsmanager")
    pending = str(uuid.uuid4())
    sm.put_secret_value(SecretId=arn, ClientRequestToken=pending, SecretString="{}", VersionStages=["AWSPENDING"])
    result = certrotate("rotate", name, endpoint=endpoint)
    assert result.returncode == 3
    error = the_error(result)
    fix = (
        f"aws secretsmanager update-secret-version-stage --secret-id {arn} --version-stage AWSPENDING "
        f"--remove-from-version-id {pending}"
    )
    assert fix in error


def test_validate_lists_every_allowed_template_whole(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    fields = pca_fields(
        "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/x",
        TEMPLATE_ARN="arn:aws:acm-pca:::template/SubordinateCACertificate_PathLen0/V1",
        COMMON_NAME="bad name",
    )
    spec.write_text(json.dumps(fields))
    result = certrotate("validate", str(spec), "--offline")
    assert result.returncode == 3
    [template] = [line for line in error_lines(result) if "TEMPLATE_ARN=" in line]
    for allowed in END_ENTITY_TEMPLATES:
        assert f"arn:aws:acm-pca:::template/{allowed}" in template
    assert template.endswith(f"template/{END_ENTITY_TEMPLATES[-1]}")


# 6. --debug adds the traceback and keeps the line and the exit code.


def test_debug_shows_the_traceback_then_the_same_line_and_code(endpoint: str) -> None:
    plain = certrotate("rotate", "no/such/secret", endpoint=endpoint)
    debug = subprocess.run(
        [*cli.script(), "rotate", "no/such/secret", "--debug", "--endpoint-url", endpoint],
        capture_output=True,
        text=True,
        timeout=60,
        env=cli.cli_env(),
        check=False,
    )
    assert plain.returncode == debug.returncode == 3
    assert "Traceback" in debug.stderr
    assert debug.stderr.rstrip().splitlines()[-1] == plain.stderr.rstrip().splitlines()[-1]


# 7. validate --output json says "invalid" on stdout, with every problem as data.


def test_validate_json_of_an_invalid_spec_lists_the_problems(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(pca_fields("arn:aws:acm-pca:us-east-1:1:certificate-authority/x", KEY_ALGORITHM="DSA")))
    result = certrotate("validate", str(spec), "--offline", "--output", "json")
    assert result.returncode == 3
    document = json.loads(result.stdout)
    assert document["valid"] is False
    problems = {p["field"]: p for p in document["problems"]}
    assert problems["KEY_ALGORITHM"]["value"] == "DSA"
    assert "RSA_2048" in problems["KEY_ALGORITHM"]["allowed"]
    assert error_lines(result)  # the error lines on stderr, as without --output json


# 9. One secret without a value does not hide the others.


@pytest.mark.slow
def test_a_value_less_secret_is_flagged_on_its_own_row(endpoint: str, ca: str) -> None:
    prefix = _unique("valueless")
    rotated(endpoint, f"{prefix}good", ca)
    sm = client(endpoint, "secretsmanager")
    sm.create_secret(Name=f"{prefix}empty")
    result = certrotate("status", "--prefix", prefix, "--output", "json", endpoint=endpoint)
    assert result.returncode == 0, result.stderr
    rows = {row["name"].removeprefix(prefix): row for row in json.loads(result.stdout)}
    assert "unreadable" in rows["empty"]["flags"]
    assert rows["good"]["serial"]
    checked = certrotate("status", "--prefix", prefix, "--check", endpoint=endpoint)
    assert checked.returncode == 1 and f"{prefix}empty" in checked.stderr


# 4. The region hint names a variable botocore reads, and AWS_REGION (which botocore ignores) is honoured.


def test_aws_region_is_honoured_and_the_hint_names_aws_default_region(endpoint: str) -> None:
    env = cli.cli_env()
    del env["AWS_DEFAULT_REGION"]
    regional = cli.run("status", "--endpoint-url", endpoint, "--output", "json", env={**env, "AWS_REGION": "us-east-1"})
    assert regional.returncode == 0, regional.stderr
    json.loads(regional.stdout)
    missing = cli.run("status", "--endpoint-url", endpoint, env=env)
    assert missing.returncode == 4
    line = cli.one_error_line(missing)
    assert "AWS_DEFAULT_REGION" in line and "--region" in line


# 5. Readable at 80 columns: one line per host, problems first, a state filter; ledger serials whole.


def _host_record(arn: str, bundle: Any, instance: str, status: str) -> dict[str, str]:
    return {
        "SecretArn": arn,
        "VersionStage": "AWSCURRENT",
        "CertificateFile": "/etc/apache2/ssl/payments-web-certificate-with-a-long-name.pem",
        "KeyFile": "/etc/apache2/ssl/payments-web.key",
        "ChainFile": "/etc/apache2/ssl/payments-web-chain.pem",
        "HttpsPort": "443",
        "Status": status,
        "ExitCode": "6" if status == "failed" else "0",
        "Message": "apachectl configtest failed: SSLCertificateFile not readable" if status == "failed" else "",
        "RecordedAt": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Serial": bundle.serial_hex,
        "NotAfter": "2099-01-01T00:00:00Z",
        "FingerprintSha256": bundle.fingerprint_sha256.upper(),
        "Subject": "www.certrotate.test",
    }


def test_hosts_fit_80_columns_problems_first_and_filter_by_state(moto_endpoint: str) -> None:
    local = LocalCA(name="Fleet CA")
    old, new = local.issue(["www.certrotate.test"]), local.issue(["www.certrotate.test"])
    prefix = _unique("fleet")
    fields = {"CERTIFICATE_TYPE": "PCA_ISSUED", "COMMON_NAME": "www.certrotate.test", **new.to_fields()}
    arn = make_secret(moto_endpoint, f"{prefix}www", fields)
    instances = [f"i-{n:017x}" for n in range(12)]
    with ssm_inventory_in_moto():
        ssm = client(moto_endpoint, "ssm")
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for n, instance in enumerate(instances):
            status, bundle = ("failed", old) if n == 7 else ("installed", new if n % 2 else old)
            record = _host_record(arn, bundle, instance, status)
            item = {"TypeName": INVENTORY_TYPE, "SchemaVersion": "1.0", "CaptureTime": now, "Content": [record]}
            ssm.put_inventory(InstanceId=instance, Items=[item])
        narrow = cli.cli_env(COLUMNS="80")
        result = cli.run("hosts", "--prefix", prefix, "--endpoint-url", moto_endpoint, env=narrow)
        failed = cli.run("hosts", "--prefix", prefix, "--state", "failed", "--endpoint-url", moto_endpoint, env=narrow)
        bad = cli.run("hosts", "--state", "broken", "--endpoint-url", moto_endpoint, env=narrow)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    rows = [line for line in lines if any(i in line for i in instances)]
    assert len(rows) == len(instances)  # one line per host
    for line in rows:  # the serial whole on the host's line
        assert old.serial_hex in line or new.serial_hex in line
    assert instances[7] in rows[0] and "failed" in rows[0]  # problems first
    states = [next(s for s in ("failed", "older", "current") if s in line) for line in rows]
    assert states == sorted(states, key=["failed", "older", "current"].index)
    assert "--output json for:" in result.stdout  # what a narrow terminal does not show is said
    shown = [line for line in failed.stdout.splitlines() if any(i in line for i in instances)]
    assert len(shown) == 1 and instances[7] in shown[0]
    assert bad.returncode == 2 and "--state 'broken'" in bad.stderr


def test_the_ledger_table_keeps_each_serial_on_one_line_at_80_columns(
    endpoint: str, ca: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rotation.handler
    from rotation.fleet.ledger import create_table

    table = f"ledger-{uuid.uuid4().hex[:8]}"
    create_table(client(endpoint, "dynamodb"), table)
    monkeypatch.setenv("CERTROTATE_LEDGER_TABLE", table)
    rotation.handler.reset()
    arn = rotated(endpoint, f"{_unique('ledger')}web", ca)
    serial = json.loads(client(endpoint, "secretsmanager").get_secret_value(SecretId=arn)["SecretString"])[
        "CERTIFICATE_SERIAL"
    ]
    result = cli.run("status", arn, "--ledger-table", table, "--endpoint-url", endpoint, env=cli.cli_env(COLUMNS="80"))
    assert result.returncode == 0, result.stderr
    assert any(serial in line and "current" in line for line in result.stdout.splitlines())
    assert all(len(line) <= 80 for line in result.stdout.splitlines())


# 10. One rotation per secret however it is named; deploy refuses what rotate refuses.


def test_a_secret_named_twice_rotates_once(endpoint: str, ca: str) -> None:
    name = f"{_unique('twice')}web"
    arn = rotated(endpoint, name, ca)
    result = certrotate("rotate", name, arn, name, "--output", "json", endpoint=endpoint)
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == 1
    sm = client(endpoint, "secretsmanager")
    for _ in range(100):  # the one rotation finishes; a second would have raced it for AWSPENDING
        stages = sm.describe_secret(SecretId=arn)["VersionIdsToStages"]
        if not any("AWSPENDING" in s and "AWSCURRENT" not in s for s in stages.values()):
            break
        time.sleep(0.1)
    assert len(stages) == 3  # the value-less first version, the first certificate's, this rotation's


def test_deploy_refuses_a_plain_text_secret_and_one_without_a_certificate(endpoint: str, ca: str) -> None:
    prefix = _unique("undeployable")
    plain = make_secret(endpoint, f"{prefix}plain", "hunter2")
    fresh = make_secret(endpoint, f"{prefix}fresh", pca_fields(ca))
    for secret, why in ((plain, "not a certificate secret"), (fresh, "has no certificate yet")):
        result = certrotate("deploy", secret, "--targets", "i-0123456789abcdef0", endpoint=endpoint)
        assert result.returncode == 3 and why in cli.one_error_line(result), result.stderr
        assert "hunter2" not in result.stderr
    assert not client(endpoint, "ssm").list_commands()["Commands"] or all(
        c["Parameters"]["SecretArn"][0] not in (plain, fresh)
        for c in client(endpoint, "ssm").list_commands()["Commands"]
    )


# Bulk rotation: a stable order, one summary line per reason, and --all asks first.


def test_rotate_all_summarises_skips_in_a_stable_order_and_needs_yes(endpoint: str, ca: str) -> None:
    # "+" sorts before every other character a name may hold: the first skipped secrets the summary
    # names are these, however many other tests' secrets the shared moto server holds by now.
    prefix = "+" + _unique("bulk")
    for n in (3, 1, 2):
        make_secret(endpoint, f"{prefix}off-{n}", pca_fields(ca))  # rotation not configured: skipped
    rotated(endpoint, f"{prefix}on-b", ca, team="bulk")
    rotated(endpoint, f"{prefix}on-a", ca)
    dry = certrotate("rotate", "--all", "--dry-run", "--output", "json", endpoint=endpoint)
    assert dry.returncode == 0, dry.stderr
    names = [r["secret"] for r in json.loads(dry.stdout) if r["secret"].startswith(prefix)]
    assert names == [f"{prefix}on-a", f"{prefix}on-b"]
    summary = [line for line in dry.stderr.splitlines() if f"{prefix}off-1" in line]
    assert len(summary) == 1 and "rotation is not configured" in summary[0]
    assert summary[0].index("off-1") < summary[0].index("off-2") < summary[0].index("off-3")
    sm = client(endpoint, "secretsmanager")
    before = sm.describe_secret(SecretId=f"{prefix}on-a")["VersionIdsToStages"]
    unconfirmed = certrotate("rotate", "--all", endpoint=endpoint)
    assert unconfirmed.returncode == 2 and "--yes" in cli.the_error(unconfirmed)
    assert sm.describe_secret(SecretId=f"{prefix}on-a")["VersionIdsToStages"] == before  # nothing was rotated


# 11. Ctrl-C: never a traceback, however early; a background run stops on SIGINT too.


@pytest.mark.slow
def test_an_early_ctrl_c_is_the_one_line_never_a_traceback() -> None:
    """Ctrl-C at every moment of the start, 0.1 s apart, until certrotate is waiting on AWS."""
    from tests.functional.test_cli_options import silent_endpoint

    outcomes = []
    with silent_endpoint() as url:
        for tenth in range(1, 16):
            process = subprocess.Popen(
                [*cli.script(), "status", "--endpoint-url", url, "--read-timeout", "60"],
                env=cli.cli_env(PYTHONFAULTHANDLER="1"),  # SIGABRT dumps every thread's stack
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            time.sleep(tenth / 10)
            process.send_signal(signal.SIGINT)
            _, stderr = cli.communicate_or_dump(process, f"SIGINT {tenth / 10:.1f} s after the start")
            outcomes.append((process.returncode, stderr.strip()))
    for code, stderr in outcomes:
        if "Fatal Python error: init_import_site" in stderr:
            continue  # the interpreter's own start (site), before any certrotate code runs
        if stderr.endswith("KeyboardInterrupt") and "/rotation/" not in stderr:
            # pip's script wrapper still looking for the package (import machinery only): before
            # rotation.console's first line, which installs the handler (test_cli_wrong_success covers
            # every moment from there on, each reached for certain rather than after a delay)
            continue
        # Before Python's handler exists the signal's default action ends the process silently.
        assert (code, stderr) in ((130, "certrotate: interrupted"), (-signal.SIGINT, "")), (code, stderr)
    assert (130, "certrotate: interrupted") in outcomes


def test_a_run_that_hangs_fails_with_the_stack_of_each_of_its_threads() -> None:
    """The early Ctrl-C test hung once on CI with nothing on stderr: a run past its timeout now gets
    SIGABRT under PYTHONFAULTHANDLER=1, and the failure carries where each thread was."""
    hang = "import threading, time; threading.Thread(target=time.sleep, args=(60,)).start(); time.sleep(60)"
    process = subprocess.Popen(
        [sys.executable, "-c", hang],
        env=cli.cli_env(PYTHONFAULTHANDLER="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with pytest.raises(AssertionError) as failure:
        cli.communicate_or_dump(process, "its start", timeout=1)
    assert process.returncode == -signal.SIGABRT
    message = str(failure.value)
    assert "still running 1 s after its start" in message and "Fatal Python error: Aborted" in message
    assert message.count("(most recent call first)") == 2, message  # the main thread and the other one


def test_a_background_run_stops_on_sigint() -> None:
    from tests.functional.test_cli_options import silent_endpoint

    with silent_endpoint() as url:
        # A non-interactive shell starts `cmd &` with SIGINT ignored, as in any script.
        script = (
            f"{cli.script()[0]} status --endpoint-url {url} --read-timeout 60 & pid=$!; "
            'sleep 1.5; kill -INT "$pid"; wait "$pid"; echo "exit $?"'
        )
        result = subprocess.run(
            ["bash", "-c", script], env=cli.cli_env(), capture_output=True, text=True, timeout=30, check=False
        )
    assert result.stdout.strip().splitlines()[-1] == "exit 130", result.stdout + result.stderr
    assert "certrotate: interrupted" in result.stderr


# 12. Fix hints that can be pasted, honest exit codes and wording, NO_COLOR, inputs checked early.


def test_fix_hints_name_the_secret_and_can_be_pasted(endpoint: str, ca: str) -> None:
    prefix = _unique("unconfigured")
    arn = make_secret(endpoint, f"{prefix}web", pca_fields(ca))
    refused = certrotate("rotate", f"{prefix}web", endpoint=endpoint)
    assert refused.returncode == 3
    assert f"aws secretsmanager rotate-secret --secret-id {arn} --rotation-lambda-arn" in cli.the_error(refused)
    doctor = certrotate("doctor", "--prefix", prefix, endpoint=endpoint)
    assert doctor.returncode == 1
    [line] = [line for line in doctor.stdout.splitlines() if "rotation is not configured" in line]
    assert f"fix: `aws secretsmanager rotate-secret --secret-id {arn} --rotation-lambda-arn" in line


def test_not_found_names_the_secret_region_and_account_and_what_next(endpoint: str) -> None:
    result = certrotate("rotate", "no/such/secret", endpoint=endpoint)
    assert result.returncode == 3
    line = cli.one_error_line(result)
    for part in ("'no/such/secret'", "region us-east-1", "account 123456789012", "certrotate status"):
        assert part in line, part


def test_missing_credentials_say_aws_configure_or_sso_login(endpoint: str) -> None:
    env = {k: v for k, v in cli.cli_env().items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    result = cli.run("status", "--endpoint-url", endpoint, env=env)
    assert result.returncode == 4
    line = cli.one_error_line(result)
    assert "NoCredentialsError" in line and "`aws configure`" in line and "`aws sso login`" in line


def test_a_404_from_a_web_server_is_unreachable_not_failed() -> None:
    import http.server
    import threading

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = b"<html><title>404 Not Found</title></html>"
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = certrotate("status", endpoint=url)
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 4
    line = cli.one_error_line(result)
    assert "not an AWS API" in line and "--endpoint-url" in line


def test_the_ledger_table_is_named_when_it_is_missing(endpoint: str, ca: str) -> None:
    arn = rotated(endpoint, f"{_unique('noledger')}web", ca)
    result = certrotate("status", arn, "--ledger-table", "no-such-ledger", endpoint=endpoint)
    assert result.returncode == 3
    assert "--ledger-table 'no-such-ledger'" in cli.one_error_line(result)


def test_revoke_dry_run_with_no_host_says_so(endpoint: str, ca: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import rotation.handler
    from rotation.fleet.ledger import create_table

    table = f"ledger-{uuid.uuid4().hex[:8]}"
    create_table(client(endpoint, "dynamodb"), table)
    monkeypatch.setenv("CERTROTATE_LEDGER_TABLE", table)
    rotation.handler.reset()
    arn = rotated(endpoint, f"{_unique('revoke')}web", ca)
    with ssm_inventory_in_moto():
        result = certrotate("revoke", arn, "--compromised", "--dry-run", "--ledger-table", table, endpoint=endpoint)
    assert result.returncode == 0, result.stderr
    assert "install on no host: no host has reported this secret" in result.stdout
    assert "install on no host has" not in result.stdout


def test_no_color_means_no_ansi_at_all(endpoint: str) -> None:
    env = cli.cli_env(NO_COLOR="1", FORCE_COLOR="1")  # FORCE_COLOR: styled as on a terminal
    result = cli.run("doctor", "--prefix", "nothing-here/", "--endpoint-url", endpoint, env=env)
    assert result.stdout.strip() and "\x1b[" not in result.stdout + result.stderr
    styled = cli.run(
        "doctor", "--prefix", "nothing-here/", "--endpoint-url", endpoint, env=cli.cli_env(FORCE_COLOR="1")
    )
    assert "\x1b[" in styled.stdout  # the check can fail: without NO_COLOR the same run is styled


@pytest.mark.parametrize("module", ["rotation.build.ssm_documents", "rotation.build.templates"])
def test_build_help_writes_nothing(module: str) -> None:
    root = Path(__file__).resolve().parents[2]
    generated = sorted((root / "ssm_documents").glob("*.yaml")) + sorted((root / "cfn").glob("*.yaml"))
    before = {path: path.stat().st_mtime_ns for path in generated}
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=root, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and "usage:" in result.stdout
    assert "wrote" not in result.stdout
    assert {path: path.stat().st_mtime_ns for path in generated} == before


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["payments web"], "name 'payments web'"),
        (["payments/web", "--rotation-lambda-arn", cli.LAMBDA, "--schedule", "cron(bad)"], "'cron(bad)'"),
        (["payments/web", "--rotation-lambda-arn", cli.LAMBDA, "--schedule", "rate(1 hours)"], "'rate(1 hours)'"),
    ],
)
def test_create_secret_dry_run_refuses_a_bad_name_or_schedule(args: list[str], shown: str) -> None:
    ca = "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/x"
    common = ["--type", "PCA_ISSUED", "--ca-arn", ca, "--common-name", "web.example.internal", "--dry-run"]
    result = cli.run("create-secret", *args, *common)
    assert result.returncode == 2
    assert shown in cli.one_error_line(result)


def test_one_long_name_does_not_hide_the_columns_of_every_row(endpoint: str, ca: str) -> None:
    prefix = _unique("longname")
    make_secret(endpoint, f"{prefix}{'n' * 480}", pca_fields(ca))
    make_secret(endpoint, f"{prefix}web", pca_fields(ca))
    result = cli.run("status", "--prefix", prefix, "--endpoint-url", endpoint, env=cli.cli_env(COLUMNS="120"))
    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if "days left" in line)
    for column in ("type", "key"):
        assert column in header, result.stdout
    assert all(len(line) <= 120 for line in result.stdout.splitlines())
    assert "n" * 480 in "".join(line.split("│")[1].strip() for line in result.stdout.splitlines() if "│" in line)


# A well-kept CLI: --output text and --query, did you mean, help, examples, why a rotation failed.


def test_output_text_and_query_as_the_aws_cli(endpoint: str, ca: str) -> None:
    prefix = _unique("text")
    rotated(endpoint, f"{prefix}web", ca)
    make_secret(endpoint, f"{prefix}new", pca_fields(ca))
    text = certrotate("status", "--prefix", prefix, "--output", "text", endpoint=endpoint)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert len(lines) == 2 and all("\t" in line for line in lines)
    assert not any(c in text.stdout for c in "┏┃│└")  # no box drawing
    query = "[?days_to_expiry > `300`].name"
    assert json.loads(certrotate("status", "--prefix", prefix, "--query", query, endpoint=endpoint).stdout) == [
        f"{prefix}web"
    ]
    columns = certrotate(
        "status", "--prefix", prefix, "--output", "text", "--query", "[].[name, join(',', flags)]", endpoint=endpoint
    )
    assert sorted(columns.stdout.splitlines()) == sorted(
        [f"{prefix}new\tno-certificate,rotation-disabled", f"{prefix}web\t"]
    )
    bad = certrotate("status", "--query", "[?", endpoint=endpoint)
    assert bad.returncode == 2 and "--query '[?': not a JMESPath expression" in cli.one_error_line(bad)


def test_a_mistyped_command_gets_a_suggestion_and_help_is_a_command() -> None:
    mistyped = cli.run("stauts")
    assert mistyped.returncode == 2
    assert "did you mean 'status'?" in cli.one_error_line(mistyped)
    helped = cli.run("help", "rotate")
    assert helped.returncode == 0 and helped.stdout == cli.run("rotate", "--help").stdout
    assert "usage: certrotate rotate" in helped.stdout


def test_every_commands_help_has_examples_that_parse() -> None:
    import shlex

    from rotation.cli import build_parser
    from rotation.cli.examples import EXAMPLES

    commands = (
        "status",
        "rotate",
        "deploy",
        "revoke",
        "hosts",
        "validate",
        "create-secret",
        "doctor",
        "sandbox",
        "policy",
        "policy validate",
        "ca-rollover",
        "ca-rollover plan",
        "ca-rollover start",
        "ca-rollover status",
        "ca-rollover advance",
        "ca-rollover abort",
    )
    for command in commands:
        shown = cli.run(*command.split(), "--help").stdout
        assert "examples:" in shown, command
        for example in EXAMPLES[command]:
            assert example in shown
            inner = example.removeprefix('eval "$(').removesuffix(')"')
            argv = shlex.split(inner)
            assert argv[0] == "certrotate"
            build_parser().parse_args(argv[1:])  # exits 2 on an example that does not parse


def test_status_of_a_failed_rotation_says_why(endpoint: str, ca: str) -> None:
    arn = rotated(endpoint, f"{_unique('why')}web", ca)
    broken = {**pca_fields(ca), "KEY_ALGORITHM": "TYPE_DSA"}
    client(endpoint, "secretsmanager").put_secret_value(SecretId=arn, SecretString=json.dumps(broken))
    assert certrotate("rotate", arn, endpoint=endpoint).returncode == 0  # RotateSecret succeeds; createSecret fails
    for _ in range(50):
        result = certrotate("status", arn, "--output", "json", endpoint=endpoint)
        [detail] = json.loads(result.stdout)
        if detail["rotation_failure"].startswith("failed at"):
            break
        time.sleep(0.2)
    assert "rotation-failed" in detail["flags"]
    assert detail["rotation_failure"].startswith("failed at createSecret") and "TYPE_DSA" in detail["rotation_failure"]
    table = certrotate("status", arn, endpoint=endpoint)
    assert any(line.startswith("why") and "failed at createSecret" in line for line in table.stdout.splitlines())


def test_bash_completes_secret_names(endpoint: str, ca: str) -> None:
    prefix = _unique("complete")
    make_secret(endpoint, f"{prefix}web", pca_fields(ca))
    make_secret(endpoint, f"{prefix}api", pca_fields(ca))
    env = cli.cli_env(AWS_ENDPOINT_URL=endpoint)
    env["PATH"] = f"{cli.SCRIPT.parent}:{env['PATH']}"
    word = f"{prefix}w"
    script = (
        'eval "$(certrotate completion bash)"; '
        f"COMP_WORDS=(certrotate rotate {word}); COMP_CWORD=2; COMP_LINE='certrotate rotate {word}'; "
        'COMP_POINT=${#COMP_LINE}; _shtab_certrotate certrotate "' + word + '" rotate; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.stdout.split() == [f"{prefix}web"], result.stdout + result.stderr
