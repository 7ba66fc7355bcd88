"""The served-truth check on its own: real TLS servers, real handshakes, a stale worker that is a
real process in the port's SO_REUSEPORT group (tests/support/stale_worker.py).

Two (or three) of those processes share one loopback port, so the kernel spreads fresh connections
over them as it spreads them over the workers of a server: one serving the expected certificate,
one an old one, one that drops connections, one that drains. The check is the program's
``prove_served``, run here with short bounds; through the document and the real Apache it is
tested in tests/integration/test_served_truth.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from rotation.bundle import CertBundle
from rotation.cli.local_apache import free_port
from tests.support.certs import LocalCA
from tests.support.stale_worker import stale_worker

HOSTNAME = "www.certrotate.test"


def files(tmp_path: Path, name: str, bundle: CertBundle) -> tuple[Path, Path]:
    cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert.write_text(bundle.certificate_pem + bundle.chain_pem)
    key.write_text(bundle.private_key_pem)
    key.chmod(0o600)
    return cert, key


def facts_of(program: ModuleType, bundle: CertBundle) -> Any:
    parsed = program.parse_bundle(bundle.certificate_pem, bundle.private_key_pem, bundle.chain_pem, ("c", "k", "ch"))
    return parsed.facts


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[tuple[int, dict[str, tuple[Path, Path]], dict[str, CertBundle]]]:
    ca = LocalCA(name="Served Check CA")
    bundles = {"new": ca.issue([HOSTNAME]), "old": ca.issue([HOSTNAME])}
    yield free_port(), {name: files(tmp_path, name, bundle) for name, bundle in bundles.items()}, bundles


def test_every_worker_on_the_new_certificate_passes(program: ModuleType, scene: Any) -> None:
    port, paths, bundles = scene
    with stale_worker(port, *paths["new"]), stale_worker(port, *paths["new"]):
        proof = program.prove_served(port, HOSTNAME, facts_of(program, bundles["new"]), 10.0)
    assert proof.ok, proof
    assert proof.labels == (program.MATCH,) * program.SERVED_SAMPLE
    assert proof.summary == f"{program.SERVED_SAMPLE}/{program.SERVED_SAMPLE}"
    # the proof spans its window: the first sighting, then SERVED_SAMPLE / SERVED_ROUND rounds
    rounds = program.SERVED_SAMPLE // program.SERVED_ROUND
    assert proof.seconds >= (rounds - 1) * program.SERVED_SPACING


def test_a_stale_worker_beside_the_new_one_fails_the_check_with_its_serial_and_counts(
    program: ModuleType, scene: Any
) -> None:
    port, paths, bundles = scene
    new, old = facts_of(program, bundles["new"]), facts_of(program, bundles["old"])
    started = time.monotonic()
    with stale_worker(port, *paths["new"]), stale_worker(port, *paths["old"]) as stale:
        proof = program.prove_served(port, HOSTNAME, new, 2.0)
        served_by_stale = stale.lines().count("served")
    took = time.monotonic() - started
    assert not proof.ok
    assert len(proof.labels) == program.SERVED_SAMPLE
    stale_count = proof.labels.count(old.serial_hex)
    new_count = proof.labels.count(program.MATCH)
    assert stale_count >= 1 and served_by_stale >= stale_count
    assert stale_count + new_count == program.SERVED_SAMPLE  # every connection had a handshake
    assert proof.summary.startswith(f"stale: {stale_count}/16 serial {old.serial_hex[:20]}")
    assert proof.summary.endswith(f"new: {new_count}/16")
    why = proof.why(port)
    assert f"{stale_count} serial {old.serial_hex}" in why
    assert f"{new_count} the expected serial {new.serial_hex}" in why
    # bounded: the 2 s bound, extended to SERVED_PROOF_SECONDS after the first sighting
    assert took < 2.0 + program.SERVED_PROOF_SECONDS + 5


def test_only_the_old_certificate_served_is_reported_as_such(program: ModuleType, scene: Any) -> None:
    port, paths, bundles = scene
    old = facts_of(program, bundles["old"])
    with stale_worker(port, *paths["old"]):
        proof = program.prove_served(port, HOSTNAME, facts_of(program, bundles["new"]), 1.0)
    assert not proof.ok and set(proof.labels) == {old.serial_hex}
    assert proof.summary == f"stale: {len(proof.labels)}/{len(proof.labels)} serial {old.serial_hex[:20]}..., " + (
        f"new: 0/{len(proof.labels)}"
    )


def test_nothing_answering_fails_within_the_bound(program: ModuleType, scene: Any) -> None:
    port, _, bundles = scene
    started = time.monotonic()
    proof = program.prove_served(port, HOSTNAME, facts_of(program, bundles["new"]), 1.0)
    assert time.monotonic() - started < 3
    assert not proof.ok and set(proof.labels) == {program.NO_TLS}
    assert proof.why(port).startswith(f"nothing answers TLS on port {port}")
    assert proof.summary.startswith("no handshake: ")


def test_a_worker_that_drops_connections_fails_the_check(program: ModuleType, scene: Any) -> None:
    port, paths, bundles = scene
    with stale_worker(port, *paths["new"]), stale_worker(port, *paths["new"], mode="drop"):
        proof = program.prove_served(port, HOSTNAME, facts_of(program, bundles["new"]), 1.0)
    assert not proof.ok
    dropped = proof.labels.count(program.NO_TLS)
    assert dropped >= 1 and dropped + proof.labels.count(program.MATCH) == program.SERVED_SAMPLE
    assert f"no handshake: {dropped}/16" in proof.summary
    assert f"{dropped} no TLS handshake" in proof.why(port)


@pytest.mark.parametrize("mode", ["serve", "drop"])
def test_a_stale_or_failing_worker_that_drains_within_the_bound_passes(
    program: ModuleType, scene: Any, tmp_path: Path, mode: str
) -> None:
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
        proof = program.prove_served(port, HOSTNAME, facts_of(program, bundles["new"]), 10.0)
        lines = other.lines()
    assert proof.ok, proof.why(port)
    assert "drained" in lines
    assert lines.count("served" if mode == "serve" else "dropped") >= 1  # the other worker did take connections
    assert proof.seconds > 1.5


def test_the_summary_is_bounded_and_names_the_most_frequent_other_serial(program: ModuleType) -> None:
    long_serial = "AB" * 20
    labels = (long_serial,) * 9 + ("01",) * 2 + (program.NO_TLS,) * 1 + (program.MATCH,) * 4
    summary = program.served_summary(labels)
    assert summary == f"stale: 9/16 serial {long_serial[:20]}..., +2 other, no handshake: 1/16, new: 4/16"
    assert len(summary) <= program.SERVED_CHECK_LIMIT
    assert program.served_summary(()) == ""
    proof = program.ServedProof(False, labels, "CD", 30.2)
    why = proof.why(8443)
    assert why.startswith("of the last 16 fresh connections to port 8443 (in 30.2 s), 9 serial " + long_serial)
    assert "4 the expected serial CD" in why and "1 no TLS handshake" in why and "2 serial 01" in why
    assert "another certificate" in why
