"""The installer's fleet-view record (SSM custom inventory): what a file serves, and the host's merge.

A record says what its certificate file SERVES (SecretArn, Serial, FingerprintSha256, NotAfter,
Subject, VersionStage: changed only by a successful install or rollback) and how the latest run
went (Status, ExitCode, Message, RecordedAt; a failure adds LastFailure*). Issue 17 item 1: on the
starting code a failed run with a made-up SecretArn replaced the served file's SecretArn, fifty
failing runs naming other files evicted it, and a rollback kept the replaced file's secret.
"""

from __future__ import annotations

import json
from typing import Any

from certrotate_installer import fleet_record, host_file, main, output, parameters, runs, served_check, validation

from rotation.fleet.view import REQUIRED, hosts_serving, parse_reports
from tests.support.certs import LocalCA

ARN = "arn:aws:secretsmanager:us-east-1:111122223333:secret:certs/web-AbCdEf"
OTHER_ARN = "arn:aws:secretsmanager:us-east-1:111122223333:secret:certs/other-AbCdEf"
MADE_UP = "arn:aws:secretsmanager:us-east-1:999999999999:secret:made-up-XyZ123"
FILES = ("/etc/ssl/web/web.pem", "/etc/ssl/private/web.key", "/etc/ssl/web/web-chain.pem")


def request(secret_arn: str = ARN, files: tuple[str, str, str] = FILES) -> Any:
    return parameters.Request(parameters.Action.INSTALL, secret_arn, "AWSCURRENT", files, "", 443, "graceful")


def facts(name: str = "Record CA") -> Any:
    bundle = LocalCA(name=name).issue(["www.certrotate.test"])
    return validation.parse_bundle(
        bundle.certificate_pem, bundle.private_key_pem, bundle.chain_pem, ("c", "k", "ch")
    ).facts


def run(
    state: Any,
    status: str,
    served: Any,
    *,
    secret: str = ARN,
    files: tuple[str, str, str] = FILES,
    replaced: Any = None,
    when: float = 1.8e9,
    code: int = 0,
    message: str = "",
) -> Any:
    report = fleet_record.RunReport(
        fleet_record.Served(status),
        request(secret, files),
        files,
        served,
        replaced,
        replaced is not None,
        code,
        message,
        when,
    )
    return fleet_record.next_fleet_state(state, report, lambda path: True)


def only(state: Any, file: str = FILES[0]) -> dict[str, str]:
    (record,) = [r for r in state.records if r["CertificateFile"] == file]
    return dict(record)


def empty() -> Any:
    return fleet_record.load_fleet_state(None)


def test_a_record_holds_public_facts_only_and_what_the_fleet_reader_requires() -> None:
    served = facts()
    state = run(empty(), "installed", served)
    entry = only(state)
    assert set(entry) == set(fleet_record.INVENTORY_KEYS) and all(isinstance(v, str) for v in entry.values())
    assert set(REQUIRED) <= set(entry)
    assert entry["Serial"] == served.serial_hex and entry["SecretArn"] == ARN
    assert entry["Status"] == "installed" and entry["RecordedAt"] == entry["InstalledAt"] == "2027-01-15T08:00:00Z"
    text = json.dumps(fleet_record.inventory_items(state.records, 1.8e9))
    assert "PRIVATE KEY" not in text and "BEGIN" not in text
    assert len(entry) <= 50 and all(len(k) <= 64 for k in entry)  # PutInventory's map limits
    reports, problems = parse_reports("111122223333", "i-0123456789abcdef0", state.records)
    assert not problems and reports[0].secret_arn == ARN


def test_a_failed_run_with_a_made_up_secret_keeps_what_the_file_serves() -> None:
    """On the starting code the failure replaced SecretArn with the made-up ARN; the revoker then
    found no host serving the still-served certificate of the real secret."""
    served = facts()
    state = run(empty(), "installed", served)
    state = run(state, "failed", served, secret=MADE_UP, code=3, message="cannot read secret", when=1.9e9)
    entry = only(state)
    assert entry["SecretArn"] == ARN and entry["Serial"] == served.serial_hex
    assert entry["FingerprintSha256"] == served.fingerprint and entry["VersionStage"] == "AWSCURRENT"
    assert entry["Status"] == "failed" and entry["ExitCode"] == "3"  # the fleet view still shows the failure
    assert entry["LastFailureSecretArn"] == MADE_UP and entry["LastFailureExitCode"] == "3"
    assert entry["LastFailureMessage"] == "cannot read secret" and entry["LastFailureAt"] == "2030-03-17T17:46:40Z"
    reports, _ = parse_reports("111122223333", "i-0123456789abcdef0", state.records)
    assert [r.secret_arn for r in hosts_serving(reports, served.fingerprint)] == [ARN]
    # the next success clears the failure fields
    entry = only(run(state, "unchanged", served, when=2e9))
    assert entry["Status"] == "unchanged" and entry["LastFailureSecretArn"] == "" and entry["SecretArn"] == ARN
    assert entry["InstalledAt"] == "2027-01-15T08:00:00Z"  # unchanged: still the install's time


def test_failing_runs_naming_other_files_never_evict_a_served_record() -> None:
    """On the starting code fifty failing commands naming other files pushed the record out (50-record cap)."""
    served = facts()
    state = run(empty(), "installed", served, when=1e9)
    for n in range(60):
        other = (f"/etc/ssl/web/x{n}.pem", "/etc/ssl/private/x.key", "/etc/ssl/web/x-chain.pem")
        state = run(state, "failed", None, secret=MADE_UP, files=other, when=1.5e9 + n, code=9)
    assert only(state)["SecretArn"] == ARN and only(state)["Serial"] == served.serial_hex
    unserved = [r for r in state.records if r["CertificateFile"] != FILES[0]]
    assert len(unserved) == fleet_record.MAX_UNSERVED_RECORDS
    assert {r["CertificateFile"] for r in unserved} == {f"/etc/ssl/web/x{n}.pem" for n in range(52, 60)}  # newest


def test_a_rollback_onto_the_previous_certificate_names_its_secret() -> None:
    """On the starting code RollbackTLS back onto secret B's certificate kept SecretArn=A."""
    from_b, from_a = facts("B CA"), facts("A CA")
    state = run(empty(), "installed", from_b, secret=OTHER_ARN, when=1e9)
    state = run(state, "installed", from_a, secret=ARN, replaced=from_b, when=1.1e9)
    assert only(state)["SecretArn"] == ARN
    state = run(state, "rolled-back", from_b, secret="", replaced=from_a, when=1.2e9)
    entry = only(state)
    assert entry["SecretArn"] == OTHER_ARN and entry["Serial"] == from_b.serial_hex and entry["Status"] == "rolled-back"
    # and back again: the previous file is now A's
    entry = only(run(state, "rolled-back", from_a, secret="", replaced=from_b, when=1.3e9))
    assert entry["SecretArn"] == ARN and entry["Serial"] == from_a.serial_hex


def test_a_rollback_onto_a_certificate_of_unknown_origin_names_no_secret() -> None:
    installed, hand_made = facts("A CA"), facts("Hand CA")
    state = run(empty(), "installed", installed)
    entry = only(run(state, "rolled-back", hand_made, secret=""))
    assert entry["SecretArn"] == "" and entry["Serial"] == hand_made.serial_hex  # what it serves, secret unknown


def test_the_records_are_bounded_in_size() -> None:
    """Issue 17 item 6: records of huge values stay under MAX_INVENTORY_BYTES; served ones stay."""
    served = facts()
    state = run(empty(), "installed", served)
    long_path = "/etc/ssl/" + "/".join(["d" * 200] * 4) + "/c.pem"
    for n in range(40):
        files = (long_path + str(n) + ".pem", long_path + ".key", long_path + "-chain.pem")
        state = run(state, "failed", None, files=files, message="m" * 5000, code=9, when=1.9e9 + n)
    assert len(json.dumps(state.records)) <= fleet_record.MAX_INVENTORY_BYTES
    assert only(state)["SecretArn"] == ARN
    assert all(len(r["Message"]) <= fleet_record.MESSAGE_LIMIT for r in state.records)


def test_an_older_installers_state_is_read() -> None:
    old = {key: "" for key in ("SecretArn", "VersionStage", "KeyFile", "ChainFile", "HttpsPort", "Message")}
    old.update(CertificateFile=FILES[0], Status="installed", ExitCode="0", RecordedAt="2026-01-01T00:00:00Z")
    old.update(SecretArn=ARN, Serial="AB", NotAfter="", FingerprintSha256="AA:BB", Subject="x")
    state = fleet_record.load_fleet_state([old, {"not": "a record"}, "junk"])
    (entry,) = state.records
    assert entry["InstalledAt"] == "2026-01-01T00:00:00Z" and entry["SecretArn"] == ARN


def test_without_the_agents_instance_id_nothing_is_sent() -> None:
    said = fleet_record.put_inventory(None, [], {"PATH": "/nonexistent"})
    assert "AWS_SSM_INSTANCE_ID is not set" in said


def test_the_items_are_what_the_put_inventory_model_accepts() -> None:
    """botocore's own validator for PutInventory's input shape (types, required members, lengths)."""
    import botocore.session
    from botocore.validate import ParamValidator

    served = facts("Shape CA")
    state = run(empty(), "installed", served)
    state = run(state, "failed", served, secret=MADE_UP, code=5, message="x" * 5000)
    items = fleet_record.inventory_items(state.records, 1.8e9)
    shape = botocore.session.get_session().get_service_model("ssm").operation_model("PutInventory").input_shape
    report = ParamValidator().validate({"InstanceId": "i-0123456789abcdef0", "Items": items}, shape)
    assert not report.has_errors(), report.generate_report()
    entry = only(state)
    assert len(entry["Message"]) == len(entry["LastFailureMessage"]) == fleet_record.MESSAGE_LIMIT <= 4096


def test_an_unexpected_error_is_recorded_too(tmp_path: Any, monkeypatch: Any) -> None:
    """A bug before any change (exit 1) still leaves a failed record, kept on the host when the
    installer runs outside the SSM agent (no AWS_SSM_INSTANCE_ID)."""
    ssl_dir = tmp_path / "ssl"
    (ssl_dir / "certs").mkdir(parents=True)
    (ssl_dir / "private").mkdir(mode=0o700)
    apache_config = tmp_path / "apache2.conf"
    apache_config.write_text("# not read: the run fails before Apache\n")
    settings = tmp_path / "installer.json"
    state = tmp_path / "state"
    settings.write_text(
        json.dumps(
            {"allowed_directories": [str(ssl_dir)], "apache_config": str(apache_config), "state_directory": str(state)}
        )
    )
    cert, key, chain = (
        ssl_dir / "certs" / "web.pem",
        ssl_dir / "private" / "web.key",
        ssl_dir / "certs" / "web-chain.pem",
    )
    environ = {
        "PATH": "/usr/bin:/bin",
        host_file.HOST_CONFIG_VARIABLE: str(settings),
        "SSM_SecretArn": ARN,
        "SSM_CertificateFile": str(cert),
        "SSM_KeyFile": str(key),
        "SSM_ChainFile": str(chain),
        "SSM_ServiceName": "apache2",
    }

    def bug(*_: Any) -> None:
        raise ZeroDivisionError

    monkeypatch.setattr(runs, "fetch_secret", bug)
    assert main.main(["certrotate-installer.py", "install"], environ) == output.Exit.INTERNAL
    (entry,) = json.loads((state / fleet_record.INVENTORY_STATE).read_text())["records"]
    assert entry["Status"] == "failed" and entry["ExitCode"] == "1" and entry["LastFailureSecretArn"] == ARN
    assert entry["SecretArn"] == ""  # nothing served: no secret is said to be served
    assert "unexpected ZeroDivisionError" in entry["Message"] and entry["Serial"] == ""


def test_the_served_check_is_a_field_of_the_run_bounded_and_absent_from_older_records() -> None:
    served = facts()
    base = fleet_record.RunReport(
        fleet_record.Served.INSTALLED, request(), FILES, served, None, False, 0, "", 1.8e9, "16/16"
    )
    entry = only(fleet_record.next_fleet_state(empty(), base, lambda path: True))
    assert entry["ServedCheck"] == "16/16"
    failed = base._replace(status=fleet_record.Served.FAILED, code=6, served_check="stale: 3/16 serial " + "A" * 300)
    entry = only(fleet_record.next_fleet_state(empty(), failed, lambda path: True))
    assert entry["Status"] == "failed" and len(entry["ServedCheck"]) == served_check.SUMMARY_LIMIT
    # a record an older installer kept (no ServedCheck) loads with it empty; the reader takes it as is
    older = {k: v for k, v in entry.items() if k != "ServedCheck"}
    loaded = fleet_record.load_fleet_state({"version": 2, "records": [older], "previous": {}})
    assert loaded.records[0]["ServedCheck"] == ""
    reports, problems = parse_reports("111122223333", "i-0123456789abcdef0", [older])
    assert problems == [] and reports[0].served_check == ""
