"""The installer's fleet-view record (SSM custom inventory): its content and the host's merge."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

from tests.support.certs import LocalCA

ARN = "arn:aws:secretsmanager:us-east-1:111122223333:secret:certs/web-AbCdEf"
FILES = ("/etc/ssl/certs/web.pem", "/etc/ssl/private/web.key", "/etc/ssl/certs/web-chain.pem")


def request(program: ModuleType, secret_arn: str = ARN) -> Any:
    return program.Request(program.Action.INSTALL, secret_arn, "AWSCURRENT", FILES, "", 443, "graceful")


def test_a_record_holds_public_facts_only(program: ModuleType) -> None:
    bundle = LocalCA(name="Record CA").issue(["www.certrotate.test"])
    parsed = program.parse_bundle(bundle.certificate_pem, bundle.private_key_pem, bundle.chain_pem, ("c", "k", "ch"))
    entry = program.inventory_entry(request(program), FILES, parsed.facts, program.Served.INSTALLED, 0, "", 1.8e9)
    assert set(entry) == set(program.INVENTORY_KEYS) and all(isinstance(v, str) for v in entry.values())
    assert entry["Serial"] == bundle.serial_hex
    assert entry["FingerprintSha256"].replace(":", "").lower() == bundle.fingerprint_sha256
    assert entry["Status"] == "installed" and entry["RecordedAt"] == "2027-01-15T08:00:00Z"
    text = json.dumps(program.inventory_items([entry], 1.8e9))
    assert "PRIVATE KEY" not in text and "BEGIN" not in text
    assert len(entry) <= 50 and all(len(k) <= 64 for k in entry)  # PutInventory's map limits


def test_the_merge_keeps_the_other_files_and_replaces_this_one(program: ModuleType) -> None:
    def entry(file: str, secret: str, status: Any, when: float) -> dict[str, str]:
        files = (file, file + ".key", file + "-chain")
        return dict(program.inventory_entry(request(program, secret), files, None, status, 0, "", when))

    other = entry("/etc/ssl/certs/api.pem", ARN + "x", program.Served.INSTALLED, 1.7e9)
    old = entry(FILES[0], ARN, program.Served.INSTALLED, 1.7e9)
    new = entry(FILES[0], ARN, program.Served.FAILED, 1.8e9)
    merged = program.merge_inventory([old, other, {"not": "a record"}, "junk"], new)
    assert merged == sorted([other, new], key=lambda e: e["CertificateFile"])


def test_a_rollback_record_keeps_the_files_secret(program: ModuleType) -> None:
    installed = program.inventory_entry(request(program), FILES, None, program.Served.INSTALLED, 0, "", 1.7e9)
    rollback = program.inventory_entry(request(program, ""), FILES, None, program.Served.ROLLED_BACK, 0, "", 1.8e9)
    (merged,) = program.merge_inventory([installed], rollback)
    assert merged["SecretArn"] == ARN and merged["Status"] == "rolled-back"


def test_the_record_is_bounded(program: ModuleType) -> None:
    entries = [
        program.inventory_entry(
            request(program), (f"/etc/ssl/certs/{n}.pem", "k", "c"), None, program.Served.UNCHANGED, 0, "", 1e9 + n
        )
        for n in range(program.MAX_INVENTORY_ENTRIES + 5)
    ]
    merged = program.merge_inventory(entries[:-1], entries[-1])
    assert len(merged) == program.MAX_INVENTORY_ENTRIES
    assert entries[-1] in merged and entries[0] not in merged  # the oldest records go first


def test_without_the_agents_instance_id_nothing_is_sent(program: ModuleType) -> None:
    said = program.put_inventory([], {"PATH": "/nonexistent"})
    assert "AWS_SSM_INSTANCE_ID is not set" in said


def test_the_items_are_what_the_put_inventory_model_accepts(program: ModuleType) -> None:
    """botocore's own validator for PutInventory's input shape (types, required members, lengths)."""
    import botocore.session
    from botocore.validate import ParamValidator

    bundle = LocalCA(name="Shape CA").issue(["www.certrotate.test"])
    parsed = program.parse_bundle(bundle.certificate_pem, bundle.private_key_pem, bundle.chain_pem, ("c", "k", "ch"))
    entry = program.inventory_entry(request(program), FILES, parsed.facts, program.Served.FAILED, 5, "x" * 5000, 1.8e9)
    items = program.inventory_items([entry], 1.8e9)
    shape = botocore.session.get_session().get_service_model("ssm").operation_model("PutInventory").input_shape
    report = ParamValidator().validate({"InstanceId": "i-0123456789abcdef0", "Items": items}, shape)
    assert not report.has_errors(), report.generate_report()
    assert len(entry["Message"]) == program.MESSAGE_LIMIT <= 4096  # a value's limit in the API reference


def test_an_unexpected_error_is_recorded_too(program: ModuleType, tmp_path: Any, monkeypatch: Any) -> None:
    """A bug before any change (exit 1) still leaves a failed record, kept on the host when the
    installer runs outside the SSM agent (no AWS_SSM_INSTANCE_ID)."""
    ssl_dir = tmp_path / "ssl"
    (ssl_dir / "certs").mkdir(parents=True)
    (ssl_dir / "private").mkdir(mode=0o700)
    apache_config = tmp_path / "apache2.conf"
    apache_config.write_text("# not read: the run fails before Apache\n")
    host_file = tmp_path / "installer.json"
    state = tmp_path / "state"
    host_file.write_text(
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
        program.HOST_CONFIG_VARIABLE: str(host_file),
        "SSM_SecretArn": ARN,
        "SSM_CertificateFile": str(cert),
        "SSM_KeyFile": str(key),
        "SSM_ChainFile": str(chain),
        "SSM_ServiceName": "apache2",
    }

    def bug(*_: Any) -> None:
        raise ZeroDivisionError

    monkeypatch.setattr(program, "fetch_secret", bug)
    assert program.main(["install_certificate.py", "install"], environ) == program.Exit.INTERNAL
    (entry,) = json.loads((state / program.INVENTORY_STATE).read_text())
    assert entry["Status"] == "failed" and entry["ExitCode"] == "1" and entry["SecretArn"] == ARN
    assert "unexpected ZeroDivisionError" in entry["Message"] and entry["Serial"] == ""  # nothing served yet
