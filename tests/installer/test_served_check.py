"""The served-truth check on its own: real TLS servers, real handshakes, a stale worker that is a
real process in the port's SO_REUSEPORT group (tests/support/stale_worker.py).

Two (or three) of those processes share one loopback port, so the kernel spreads fresh connections
over them as it spreads them over the workers of a server: one serving the expected certificate,
one an old one, one that drops connections, one that drains. The check is the program's
``prove_served`` (served_check.py), run here with short bounds; through the document and the real Apache it is
tested in tests/integration/test_served_truth.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from certrotate_installer import served_check as check
from certrotate_installer import validation

from rotation.cli.local_apache import free_port
from rotation.fleet.view import HostReport, RunStatus
from rotation.issuance.bundle import CertBundle
from tests.support.certs import LocalCA
from tests.support.stale_worker import stale_worker

HOSTNAME = "www.certrotate.test"


def files(tmp_path: Path, name: str, bundle: CertBundle) -> tuple[Path, Path]:
    cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert.write_text(bundle.certificate_pem + bundle.chain_pem)
    key.write_text(bundle.private_key_pem)
    key.chmod(0o600)
    return cert, key


def facts_of(bundle: CertBundle) -> Any:
    parsed = validation.parse_bundle(bundle.certificate_pem, bundle.private_key_pem, bundle.chain_pem, ("c", "k", "ch"))
    return parsed.facts


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[tuple[int, dict[str, tuple[Path, Path]], dict[str, CertBundle]]]:
    ca = LocalCA(name="Served Check CA")
    bundles = {"new": ca.issue([HOSTNAME]), "old": ca.issue([HOSTNAME])}
    yield free_port(), {name: files(tmp_path, name, bundle) for name, bundle in bundles.items()}, bundles


def test_every_worker_on_the_new_certificate_passes(scene: Any) -> None:
    port, paths, bundles = scene
    with stale_worker(port, *paths["new"]), stale_worker(port, *paths["new"]):
        proof = check.prove_served(lambda: [("127.0.0.1", port)], HOSTNAME, facts_of(bundles["new"]), 10.0)
    assert proof.ok, proof
    assert proof.labels == (check.MATCH,) * check.SAMPLE
    assert proof.summary == f"{check.SAMPLE}/{check.SAMPLE}"
    # the proof spans its window: the first sighting, then SERVED_SAMPLE / SERVED_ROUND rounds
    rounds = check.SAMPLE // check.ROUND
    assert proof.seconds >= (rounds - 1) * check.SPACING


def test_a_stale_worker_beside_the_new_one_fails_the_check_with_its_serial_and_counts(scene: Any) -> None:
    port, paths, bundles = scene
    new, old = facts_of(bundles["new"]), facts_of(bundles["old"])
    started = time.monotonic()
    with stale_worker(port, *paths["new"]), stale_worker(port, *paths["old"]) as stale:
        proof = check.prove_served(lambda: [("127.0.0.1", port)], HOSTNAME, new, 2.0)
        served_by_stale = stale.lines().count("served")
    took = time.monotonic() - started
    assert not proof.ok
    assert len(proof.labels) == check.SAMPLE
    stale_count = proof.labels.count(old.serial_hex)
    new_count = proof.labels.count(check.MATCH)
    assert stale_count >= 1 and served_by_stale >= stale_count
    assert stale_count + new_count == check.SAMPLE  # every connection had a handshake
    assert proof.summary.startswith(f"stale: {stale_count}/16 serial {old.serial_hex},")
    assert proof.summary.endswith(f"new: {new_count}/16")
    why = proof.why(port)
    assert f"{stale_count} serial {old.serial_hex}" in why
    assert f"{new_count} the expected serial {new.serial_hex}" in why
    # bounded: the 2 s bound, extended to SERVED_PROOF_SECONDS after the first sighting
    assert took < 2.0 + check.PROOF_SECONDS + 5


def test_only_the_old_certificate_served_is_reported_as_such(scene: Any) -> None:
    port, paths, bundles = scene
    old = facts_of(bundles["old"])
    with stale_worker(port, *paths["old"]):
        proof = check.prove_served(lambda: [("127.0.0.1", port)], HOSTNAME, facts_of(bundles["new"]), 1.0)
    assert not proof.ok and set(proof.labels) == {old.serial_hex}
    assert proof.summary == f"stale: {len(proof.labels)}/{len(proof.labels)} serial {old.serial_hex}, " + (
        f"new: 0/{len(proof.labels)}"
    )


def test_nothing_answering_fails_within_the_bound(scene: Any) -> None:
    port, _, bundles = scene
    started = time.monotonic()
    proof = check.prove_served(lambda: [("127.0.0.1", port)], HOSTNAME, facts_of(bundles["new"]), 1.0)
    assert time.monotonic() - started < 3
    assert not proof.ok and set(proof.labels) == {check.NO_TLS}
    assert proof.why(port).startswith(f"nothing answers TLS on port {port}")
    assert proof.summary.startswith("no handshake: ")


def test_a_worker_that_drops_connections_fails_the_check(scene: Any) -> None:
    port, paths, bundles = scene
    with stale_worker(port, *paths["new"]), stale_worker(port, *paths["new"], mode="drop"):
        proof = check.prove_served(lambda: [("127.0.0.1", port)], HOSTNAME, facts_of(bundles["new"]), 1.0)
    assert not proof.ok
    dropped = proof.labels.count(check.NO_TLS)
    assert dropped >= 1 and dropped + proof.labels.count(check.MATCH) == check.SAMPLE
    assert f"no handshake: {dropped}/16" in proof.summary
    assert f"{dropped} no TLS handshake" in proof.why(port)


@pytest.mark.parametrize("mode", ["serve", "drop"])
def test_a_stale_or_failing_worker_that_drains_within_the_bound_passes(scene: Any, tmp_path: Path, mode: str) -> None:
    """Intermittent: the other worker is there for the first rounds, then drains; the check waits
    it out and passes with 16 fresh connections on the new certificate after it left."""
    port, paths, bundles = scene
    trigger = tmp_path / "trigger"
    with ExitStack() as stack:
        stack.enter_context(stale_worker(port, *paths["new"]))
        other = stack.enter_context(
            stale_worker(port, *paths["old"], mode=mode, drain_on_change=trigger, drain_after=1.5)
        )
        trigger.write_text("reloaded")
        proof = check.prove_served(lambda: [("127.0.0.1", port)], HOSTNAME, facts_of(bundles["new"]), 10.0)
        lines = other.lines()
    assert proof.ok, proof.why(port)
    assert "drained" in lines
    assert lines.count("served" if mode == "serve" else "dropped") >= 1  # the other worker did take connections
    assert proof.seconds > 1.5


def test_the_summary_is_bounded_and_names_the_most_frequent_other_serial_in_full() -> None:
    """In full: revocation matches the serial (rotation.fleet.view.HostReport.stale_serial)."""
    long_serial = "AB" * 20
    labels = (long_serial,) * 9 + ("01",) * 2 + (check.NO_TLS,) * 1 + (check.MATCH,) * 4
    summary = check.served_summary(labels)
    assert summary == f"stale: 9/16 serial {long_serial}, +2 other, no handshake: 1/16, new: 4/16"
    assert len(summary) <= check.SUMMARY_LIMIT
    assert check.served_summary(()) == ""
    proof = check.ServedProof(False, labels, "CD", 30.2)
    why = proof.why(8443)
    assert why.startswith("of the last 16 fresh connections to port 8443 (in 30.2 s), 9 serial " + long_serial)
    assert "4 the expected serial CD" in why and "1 no TLS handshake" in why and "2 serial 01" in why
    assert "another certificate" in why
    # what the fleet reader makes of it: the stale serial revocation holds
    report = HostReport(
        "1", "i-1", "arn", "/c.pem", RunStatus.UNCHANGED, 0, datetime.now(UTC), "CD", "", served_check=summary
    )
    assert report.stale_serial == long_serial
