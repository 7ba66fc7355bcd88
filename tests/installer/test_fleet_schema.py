"""The fleet record's schema has one owner, the installer (``fleet_record.py``, ``served_check.py``:
stdlib-only and shipped alone in the documents, so it cannot import the Lambda's package); the
Lambda's reader (``rotation/fleet/view.py``, ``rotation/fleet/inventory.py``) is pinned to it here:
type name, statuses, every field the reader reads, the ServedCheck bound and its ``stale:`` form,
and the Server words the registry can write.
"""

from __future__ import annotations

from dataclasses import fields

from certrotate_installer import fleet_record, served_check
from certrotate_installer.servers import REGISTRY

from rotation.fleet import inventory as fleet_inventory
from rotation.fleet import view as fleet
from tests.installer.test_fleet_record import facts, request

# HostReport's fields and the record key each is read from (account, instance id and time aside).
READ_FROM = {
    "secret_arn": "SecretArn",
    "certificate_file": "CertificateFile",
    "status": "Status",
    "exit_code": "ExitCode",
    "serial": "Serial",
    "fingerprint": "FingerprintSha256",
    "not_after": "NotAfter",
    "subject": "Subject",
    "message": "Message",
    "version_stage": "VersionStage",
    "key_file": "KeyFile",
    "chain_file": "ChainFile",
    "https_port": "HttpsPort",
    "server": "Server",
    "served_check": "ServedCheck",
}


def test_the_reader_names_what_the_writer_writes() -> None:
    assert fleet.INVENTORY_TYPE == fleet_record.INVENTORY_TYPE
    assert {status.value for status in fleet.RunStatus} == {status.value for status in fleet_record.Served}
    assert set(fleet.REQUIRED) <= set(fleet_record.INVENTORY_KEYS)
    assert set(READ_FROM.values()) <= set(fleet_record.INVENTORY_KEYS)
    read = {f.name for f in fields(fleet.HostReport)} - {"account", "instance_id", "recorded_at"}
    assert read == set(READ_FROM)  # a field added to either side without the other fails here


def test_a_record_the_writer_makes_is_read_back_field_for_field() -> None:
    served = facts()
    summary = "stale: 3/16 serial 0AB1, new: 13/16" + ", +1 other" * 20  # longer than the bound: cut by both
    report = fleet_record.RunReport(
        fleet_record.Served.INSTALLED, request(), ("/c.pem", "/k.key", "/ch.pem"), served, None, False, 0, "m", 1.8e9
    )
    state = fleet_record.next_fleet_state(
        fleet_record.load_fleet_state(None), report._replace(served_check=summary), lambda path: True
    )
    (record,) = state.records
    (host,), problems = fleet.parse_records("111122223333", "i-0123456789abcdef0", [dict(record, Server="haproxy")])
    assert problems == []
    for attribute, key in READ_FROM.items():
        value = getattr(host, attribute)
        if attribute == "serial":
            assert value == fleet.normalize_serial(record[key])
        elif attribute == "fingerprint":
            assert value == fleet.normalize_fingerprint(record[key])
        elif attribute == "exit_code":
            assert value == int(record[key])
        elif attribute == "server":
            assert value == "haproxy"
        else:
            assert str(value) == record[key], attribute
    assert len(record["ServedCheck"]) == served_check.SUMMARY_LIMIT == fleet.SERVED_CHECK_LIMIT
    assert host.stale_serial == "AB1"  # read by the reader's pattern from what the writer kept


def test_the_writers_stale_summary_is_what_the_reader_filters_and_parses() -> None:
    summary = served_check.served_summary(["0A1B"] * 3 + [served_check.MATCH] * 13)
    assert summary == "stale: 3/16 serial 0A1B, new: 13/16"
    assert served_check.STALE_PREFIX == fleet.STALE_PREFIX == fleet_inventory.STALE_PREFIX
    assert summary.startswith(fleet.STALE_PREFIX)  # what read_records' BeginWith filter asks GetInventory for
    (host,), _ = fleet.parse_records("1", "i-1", [dict(RECORD, ServedCheck=summary)])
    assert host.stale_serial == "A1B"


RECORD = {
    "SecretArn": "arn",
    "CertificateFile": "/c.pem",
    "Status": "unchanged",
    "ExitCode": "0",
    "RecordedAt": "2027-01-15T08:00:00Z",
    "Serial": "0A1B",
    "FingerprintSha256": "CD",
}


def test_every_server_word_the_registry_can_write_fits_the_reader() -> None:
    assert all(len(name) <= fleet.SERVER_LIMIT for name in REGISTRY.names())


def test_the_trust_bundle_reader_names_what_the_writer_writes_and_reads_its_record_back() -> None:
    """Issue 27 item 1: ``certrotate hosts``' bundle table reads the installer's trust_record."""
    from certrotate_installer import trust_record

    from rotation.fleet import trust_view

    assert trust_view.TRUST_INVENTORY_TYPE == trust_record.TRUST_INVENTORY_TYPE
    assert trust_view.TRUST_KEYS == trust_record.TRUST_KEYS
    update = {key: "" for key in trust_record.TRUST_KEYS}
    update.update(BundleName="partners", FingerprintSha256="ab" * 32, Status="installed", ExitCode="0")
    installed = trust_record.next_trust_records(None, update)
    failed = trust_record.next_trust_records(installed, dict(update, FingerprintSha256="", Status="failed"))
    (report,) = trust_view.parse_trust_records("111122223333", "i-0123456789abcdef0", failed)
    assert report.bundle == "partners" and report.status == "failed"
    assert report.fingerprint == "ab" * 32  # a failed run keeps what the host last installed


def test_the_crl_reader_names_what_the_writer_writes_and_reads_its_record_back() -> None:
    """Issue 28: ``certrotate hosts``' CRL table reads the installer's crl_record, a failed run included."""
    from certrotate_installer import crl_record

    from rotation.fleet import crl_view

    assert crl_view.CRL_INVENTORY_TYPE == crl_record.CRL_INVENTORY_TYPE
    assert crl_view.CRL_KEYS == crl_record.CRL_KEYS
    entry = {key: "" for key in crl_record.CRL_KEYS}
    entry.update(CaName="Client CA A", CrlNumber="1765000000000", ThisUpdate="2026-12-07T04:00:00Z")
    entry.update(NextUpdate="2026-12-14T04:00:00Z", Revoked="2")
    installed = crl_record.next_crl_records(None, [entry], ("installed", 0, ""), 1.8e9)
    failed = crl_record.next_crl_records(installed, [], ("failed", 3, "a CRL source cannot be read"), 1.8e9 + 60)
    (report,) = crl_view.parse_crl_records("111122223333", "i-0123456789abcdef0", failed)
    assert (report.ca_name, report.crl_number, report.next_update) == (
        "Client CA A",
        "1765000000000",
        entry["NextUpdate"],
    )
    assert (report.status, report.exit_code, report.message) == ("failed", "3", "a CRL source cannot be read")
