"""The pure revocation decisions (rotation.fleet.revocation): one outcome per ledger entry."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from rotation.fleet.revocation import (
    CLOCK_SKEW,
    HOLDER_RELEASE_AFTER,
    Decision,
    FleetEvidence,
    IssuedCertificate,
    Outcome,
    candidates,
    history_state,
    hold_or_revoke,
    plan_superseded,
)
from rotation.fleet.scope import FleetScope, ScopeError
from rotation.fleet.view import HostReport, RecordProblem, RunStatus

NOW = datetime(2026, 6, 1, tzinfo=UTC)
ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:www-AbCdEf"
CA = "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/11111111-2222-3333-4444-555555555555"


def entry(serial: str, *, replaced_days_ago: float | None, **changes: object) -> IssuedCertificate:
    base = IssuedCertificate(
        secret_arn=ARN,
        serial=serial,
        ca_arn=CA,
        certificate_type="PCA_ISSUED",
        version_id=f"v-{serial}",
        issued_at=NOW - timedelta(days=40),
        not_after=NOW + timedelta(days=300),
        current_from=NOW - timedelta(days=40),
        superseded_at=None if replaced_days_ago is None else NOW - timedelta(days=replaced_days_ago),
    )
    return replace(base, **changes)


def host(serial: str, instance: str = "i-0123456789abcdef0") -> HostReport:
    return HostReport("123456789012", instance, ARN, "/etc/ssl/www.pem", RunStatus.FAILED, 6, NOW, serial, "")


def outcomes(
    entries: list[IssuedCertificate], *, in_use: tuple[str, ...] = (), served: tuple[str, ...] = ()
) -> dict[str, Outcome]:
    reports = [host(s) for s in served]
    decisions = plan_superseded(
        entries, in_use, lambda s: [r for r in reports if r.serial == s], NOW, timedelta(days=7)
    )
    return {d.certificate.serial: d.outcome for d in decisions}


def test_each_entry_gets_the_one_outcome_that_applies_first() -> None:
    entries = [
        entry("A1", replaced_days_ago=30, revoked_at=NOW - timedelta(days=20), revocation_reason="SUPERSEDED"),
        entry("B2", replaced_days_ago=20, not_after=NOW - timedelta(seconds=1)),
        entry("C3", replaced_days_ago=8),
        entry("D4", replaced_days_ago=6.9),
        entry("E5", replaced_days_ago=8),
        entry("F6", replaced_days_ago=None),
        entry("A7", replaced_days_ago=30),  # superseded in the ledger, yet AWSCURRENT holds it again
    ]
    assert outcomes(entries, in_use=("0a7",), served=("E5",)) == {
        "A1": Outcome.ALREADY_REVOKED,
        "B2": Outcome.EXPIRED,
        "C3": Outcome.REVOKE,
        "D4": Outcome.IN_GRACE,
        "E5": Outcome.SERVED,  # a failed host still serves what it last reported
        "F6": Outcome.NOT_SUPERSEDED,
        "A7": Outcome.CURRENT,
    }


def test_a_served_decision_names_the_hosts_and_the_pca_serial_is_lowercase_colon_separated_bytes() -> None:
    reports = [host("C3", "i-0bbbbbbbbbbbbbbbb"), host("C3", "i-0aaaaaaaaaaaaaaaa")]
    (decision,) = plan_superseded([entry("C3", replaced_days_ago=8)], (), lambda s: reports, NOW, timedelta(0))
    assert decision.outcome is Outcome.SERVED
    assert decision.served_by == ("123456789012/i-0aaaaaaaaaaaaaaaa", "123456789012/i-0bbbbbbbbbbbbbbbb")
    # Issue 16 item 11: lowercase, as every RevokeCertificate example in the API reference writes it.
    assert entry("ABC", replaced_days_ago=1).pca_serial == "0a:bc"


def test_history_states() -> None:
    assert history_state(entry("A", replaced_days_ago=None), NOW) == "current"
    assert history_state(entry("A", replaced_days_ago=None, current_from=None), NOW) == "issued, never current"
    assert history_state(entry("A", replaced_days_ago=1), NOW) == "superseded, valid"
    assert history_state(entry("A", replaced_days_ago=1, not_after=NOW), NOW) == "expired"
    revoked = entry("A", replaced_days_ago=1, revoked_at=NOW, revocation_reason="KEY_COMPROMISE")
    assert history_state(revoked, NOW) == "revoked (KEY_COMPROMISE)"


def test_a_record_naming_the_fingerprint_holds_whatever_serial_or_secret_it_names() -> None:
    """Issue 16 item 1: matched by serial or fingerprint; the record's SecretArn plays no part."""
    old = entry("C3", replaced_days_ago=8, fingerprint="ab" * 32)
    by_fingerprint = replace(host("99"), secret_arn="made-up", fingerprint="ab" * 32)
    (decision,) = hold_or_revoke(candidates([old], (), NOW, timedelta(0)), FleetEvidence((by_fingerprint,)), NOW)
    assert decision.outcome is Outcome.SERVED and decision.served_by == ("123456789012/i-0123456789abcdef0",)


def test_an_unreadable_record_holds_only_the_certificate_it_names() -> None:
    """Issue 16 item 2: the bound of an unreadable record is the serial (or fingerprint) it names."""
    first, second = entry("C3", replaced_days_ago=8), entry("D4", replaced_days_ago=8)
    bad = RecordProblem("123456789012", "i-0bad0bad0bad0bad0", "where", "missing Status", serial="C3")
    nameless = RecordProblem("123456789012", "i-0bad0bad0bad0bad1", "where", "missing Serial")
    decisions = hold_or_revoke(
        candidates([first, second], (), NOW, timedelta(0)), FleetEvidence((), (bad, nameless)), NOW
    )
    by_serial = {d.certificate.serial: d for d in decisions}
    assert by_serial["C3"].outcome is Outcome.HELD and "i-0bad0bad0bad0bad0" in by_serial["C3"].detail
    assert by_serial["D4"].outcome is Outcome.REVOKE


def test_an_unreadable_account_holds_every_candidate_of_the_secret_naming_the_account() -> None:
    decisions = hold_or_revoke(
        candidates([entry("C3", replaced_days_ago=8)], (), NOW, timedelta(0)),
        FleetEvidence(unreadable=("111111111111 in eu-west-1 unreadable: AccessDenied",)),
        NOW,
    )
    assert decisions[0].outcome is Outcome.HELD and "111111111111 in eu-west-1" in decisions[0].detail


def test_a_past_holder_releases_only_with_a_newer_certificate_reported_after_it_became_current() -> None:
    """Issue 16 item 3: a host that served C3 must now report a successor, recorded after that
    successor became current; a vanished record or a serial never delivered holds."""
    old = entry("C3", replaced_days_ago=8, held_by=("123456789012/i-0123456789abcdef0",))
    new = entry("D4", replaced_days_ago=None, current_from=NOW - timedelta(days=8))
    plan = candidates([old, new], ("D4",), NOW, timedelta(0))

    def outcome(*reports: HostReport) -> Outcome:
        return {d.certificate.serial: d.outcome for d in hold_or_revoke(plan, FleetEvidence(reports), NOW)}["C3"]

    assert outcome() is Outcome.HELD  # the record vanished
    assert outcome(host("FF")) is Outcome.HELD  # a serial the secret never delivered
    assert outcome(replace(host("D4"), recorded_at=NOW - timedelta(days=9))) is Outcome.HELD  # dated before
    assert outcome(host("D4")) is Outcome.REVOKE


def test_rotation_scope_readers_bound_which_accounts_concern_a_secret() -> None:
    scope = FleetScope(readers=(("111111111111", "web/"),))
    assert scope.concerns("111111111111", "arn:aws:secretsmanager:us-east-1:123456789012:secret:web/a-AbCdEf")
    assert not scope.concerns("111111111111", "arn:aws:secretsmanager:us-east-1:123456789012:secret:db/a-AbCdEf")
    assert scope.concerns("123456789012", "arn:aws:secretsmanager:us-east-1:123456789012:secret:db/a-AbCdEf")
    assert FleetScope().concerns("111111111111", "arn:aws:secretsmanager:us-east-1:123456789012:secret:db/a-AbCdEf")
    with pytest.raises(ScopeError, match="CERTROTATE_SECRET_READERS"):
        FleetScope.from_environment({"CERTROTATE_SECRET_READERS": "1111:web/"})
    assert FleetScope.from_environment(
        {"CERTROTATE_SECRET_READERS": "111111111111:web/,222222222222:db/", "CERTROTATE_FLEET_REGIONS": "eu-west-1"}
    ) == FleetScope(("eu-west-1",), (("111111111111", "web/"), ("222222222222", "db/")))
    for prefix in ("", "web", "/", "web//"):  # issue 25 item 4: every secret, or a raw string prefix
        with pytest.raises(ScopeError, match="each ending in /"):
            FleetScope.from_environment({"CERTROTATE_SECRET_READERS": f"111111111111:web/,222222222222:{prefix}"})


def test_a_certificate_a_stale_worker_still_serves_is_not_revoked() -> None:
    """The host's record says it serves the new certificate, but its served check saw a worker
    present the superseded one: revoking it would break those connections."""
    old, new = entry("C3", replaced_days_ago=8), entry("D4", replaced_days_ago=None)
    on_new = replace(
        host("D4"), status=RunStatus.UNCHANGED, exit_code=0, served_check="stale: 3/16 serial C3, new: 13/16"
    )
    plan = candidates([old, new], ("D4",), NOW, timedelta(0))
    (decision,) = [d for d in hold_or_revoke(plan, FleetEvidence((on_new,)), NOW) if d.certificate.serial == "C3"]
    assert decision.outcome is Outcome.SERVED and decision.served_by == ("123456789012/i-0123456789abcdef0",)
    proven = replace(on_new, served_check="16/16")
    assert old_outcome(plan, proven) is Outcome.REVOKE


def test_a_stale_serial_counts_only_in_a_record_of_a_certificate_of_that_secret() -> None:
    """Issue 25 item 8: a host's served check can be made to see any serial (a local user's listener
    once answered it), and a record may name any secret. A stale serial holds a revocation only when
    the record's own certificate is one this secret's rotations received."""
    old, new = entry("C3", replaced_days_ago=8), entry("D4", replaced_days_ago=None)
    plan = candidates([old, new], ("D4",), NOW, timedelta(0))
    forged = "stale: 16/16 serial C3, new: 0/16"
    other_secret = replace(host("E5"), secret_arn=ARN.replace("www-", "db-"), served_check=forged)
    made_up = replace(host("FFFF"), served_check=forged)
    for record in (other_secret, made_up):
        assert old_outcome(plan, record) is Outcome.REVOKE, record
    # the same served check in a record of this secret's current certificate holds it
    assert old_outcome(plan, replace(host("D4"), served_check=forged)) is Outcome.SERVED


def old_outcome(plan: list[Decision], record: HostReport) -> Outcome:
    """The outcome for C3 (the superseded entry) with ``record`` the only one."""
    (decision,) = [d for d in hold_or_revoke(plan, FleetEvidence((record,)), NOW) if d.certificate.serial == "C3"]
    return decision.outcome


OTHER = "111111111111"
TEAM_A_ONLY = FleetScope(readers=((OTHER, "team-a/"),))


def test_records_and_past_holders_of_an_account_that_may_not_read_the_secret_count_for_nothing() -> None:
    """Issue 25 item 2: the SecretReaders scope applies to readable records too, and to HeldBy."""
    old = entry("C3", replaced_days_ago=8, held_by=(f"{OTHER}/i-0a0a0a0a0a0a0a0a0",))
    foreign = replace(host("C3", "i-0a0a0a0a0a0a0a0a0"), account=OTHER)
    unreadable = RecordProblem(OTHER, "i-0a0a0a0a0a0a0a0a1", "where", "missing Status", serial="C3")
    (decision,) = hold_or_revoke(
        candidates([old], (), NOW, timedelta(0)), FleetEvidence((foreign,), (unreadable,), scope=TEAM_A_ONLY), NOW
    )
    assert decision.outcome is Outcome.REVOKE
    assert decision.released == (f"{OTHER}/i-0a0a0a0a0a0a0a0a0: its account may not read this secret (SecretReaders)",)
    # the same records hold a secret that account may read
    readable = replace(old, secret_arn=ARN.replace(":www-", ":team-a/www-"))
    (held,) = hold_or_revoke(
        candidates([readable], (), NOW, timedelta(0)),
        FleetEvidence((replace(foreign, secret_arn=readable.secret_arn),), (unreadable,), scope=TEAM_A_ONLY),
        NOW,
    )
    assert held.outcome is Outcome.SERVED and held.served_by == (f"{OTHER}/i-0a0a0a0a0a0a0a0a0",)


def test_host_holds_end_after_the_release_time_and_not_before() -> None:
    """A record dated past HOLDER_RELEASE_AFTER, or in the future, serves nothing; a past holder and an
    unreadable record naming the serial hold until that long after a host was last seen serving it."""
    last = NOW - HOLDER_RELEASE_AFTER
    holder = "123456789012/i-0123456789abcdef0"
    bad = RecordProblem("123456789012", "i-0bad0bad0bad0bad0", "where", "missing Status", serial="C3")
    for seen, expected in ((last + timedelta(hours=1), Outcome.HELD), (last - timedelta(hours=1), Outcome.REVOKE)):
        old = entry("C3", replaced_days_ago=100, held_by=(holder,), last_served_at=seen)
        (decision,) = hold_or_revoke(candidates([old], (), NOW, timedelta(0)), FleetEvidence((), (bad,)), NOW)
        assert decision.outcome is expected, seen
        assert len(decision.released) == (2 if expected is Outcome.REVOKE else 0)
    old = entry("C3", replaced_days_ago=1)
    for recorded, expected in (
        (NOW - HOLDER_RELEASE_AFTER + timedelta(hours=1), Outcome.SERVED),
        (NOW - HOLDER_RELEASE_AFTER - timedelta(hours=1), Outcome.REVOKE),
        (NOW + CLOCK_SKEW + timedelta(hours=1), Outcome.REVOKE),
    ):
        record = replace(host("C3"), recorded_at=recorded)
        (decision,) = hold_or_revoke(candidates([old], (), NOW, timedelta(0)), FleetEvidence((record,)), NOW)
        assert decision.outcome is expected, recorded
    served = replace(host("C3"), recorded_at=NOW - timedelta(days=3))
    (decision,) = hold_or_revoke(candidates([old], (), NOW, timedelta(0)), FleetEvidence((served,)), NOW)
    assert decision.heard_at == NOW - timedelta(days=3)  # what the ledger's LastServedAt becomes


@pytest.mark.parametrize("named", [ARN, ARN[:-7], "www-AbCdEf", "www"])
def test_an_unreadable_record_naming_the_secret_without_a_serial_holds_it_and_no_other(named: str) -> None:
    """Issue 25 item 5."""
    nameless = RecordProblem("123456789012", "i-0bad0bad0bad0bad1", "where", "missing Serial", secret_arn=named)
    other = replace(entry("D4", replaced_days_ago=8), secret_arn=ARN.replace(":www-", ":api-"))
    (mine,) = hold_or_revoke(
        candidates([entry("C3", replaced_days_ago=8)], (), NOW, timedelta(0)), FleetEvidence((), (nameless,)), NOW
    )
    (theirs,) = hold_or_revoke(candidates([other], (), NOW, timedelta(0)), FleetEvidence((), (nameless,)), NOW)
    assert mine.outcome is Outcome.HELD and "names this secret, its serial unreadable" in mine.detail
    assert theirs.outcome is Outcome.REVOKE


def test_a_record_of_the_secret_whose_serial_is_not_a_serial_holds_it_and_an_empty_one_holds_nothing() -> None:
    old = entry("C3", replaced_days_ago=8)
    garbage = replace(host("C3"), serial="NOT-A-SERIAL", fingerprint="")
    (decision,) = hold_or_revoke(candidates([old], (), NOW, timedelta(0)), FleetEvidence((garbage,)), NOW)
    assert decision.outcome is Outcome.HELD and "record names this secret, its serial unreadable" in decision.detail
    no_file = replace(host("C3"), serial="", fingerprint="")  # the installer found no certificate in the file
    (decision,) = hold_or_revoke(candidates([old], (), NOW, timedelta(0)), FleetEvidence((no_file,)), NOW)
    assert decision.outcome is Outcome.REVOKE
