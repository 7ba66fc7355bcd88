"""The pure revocation decisions (rotation.revocation): one outcome per ledger entry."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from rotation.fleet import HostReport, RunStatus
from rotation.revocation import IssuedCertificate, Outcome, history_state, plan_superseded

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
