"""The commands an operator runs every day, through the installed console script against moto's
server: status at any width and for one secret, rotate's selection and refusals, validate's
inputs, create-secret's all-or-nothing, deploy's dry run and empty targets, doctor.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rotation.cli import ExitCode
from tests.support import cli
from tests.support.cli import (
    LAMBDA,
    certrotate,
    client,
    enable_rotation,
    make_secret,
    one_error_line,
    pca_fields,
    rotated,
    the_error,
)
from tests.support.crl import crl_ca

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ca(endpoint: str) -> str:
    """A CA as a sound deployment has one: publishing a CRL clients can download (doctor checks it)."""
    return crl_ca(client(endpoint, "acm-pca"), client(endpoint, "s3"))


@pytest.fixture
def prefix() -> str:
    """moto's server lives for the session: each test works under its own name prefix."""
    return f"t{uuid.uuid4().hex[:8]}/"


def certificate_fields(ca: str, **extra: str) -> dict[str, str]:
    """A spec plus the metadata rotation writes (what ``status`` reads), without running a rotation."""
    metadata = {
        "CERTIFICATE_SERIAL": "1F2E3D",
        "CERTIFICATE_NOT_BEFORE": "2026-01-01T00:00:00Z",
        "CERTIFICATE_NOT_AFTER": "2099-01-01T00:00:00Z",
        "CERTIFICATE_KEY_ALGORITHM": "EC_prime256v1",
    }
    return pca_fields(ca, **{**metadata, **extra})


# -- status -----------------------------------------------------------------------------------------


def test_status_is_readable_at_80_columns_and_never_cuts_a_name(endpoint: str, ca: str, prefix: str) -> None:
    names = [f"{prefix}payments/api-gateway-internal", f"{prefix}web"]
    for name in names:
        make_secret(endpoint, name, certificate_fields(ca, COMMON_NAME="api.payments.example.internal"))
    result = cli.run("status", "--prefix", prefix, "--endpoint-url", endpoint, env=cli.cli_env(COLUMNS="80"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), result.stdout
    assert len([line for line in lines if f"│ {prefix}web " in line]) == 1
    # A name wider than its column wraps onto the next lines; joined again it is whole.
    column = [line.split("│")[1].strip() for line in lines if line.startswith("│")]
    assert names[0] in "".join(column)
    assert any(line.split("│")[2].strip().isdigit() for line in lines if f"{prefix}web" in line)
    assert "wider terminal or status NAME for: " in result.stdout  # what is not shown is said


def test_status_piped_without_columns_still_fits_80(endpoint: str, ca: str, prefix: str) -> None:
    make_secret(endpoint, f"{prefix}web", certificate_fields(ca))
    env = cli.cli_env()
    env.pop("COLUMNS")
    result = cli.run("status", "--prefix", prefix, "--endpoint-url", endpoint, env=env)
    assert result.returncode == 0
    assert all(len(line) <= 80 for line in result.stdout.splitlines())
    assert f"{prefix}web" in result.stdout


def test_one_malformed_secret_is_reported_on_its_row(endpoint: str, ca: str, prefix: str) -> None:
    make_secret(endpoint, f"{prefix}good", certificate_fields(ca))
    make_secret(endpoint, f"{prefix}bad-date", certificate_fields(ca, CERTIFICATE_NOT_AFTER="2027-01-01"))
    result = certrotate("status", "--prefix", prefix, "--json", endpoint=endpoint)
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows[f"{prefix}good"]["flags"] == ["rotation-disabled"]
    assert rows[f"{prefix}good"]["days_to_expiry"] > 20000
    bad = rows[f"{prefix}bad-date"]
    assert "bad-metadata" in bad["flags"]
    assert bad["problems"] == ["CERTIFICATE_NOT_AFTER='2027-01-01': expected YYYY-MM-DDTHH:MM:SSZ"]
    table = certrotate("status", "--prefix", prefix, endpoint=endpoint)
    assert table.returncode == 0 and "bad-metadata" in table.stdout


def test_status_check_exits_1_when_a_certificate_needs_attention(endpoint: str, ca: str, prefix: str) -> None:
    make_secret(endpoint, f"{prefix}fine", certificate_fields(ca))
    healthy = certrotate("status", "--prefix", prefix, "--check", endpoint=endpoint)
    assert healthy.returncode == 0, healthy.stderr
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 5 * 86400))
    make_secret(endpoint, f"{prefix}soon", certificate_fields(ca, CERTIFICATE_NOT_AFTER=soon))
    result = certrotate("status", "--prefix", prefix, "--check", endpoint=endpoint)
    assert result.returncode == ExitCode.FAILED
    assert f"1 certificate(s) need attention: {prefix}soon (expiring)" in result.stderr
    assert f"{prefix}fine" in result.stdout  # the table is still printed


def test_status_of_named_secrets_shows_each_in_full(endpoint: str, ca: str, prefix: str) -> None:
    arn = rotated(endpoint, f"{prefix}web", ca, SUBJECT_ALTERNATIVE_NAMES="www.example.internal,10.0.0.7")
    result = certrotate("status", f"{prefix}web", endpoint=endpoint)
    assert result.returncode == 0, result.stderr
    for label in ("serial", "not before", "not after", "names", "key", "CA", "renewal policy", "last rotated"):
        assert f"\n{label} " in "\n" + result.stdout, label
    (detail,) = json.loads(certrotate("status", arn, "--output", "json", endpoint=endpoint).stdout)
    assert detail["subject_alternative_names"] == ["app.example.internal", "www.example.internal", "10.0.0.7"]
    assert detail["ca_arn"] == ca and detail["renewal_policy"] == "ALWAYS"
    assert detail["rotation_function"] == LAMBDA and detail["rotation_enabled"] is True
    assert detail["serial"] and detail["not_before"] and detail["last_rotated"]
    assert detail["key_algorithm"] == "EC_prime256v1"


def test_status_of_a_secret_that_is_no_certificate_is_exit_3(endpoint: str, prefix: str) -> None:
    make_secret(endpoint, f"{prefix}password", {"password": "hunter2"})
    result = certrotate("status", f"{prefix}password", endpoint=endpoint)
    assert result.returncode == ExitCode.INVALID
    assert "is not a certificate secret" in one_error_line(result)
    assert "hunter2" not in result.stdout + result.stderr


# -- rotate -----------------------------------------------------------------------------------------


def test_rotate_refuses_non_certificate_and_unconfigured_secrets(endpoint: str, ca: str, prefix: str) -> None:
    password = make_secret(endpoint, f"{prefix}password", {"password": "hunter2"})
    enable_rotation(endpoint, password)
    sm = client(endpoint, "secretsmanager")
    plain = make_secret(endpoint, f"{prefix}plain", "just a password")
    unconfigured = make_secret(endpoint, f"{prefix}cert", pca_fields(ca))
    stuck = make_secret(endpoint, f"{prefix}stuck", pca_fields(ca, KEY_ALGORITHM="TYPE_DSA"))
    enable_rotation(endpoint, stuck)  # its first rotation fails: AWSPENDING stays on a version never current
    for secret, why in (
        (password, "a JSON object without CERTIFICATE_TYPE"),
        (plain, "plain text"),
        (unconfigured, "rotation is not configured"),
        (stuck, "a rotation is still in progress or has failed (AWSPENDING is on version "),
    ):
        result = certrotate("rotate", secret, endpoint=endpoint)
        assert result.returncode == ExitCode.INVALID, result.stderr
        assert why in one_error_line(result)
        tags = sm.describe_secret(SecretId=secret).get("Tags") or []
        assert all(t["Key"] != "certrotate:rotate-now" for t in tags)  # nothing tagged


def test_rotate_several_all_filter_and_dry_run(endpoint: str, ca: str, prefix: str) -> None:
    sm = client(endpoint, "secretsmanager")
    first = rotated(endpoint, f"{prefix}a", ca)
    second = rotated(endpoint, f"{prefix}b", ca)
    sm.tag_resource(SecretId=second, Tags=[{"Key": "team", "Value": prefix}])
    make_secret(endpoint, f"{prefix}no-rotation", pca_fields(ca))

    dry = certrotate("rotate", first, second, "--dry-run", endpoint=endpoint)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [f"would rotate {prefix}a with {LAMBDA}", f"would rotate {prefix}b with {LAMBDA}"]
    versions = {s: sm.describe_secret(SecretId=s)["VersionIdsToStages"] for s in (first, second)}

    both = certrotate("rotate", first, second, "--wait", endpoint=endpoint)
    assert both.returncode == 0, both.stderr
    assert [line.split(":")[0] for line in both.stdout.splitlines()] == [f"{prefix}a", f"{prefix}b"]
    assert all(sm.describe_secret(SecretId=s)["VersionIdsToStages"] != versions[s] for s in (first, second))

    tagged = certrotate("rotate", "--filter", f"tag:team={prefix}", "--output", "json", "--wait", endpoint=endpoint)
    assert tagged.returncode == 0, tagged.stderr
    (only,) = json.loads(tagged.stdout)
    assert only["secret"] == f"{prefix}b" and only["status"] == "done"
    assert only["serial_before"] != only["serial_after"]

    everything = certrotate("rotate", "--all", "--dry-run", "--output", "json", endpoint=endpoint)
    assert everything.returncode == 0, everything.stderr
    planned = {r["secret"] for r in json.loads(everything.stdout)}
    assert {f"{prefix}a", f"{prefix}b"} <= planned and f"{prefix}no-rotation" not in planned
    # One summary line per reason (the shared server holds other tests' secrets too).
    assert any(
        line.startswith("skipped ") and "rotation is not configured" in line for line in everything.stderr.splitlines()
    )


# -- validate -------------------------------------------------------------------------------------------


def test_validate_inputs_that_are_not_a_specification(endpoint: str, tmp_path: Path, prefix: str) -> None:
    typo = cli.run("validate", str(tmp_path / "spec.jsn"), "--offline")
    assert typo.returncode == ExitCode.INVALID
    assert one_error_line(typo).endswith("spec.jsn: no such file (--offline reads files only)")

    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes('{"COMMON_NAME": "café"}'.encode("latin-1"))
    result = cli.run("validate", str(latin1), "--offline")
    assert result.returncode == ExitCode.INVALID
    assert "not UTF-8 text (byte 0xe9 at offset 20)" in one_error_line(result)

    plain = make_secret(endpoint, f"{prefix}plain", "s3cr3t-value")
    result = certrotate("validate", plain, endpoint=endpoint)
    assert result.returncode == ExitCode.INVALID
    assert "holds plain text, not a JSON certificate specification" in one_error_line(result)
    assert "s3cr3t" not in result.stderr

    sm = client(endpoint, "secretsmanager")
    binary = sm.create_secret(Name=f"{prefix}binary", SecretBinary=b"\x00\x01")["ARN"]
    result = certrotate("validate", binary, endpoint=endpoint)
    assert result.returncode == ExitCode.INVALID
    assert "binary secret (SecretBinary)" in one_error_line(result)

    missing = certrotate("validate", f"{prefix}nothing-here", endpoint=endpoint)
    assert missing.returncode == ExitCode.INVALID
    assert "no such file, and no secret of that name" in one_error_line(missing)


def test_validate_json_output(endpoint: str, ca: str, tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(pca_fields(ca)))
    result = certrotate("validate", str(spec), "--output", "json", endpoint=endpoint)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["valid"] is True and document["ca_checked"] is True


# -- create-secret ---------------------------------------------------------------------------------------


def create_args(name: str, ca: str, *extra: str) -> list[str]:
    return ["create-secret", name, "--type", "PCA_ISSUED", "--ca-arn", ca, "--common-name", "web.example", *extra]


def test_create_secret_san_list_and_dry_run(endpoint: str, ca: str, prefix: str) -> None:
    args = create_args(f"{prefix}web", ca, "--san", "a.example,b.example", "--san", "10.0.0.1", "--dry-run")
    result = certrotate(*args, "--output", "json", endpoint=endpoint)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["specification"]["SUBJECT_ALTERNATIVE_NAMES"] == ["a.example", "b.example", "10.0.0.1"]
    assert document["dry_run"] is True and document["arn"] == ""
    listed = client(endpoint, "secretsmanager").list_secrets(Filters=[{"Key": "name", "Values": [prefix]}])
    assert listed["SecretList"] == []  # a dry run creates nothing


def test_create_secret_that_cannot_enable_rotation_leaves_nothing(endpoint: str, ca: str, prefix: str) -> None:
    # Stub where moto cannot go: Secrets Manager refusing to invoke a function whose policy does not
    # admit it (moto never invokes a Lambda, so it cannot refuse).
    from moto.core.exceptions import JsonRESTError
    from moto.secretsmanager.models import SecretsManagerBackend

    emulated = SecretsManagerBackend.rotate_secret

    def refusing(self: Any, secret_id: str, *args: Any, **kwargs: Any) -> Any:
        raise JsonRESTError(
            "AccessDeniedException",
            "Secrets Manager cannot invoke the specified Lambda function. Ensure that the function policy "
            "grants access to the principal secretsmanager.amazonaws.com.",
        )

    name = f"{prefix}web"
    SecretsManagerBackend.rotate_secret = refusing  # type: ignore[method-assign]
    try:
        failed = certrotate(*create_args(name, ca, "--rotation-lambda-arn", LAMBDA), endpoint=endpoint)
    finally:
        SecretsManagerBackend.rotate_secret = emulated  # type: ignore[method-assign]
    assert failed.returncode == ExitCode.FAILED
    line = one_error_line(failed)
    assert "AccessDeniedException" in line and "nothing is left behind" in line
    assert "created" not in failed.stdout
    again = certrotate(*create_args(name, ca, "--rotation-lambda-arn", LAMBDA), endpoint=endpoint)
    assert again.returncode == 0, again.stderr  # no ResourceExists: the first attempt left nothing
    assert f"created arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-" in again.stdout


# -- deploy ---------------------------------------------------------------------------------------------


def test_deploy_dry_run_and_a_command_that_reaches_no_instance(endpoint: str, ca: str, prefix: str) -> None:
    arn = rotated(endpoint, f"{prefix}web", ca)  # deploy refuses a secret with no certificate yet
    dry = certrotate("deploy", f"{prefix}web", "--targets", "tag:certrotate=nobody", "--dry-run", endpoint=endpoint)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.strip() == f"would run RunUpdateTLS on tag:certrotate=nobody with SecretArn={arn}"
    started = time.monotonic()
    result = certrotate("deploy", arn, "--targets", "tag:certrotate=nobody", endpoint=endpoint)
    assert result.returncode == ExitCode.FAILED
    assert "the command reached no instance" in the_error(result)
    assert time.monotonic() - started < 20  # not the 900 s timeout
    assert "0 pending of 0 instance(s)" in result.stderr  # the progress line said so


# -- doctor ---------------------------------------------------------------------------------------------


@pytest.fixture
def deployment(endpoint: str, ca: str, prefix: str) -> Iterator[dict[str, str]]:
    """What the central stack creates, in moto: function + invoke permission, documents, key, a secret."""
    suffix = prefix.strip("/")
    iam = client(endpoint, "iam")
    role = iam.create_role(
        RoleName=f"rotation-{suffix}",
        AssumeRolePolicyDocument=json.dumps(
            {"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "*"}]}
        ),
    )["Role"]["Arn"]
    lam = client(endpoint, "lambda")
    function = lam.create_function(
        FunctionName=f"certrotate-{suffix}",
        Runtime="python3.12",
        Role=role,
        Handler="rotation.handler.lambda_handler",
        Code={"ZipFile": base64.b64decode("UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==")},
    )["FunctionArn"]
    lam.add_permission(
        FunctionName=function,
        StatementId="secretsmanager",
        Action="lambda:InvokeFunction",
        Principal="secretsmanager.amazonaws.com",
    )
    ssm = client(endpoint, "ssm")
    documents = {}
    for name in ("RunUpdateTLS", "RollbackTLS"):
        documents[name] = f"{name}-{suffix}"
        ssm.create_document(
            Name=documents[name],
            Content=(ROOT / "ssm_documents" / f"{name}.yaml").read_text(),
            DocumentType="Command",
            DocumentFormat="YAML",
        )
    workload = "arn:aws:iam::444455556666:role/certrotate-workload-instance"
    kms = client(endpoint, "kms")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Effect": "Allow",
                "Principal": {"AWS": workload},
                "Action": ["kms:Decrypt"],
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}},
            },
        ],
    }
    key = kms.create_key(Policy=json.dumps(policy))["KeyMetadata"]["Arn"]
    arn = make_secret(endpoint, f"{prefix}web", pca_fields(ca), KmsKeyId=key)
    client(endpoint, "secretsmanager").rotate_secret(SecretId=arn, RotationLambdaARN=function)
    yield {"function": function, "workload": workload, "key": key, "secret": arn, **documents}


def doctor(deployment: dict[str, str], prefix: str, endpoint: str, *extra: str) -> Any:
    documents = ["--document", deployment["RunUpdateTLS"], "--document", deployment["RollbackTLS"]]
    workload = ["--workload-role-arn", deployment["workload"]]
    return certrotate("doctor", "--prefix", prefix, *documents, *workload, *extra, endpoint=endpoint)


def test_doctor_passes_a_sound_deployment(deployment: dict[str, str], prefix: str, endpoint: str) -> None:
    result = doctor(deployment, prefix, endpoint)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ok   credentials: account 123456789012")
    assert any(f"rotation function {deployment['function']}: python3.12" in line for line in lines)
    assert any("Secrets Manager may invoke it" in line for line in lines)
    assert any(line.startswith("ok   CA ") and "ACTIVE, RSA_2048" in line for line in lines)
    assert any(f"ok   document {deployment['RunUpdateTLS']}: Command" in line for line in lines)
    assert any(f"ok   KMS key {deployment['key']}: kms:Decrypt allowed to {deployment['workload']}" in x for x in lines)
    checks = json.loads(doctor(deployment, prefix, endpoint, "--output", "json").stdout)
    assert {c["outcome"] for c in checks} == {"ok"} and len(checks) == len(lines)


def test_doctor_names_each_broken_part(deployment: dict[str, str], prefix: str, endpoint: str, ca: str) -> None:
    # moto stores the policies doctor reads but evaluates none of them; doctor reads them itself.
    client(endpoint, "lambda").remove_permission(FunctionName=deployment["function"], StatementId="secretsmanager")
    client(endpoint, "ssm").delete_document(Name=deployment["RollbackTLS"])
    client(endpoint, "acm-pca").update_certificate_authority(CertificateAuthorityArn=ca, Status="DISABLED")
    make_secret(endpoint, f"{prefix}unrotated", pca_fields(ca))
    result = doctor(deployment, prefix, endpoint, "--workload-role-arn", "arn:aws:iam::777788889999:role/other")
    assert result.returncode == ExitCode.FAILED
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert any("does not let secretsmanager.amazonaws.com invoke it" in line for line in failed)
    assert any(f"document {deployment['RollbackTLS']}" in line for line in failed)
    assert any("DISABLED, not ACTIVE" in line for line in failed)
    assert any(f"secret {prefix}unrotated: rotation is not configured" in line for line in failed)
    assert any("no statement allows kms:Decrypt to arn:aws:iam::777788889999:role/other" in line for line in failed)
    assert any(f"{prefix}unrotated use the AWS managed key" in line for line in failed)  # cross-account: no
    assert len(failed) == 6
    assert "check(s): 6 failed" in result.stderr


def test_a_wait_on_a_terminal_is_one_live_line(endpoint: str, ca: str, prefix: str) -> None:
    import os
    import pty
    import subprocess

    arn = rotated(endpoint, f"{prefix}web", ca)
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [*cli.script(), "rotate", arn, "--wait", "--endpoint-url", endpoint],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=cli.cli_env(TERM="xterm-256color"),
    )
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    assert process.wait(timeout=60) == 0
    text = output.decode(errors="replace")
    assert "\x1b[?25l" in text  # rich's live display took the line (cursor hidden while it redraws)
    assert f"waiting: {prefix}web done" in text  # its last state stays on screen
    assert f"{prefix}web: serial " in text


@pytest.mark.slow
def test_doctor_checks_every_account_and_region_revocation_reads(
    deployment: dict[str, str], prefix: str, endpoint: str
) -> None:
    """Issue 16 item 1: the regions and accounts the revoker reads are configured on the rotation
    function (CERTROTATE_FLEET_REGIONS, CERTROTATE_FLEET_ROLE_ARNS) and checked by doctor: one line
    each, FAIL when GetInventory cannot be read there (here: before the inventory emulation)."""
    from rotation.emulation.ssm_inventory import ssm_inventory_in_moto

    role = "arn:aws:iam::111111111111:role/certrotate/FleetViewRole"
    client(endpoint, "lambda").update_function_configuration(
        FunctionName=deployment["function"],
        Environment={
            "Variables": {"CERTROTATE_FLEET_REGIONS": "us-east-1,eu-west-1", "CERTROTATE_FLEET_ROLE_ARNS": role}
        },
    )
    unreadable = doctor(deployment, prefix, endpoint)  # moto alone has no GetInventory
    failed = [line for line in unreadable.stdout.splitlines() if line.startswith("FAIL")]
    assert unreadable.returncode == ExitCode.FAILED and len(failed) == 4, unreadable.stdout
    assert any(line.startswith(f"FAIL fleet view 111111111111 through {role}, eu-west-1:") for line in failed)
    with ssm_inventory_in_moto():
        result = doctor(deployment, prefix, endpoint)
    assert result.returncode == 0, result.stdout + result.stderr
    fleet = [line for line in result.stdout.splitlines() if " fleet view " in line]
    assert [line.split(": GetInventory")[0] for line in fleet] == [
        "ok   fleet view this account, us-east-1",
        "ok   fleet view this account, eu-west-1",
        f"ok   fleet view 111111111111 through {role}, us-east-1",
        f"ok   fleet view 111111111111 through {role}, eu-west-1",
    ]


def test_one_deeply_nested_secret_never_ends_status_or_rotate_for_the_others(endpoint: str, ca: str) -> None:
    """A secret's writer stores ``[[[…]]]`` (deeper than Python's JSON decoder recurses): the fleet
    commands report that secret as not a specification and go on with the others (it was a
    RecursionError ending the whole command, seen when another test left such a secret on the server)."""
    prefix = f"nested-{uuid.uuid4().hex[:8]}/"
    make_secret(endpoint, f"{prefix}bomb", "[" * 30_000 + "]" * 30_000)
    make_secret(endpoint, f"{prefix}web", pca_fields(ca))
    # rotate: 3 when some listed secret has no rotation configured (this one's and other tests' do not)
    for args, codes in (
        (("status", "--prefix", prefix, "--output", "json"), (0, 1)),
        (("rotate", "--all", "--dry-run"), (0, 3)),
    ):
        result = certrotate(*args, endpoint=endpoint)
        assert "RecursionError" not in result.stdout + result.stderr, (args, result.stderr)
        assert result.returncode in codes, (args, result.returncode, result.stderr)
    listed = certrotate("status", "--prefix", prefix, "--output", "json", endpoint=endpoint)
    assert f"{prefix}web" in listed.stdout
