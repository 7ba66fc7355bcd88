"""The fleet view's pure core: the installer's inventory records → per-host states, hosts serving X."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rotation.fleet.scope import FleetScope, reader_covers
from rotation.fleet.view import (
    CurrentCertificate,
    HostReport,
    HostState,
    RunStatus,
    classify,
    fleet_view,
    hosts_serving,
    names_secret,
    normalize_fingerprint,
    normalize_serial,
    parse_records,
    parse_reports,
    secret_forms,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
INTERVAL = timedelta(minutes=30)
ARN = "arn:aws:secretsmanager:us-east-1:111122223333:secret:certs/web-AbCdEf"
CURRENT_FP = "ab" * 32
OLD_FP = "cd" * 32
CURRENT = CurrentCertificate(ARN, "1F2E3D", CURRENT_FP)


def colon_upper(fingerprint: str) -> str:
    """The installer's spelling: AB:CD:…"""
    text = fingerprint.upper()
    return ":".join(text[i : i + 2] for i in range(0, len(text), 2))


def record(
    *,
    fingerprint: str = CURRENT_FP,
    serial: str = "1F2E3D",
    status: str = "installed",
    minutes_ago: int = 5,
    **extra: str,
) -> dict[str, str]:
    return {
        "SecretArn": ARN,
        "VersionStage": "AWSCURRENT",
        "CertificateFile": "/etc/ssl/certs/web.pem",
        "Status": status,
        "ExitCode": "0" if status != "failed" else "6",
        "RecordedAt": (NOW - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Serial": serial,
        "FingerprintSha256": colon_upper(fingerprint),
        **extra,
    }


def one(entry: dict[str, str], instance: str = "i-0123456789abcdef0") -> HostReport:
    reports, problems = parse_reports("111122223333", instance, [entry])
    assert problems == []
    return reports[0]


def test_spellings_of_serial_and_fingerprint_are_one() -> None:
    assert normalize_fingerprint(colon_upper(CURRENT_FP)) == CURRENT_FP
    assert normalize_serial("00:1f:2E:3d") == "1F2E3D"
    assert normalize_serial("0") == "0" and normalize_serial("") == ""


@pytest.mark.parametrize(
    ("entry", "state"),
    [
        (record(), HostState.CURRENT),
        (record(status="unchanged"), HostState.CURRENT),
        (record(fingerprint=OLD_FP, serial="ABC"), HostState.OLDER),
        (record(status="failed", fingerprint=OLD_FP, serial="ABC"), HostState.FAILED),
        (record(minutes_ago=61), HostState.STALE),  # more than 2 intervals of 30 minutes
        (record(minutes_ago=60), HostState.CURRENT),  # exactly 2 intervals: not yet stale
        (record(status="failed", minutes_ago=90), HostState.STALE),
    ],
)
def test_each_record_has_one_state(entry: dict[str, str], state: HostState) -> None:
    assert classify(one(entry), CURRENT, NOW, INTERVAL) is state


def test_the_fingerprint_decides_not_the_serial() -> None:
    """Two certificates from different CAs can share a serial: the same serial with another
    fingerprint is not the current certificate."""
    assert classify(one(record(fingerprint=OLD_FP)), CURRENT, NOW, INTERVAL) is HostState.OLDER


def test_without_a_fingerprint_in_the_secret_the_serial_decides() -> None:
    by_serial = CurrentCertificate(ARN, "1F2E3D", "")
    assert classify(one(record(fingerprint=OLD_FP)), by_serial, NOW, INTERVAL) is HostState.CURRENT
    assert classify(one(record(serial="99")), by_serial, NOW, INTERVAL) is HostState.OLDER
    nothing = CurrentCertificate(ARN, "", "")
    assert classify(one(record()), nothing, NOW, INTERVAL) is HostState.UNKNOWN  # never "older" by default


def test_malformed_records_are_problems_never_reports() -> None:
    entries = [
        {"SecretArn": ARN},
        record(status="pwned"),
        record(RecordedAt="yesterday"),
        record(ExitCode="x"),
        record(),
    ]
    reports, problems = parse_reports("111122223333", "i-0123456789abcdef0", entries)
    assert len(reports) == 1 and reports[0].status is RunStatus.INSTALLED
    assert len(problems) == 4
    assert "missing CertificateFile" in problems[0] and "'pwned'" in problems[1]


def test_fleet_view_groups_by_secret_and_keeps_secrets_no_host_reported() -> None:
    other = "arn:aws:secretsmanager:us-east-1:111122223333:secret:certs/other-XyZ123"
    silent = "arn:aws:secretsmanager:us-east-1:111122223333:secret:certs/silent-QwErTy"
    reports = [
        one(record(), "i-0000000000000000a"),
        one(record(fingerprint=OLD_FP, serial="1"), "i-0000000000000000b"),
        one(record(SecretArn=other), "i-0000000000000000c"),
    ]
    fleets = {
        f.secret_arn: f
        for f in fleet_view(reports, {ARN: CURRENT, silent: CurrentCertificate(silent, "1", "")}, NOW, INTERVAL)
    }
    assert [h.report.instance_id for h in fleets[ARN].in_state(HostState.CURRENT)] == ["i-0000000000000000a"]
    assert [h.report.instance_id for h in fleets[ARN].in_state(HostState.OLDER)] == ["i-0000000000000000b"]
    assert fleets[silent].hosts == ()
    assert fleets[other].current is None and fleets[other].hosts[0].state is HostState.UNKNOWN


def test_hosts_serving_counts_failed_and_stale_hosts() -> None:
    """Revocation must not revoke what a failed or silent host may still serve."""
    reports = [
        one(record(fingerprint=OLD_FP, serial="A1", status="failed"), "i-0000000000000000a"),
        one(record(fingerprint=OLD_FP, serial="A1", minutes_ago=600), "i-0000000000000000b"),
        one(record(), "i-0000000000000000c"),
    ]
    by_fingerprint = hosts_serving(reports, colon_upper(OLD_FP))
    assert [r.instance_id for r in by_fingerprint] == ["i-0000000000000000a", "i-0000000000000000b"]
    assert [r.instance_id for r in hosts_serving(reports, "a1")] == ["i-0000000000000000a", "i-0000000000000000b"]
    assert hosts_serving(reports, "ee" * 32) == []


def test_a_host_installed_through_the_partial_arn_belongs_to_its_secret() -> None:
    """RunUpdateTLS accepts a secret's ARN without its random suffix: the host is that secret's, and current."""
    full = "arn:aws:secretsmanager:us-east-1:123456789012:secret:team-a/web-AbC123"
    now = datetime(2026, 12, 1, tzinfo=UTC)
    record = {
        "SecretArn": full[:-7],
        "CertificateFile": "/etc/ssl/certrotate/web.pem",
        "Status": "installed",
        "ExitCode": "0",
        "RecordedAt": "2026-12-01T00:00:00Z",
        "Serial": "0A1B",
        "FingerprintSha256": "AB" * 32,
    }
    reports, _ = parse_reports("123456789012", "i-0123456789abcdef0", [record])
    fleets = fleet_view(reports, {full: CurrentCertificate(full, "A1B", "ab" * 32)}, now, timedelta(minutes=30))
    assert [f.secret_arn for f in fleets] == [full]
    assert [v.state for v in fleets[0].hosts] == [HostState.CURRENT]


def test_the_served_check_is_read_when_present_and_never_required() -> None:
    """Records of installers before the served-truth check have no ServedCheck: still records."""
    assert one(record()).served_check == "" and one(record()).stale_serial == ""
    assert one(record(ServedCheck="16/16")).served_check == "16/16"
    stale = one(record(ServedCheck="stale: 3/16 serial 0a:1B, no handshake: 1/16, new: 12/16"))
    assert stale.stale_serial == "A1B"
    # whoever can PutInventory for the instance writes it: any other type is ignored, a long one cut
    reports, problems = parse_reports("111122223333", "i-0123456789abcdef0", [record(ServedCheck=["x"])])  # type: ignore[list-item]
    assert problems == [] and reports[0].served_check == ""
    assert len(one(record(ServedCheck="stale: " + "A" * 500)).served_check) == 128
    assert one(record(ServedCheck="stale: 3/16 serial " + "A" * 65)).stale_serial == ""


def test_a_host_whose_served_check_saw_the_old_serial_still_serves_it() -> None:
    """A worker left from an earlier reload still hands the old certificate to some connections:
    revocation must count the host as serving it (by serial: the check records no fingerprint)."""
    host = one(record(ServedCheck="stale: 2/16 serial 0C0FFEE, new: 14/16"))
    assert hosts_serving([host], "C0FFEE") == [host]
    assert hosts_serving([host], "1F2E3D") == [host]
    assert hosts_serving([one(record(ServedCheck="16/16"))], "C0FFEE") == []
    assert hosts_serving([host], OLD_FP) == []
    assert classify(host, CURRENT, NOW, INTERVAL) is HostState.CURRENT  # its record's own certificate decides


def test_a_record_names_a_secret_by_its_arn_partial_arn_or_name_and_nothing_else() -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:team-a/web-AbCdEf"
    assert secret_forms(arn) == [arn, "team-a/web-AbCdEf", arn[:-7], "team-a/web"]
    assert all(names_secret(form, arn) for form in secret_forms(arn))
    assert not names_secret("team-a/web-", arn) and not names_secret("", arn) and not names_secret("team-a", arn)


def test_the_scope_of_an_account_is_its_readers_prefixes_and_a_bad_record_keeps_the_secret_it_names() -> None:
    scope = FleetScope(readers=(("111111111111", "team-a/"),))
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:team-b/api-AbCdEf"
    assert not scope.concerns("111111111111", arn) and scope.concerns("123456789012", arn)
    assert scope.concerns("111111111111", arn.replace("team-b/api", "team-a/web"))
    assert reader_covers("team-a/", "team-a/web") and not reader_covers("team-a/", "team-b/api")
    _, (problem,) = parse_records("123456789012", "i-0bad0bad0bad0bad0", [{"SecretArn": arn, "Status": "installed"}])
    assert problem.secret_arn == arn and problem.serial == ""
