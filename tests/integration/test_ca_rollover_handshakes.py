"""Issue 27's proof: a CA rollover (RSA root to EC root) driven by ``certrotate ca-rollover`` across
Apache, nginx and HAProxy doing mutual TLS, judged by what clients see: 0 failed handshakes in every
phase (the fleet and its clients: :mod:`tests.support.rollover_fleet`). ``bench/ca_rollover_handshakes.py``
runs the same at 12 handshakes a second per server and prints the table.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.handshakes import table
from tests.support.rollover_fleet import Fleet, issuer_of, rotation_function, run_rollover


@pytest.fixture
def fleet(
    moto_endpoint: str, host_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Fleet]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    with rotation_function(moto_endpoint) as failures:
        fleet = Fleet(moto_endpoint, host_env, tmp_path)
        try:
            yield fleet
        finally:
            fleet.stop()
    assert failures == []


@pytest.mark.slow
def test_an_rsa_to_ec_root_rollover_fails_no_handshake_on_apache_nginx_and_haproxy(fleet: Fleet) -> None:
    """The operator runs ``start`` then ``advance`` until done, aborting once in move (the leaves go
    back to the old root, then move again); after each command the hosts run the association of
    what the phase changed (the bench runs both every time) while every client keeps shaking hands."""
    outcome = run_rollover(fleet, rate=4, every_association=False, abort_in=("move",))
    print(table(outcome.loads, outcome.phases))

    assert outcome.phases == ["before", "add", "prove", "move", "prove (abort)", "move again", "retire", "done"]
    failed = {
        server: {phase: t.failed for phase, t in by_phase.items()} for server, by_phase in outcome.tallies.items()
    }
    reasons = {
        s: {p: dict(t.reasons) for p, t in by_phase.items() if t.reasons} for s, by_phase in outcome.tallies.items()
    }
    assert failed == {server: dict.fromkeys(outcome.phases, 0) for server in fleet.servers}, reasons
    assert all(t.ok > 0 for by_phase in outcome.tallies.values() for t in by_phase.values())
    old, new = (
        {"CN=certrotate rollover RSA root,O=certrotate tests"},
        {"CN=certrotate rollover EC root,O=certrotate tests"},
    )
    assert {phase: outcome.issuers[phase] for phase in ("prove", "move", "prove (abort)", "move again", "done")} == {
        "prove": old,
        "move": new,
        "prove (abort)": old,  # the abort re-issued the leaves from the old root
        "move again": new,
        "done": new,
    }
    for load in outcome.loads:  # the clients can tell: an old-root client certificate is now refused
        assert load.handshake(outcome.old_client) != ""
    for server in fleet.servers.values():
        assert "EC root" in issuer_of(server)
        assert fleet.trust_file(server).read_text() == fleet.ca_pem(fleet.new)
