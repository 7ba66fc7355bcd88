"""Issue 28: what a host's CRL record says is wrong (``rotation.fleet.crl_view``), pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rotation.fleet.crl_view import CRL_KEYS, CrlHealth, health, parse_crl_records, problems

NOW = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)


def record(**fields: str) -> dict[str, str]:
    base = {key: "" for key in CRL_KEYS}
    base.update(CaName="Client CA A", CrlNumber="7", ThisUpdate="2026-12-06T04:00:00Z", Status="installed")
    base.update(NextUpdate="2026-12-13T04:00:00Z", ExitCode="0", Revoked="1")
    return {**base, **fields}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, CrlHealth.OK),
        ({"Status": "unchanged"}, CrlHealth.OK),
        ({"NextUpdate": "2026-12-07T04:00:00Z"}, CrlHealth.OK),  # at nextUpdate: still current
        ({"NextUpdate": "2026-12-07T03:59:59Z"}, CrlHealth.EXPIRED),
        ({"NextUpdate": "next week"}, CrlHealth.EXPIRED),  # not a time: cannot be shown current
        ({"NextUpdate": ""}, CrlHealth.OK),  # a CRL without nextUpdate never expires
        ({"Status": "failed", "ExitCode": "4"}, CrlHealth.FAILED),
        ({"Status": "failed", "NextUpdate": "2026-12-01T00:00:00Z"}, CrlHealth.FAILED),
    ],
)
def test_a_failed_refresh_or_a_crl_past_its_next_update_is_a_problem(
    fields: dict[str, str], expected: CrlHealth
) -> None:
    (report,) = parse_crl_records("111122223333", "i-0123456789abcdef0", [record(**fields)])
    assert health(report, NOW) is expected
    assert bool(problems([report], NOW)) == (expected is not CrlHealth.OK)


def test_each_problem_line_names_the_host_the_ca_and_why() -> None:
    reports = parse_crl_records(
        "111122223333",
        "i-0123456789abcdef0",
        [
            record(CaName="Old CA", NextUpdate=(NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")),
            record(CaName="", Status="failed", ExitCode="3", Message="a CRL source cannot be read"),
        ],
    )
    assert problems(reports, NOW) == [
        "111122223333/i-0123456789abcdef0 CRL of Old CA: past its nextUpdate 2026-12-07T03:00:00Z: "
        "the server refuses that CA's clients",
        "111122223333/i-0123456789abcdef0 CRL of (none installed): the latest refresh failed "
        "(exit 3: a CRL source cannot be read)",
    ]


def test_a_record_that_is_not_one_is_skipped() -> None:
    """A host's root writes its own inventory: a record missing a key, or not all strings, is not shown."""
    missing = {k: v for k, v in record().items() if k != "NextUpdate"}
    assert parse_crl_records("111122223333", "i-0123456789abcdef0", [missing, {**record(), "Revoked": 3}, "x"]) == []
