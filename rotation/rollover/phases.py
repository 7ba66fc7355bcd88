"""The rollover's phases: what each does, what gates the next, what ``abort`` undoes.

Every command reads the state (the policy document, :mod:`rotation.rollover.store`) and the fleet,
then acts; nothing is remembered between runs, so each is resumable and idempotent:

- :func:`advance` first finishes what the current phase does (``add``: bundles gain the new CA;
  ``move``: the re-issue of the secrets left; ``retire``: bundles lose the old CA, old leaves are
  revoked), then checks the phase's gate on the fleet (:func:`measure`) and, when it holds, records
  the next phase and starts it. A closed gate raises :class:`GateClosed` with the blockers named.
- :func:`abort` returns to the state before the latest phase's own change (see
  :data:`rotation.issuance.policy.rollovers.ABORT_TO`) and undoes it.

The fleet is reached only through :class:`FleetAccess`, a record of callables: the command line
builds it on boto3 clients (:mod:`rotation.rollover.aws_fleet`), a bench may build it on anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509

from rotation.cli.session import InvalidInputError
from rotation.errors import CertRotateError
from rotation.fleet.trust_view import TrustReport
from rotation.fleet.view import HostReport
from rotation.issuance.policy.rollovers import ABORT_TO, NEXT, Phase, Rollover, by_name
from rotation.issuance.policy_store import DEFAULT_TTL_SECONDS
from rotation.rollover import bundles as edit
from rotation.rollover.gates import (
    HostProgress,
    Leaf,
    LeafProgress,
    bundle_hosts,
    leaf_progress,
    named,
    old_leaves_served,
)
from rotation.rollover.reissue import Limiter, ReissueResult, estimated_seconds, reissue
from rotation.rollover.store import PolicyStore, StoredPolicy


class RolloverError(InvalidInputError):
    """The rollover cannot do what was asked (unknown, finished, a name taken)."""


class GateClosed(CertRotateError):
    """The phase's gate does not hold: the blockers are named, the state is unchanged."""

    def __init__(self, message: str, progress: Progress) -> None:
        super().__init__(message)
        self.progress = progress


@dataclass(frozen=True)
class FleetAccess:
    """The IO the phases need (each a callable, so a bench can hand in its own)."""

    store: PolicyStore
    #: a bundle by name: its secret's ARN and current text
    read_bundle: Callable[[str], edit.Bundle]
    #: store a bundle's new text (PutSecretValue on the operator-only bundle secret)
    write_bundle: Callable[[edit.Bundle, str], None]
    #: the CA's certificate (GetCertificateAuthorityCertificate)
    ca_certificate: Callable[[str], x509.Certificate]
    #: the secrets whose spec names ``old`` and where each leaf comes from: (rollover, old CA, new CA)
    leaves: Callable[[Rollover, x509.Certificate, x509.Certificate], list[Leaf]]
    #: every host's trust-bundle records, and one line per account that could not be read
    trust_reports: Callable[[], tuple[list[TrustReport], list[str]]]
    #: every host's certificate records (the fleet view)
    host_reports: Callable[[], list[HostReport]]
    #: the accounts that may read a bundle (None: any)
    bundle_readers: Callable[[edit.Bundle], frozenset[str] | None]
    #: RotateSecret on one secret ARN
    rotate: Callable[[str], None]
    limiter_for: Callable[[float], Limiter]
    #: revoke the old CA's leaves past their grace that no host serves; one line per revocation
    revoke_old: Callable[[Rollover, Sequence[Leaf]], list[str]] | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    sleep: Callable[[float], None] = time.sleep
    #: how long the rotation function may keep a policy it read (its cache): move's re-issue waits it out
    policy_ttl: float = DEFAULT_TTL_SECONDS
    #: whether to wait out ``policy_ttl`` (False: say when to run again)
    wait: bool = True
    progress: Callable[[str], None] = lambda line: None


@dataclass(frozen=True)
class BundleState:
    name: str
    arn: str
    fingerprint: str
    holds_old: bool
    holds_new: bool


@dataclass(frozen=True)
class Progress:
    """A rollover's state and what its fleet says of it: what ``status`` shows."""

    rollover: Rollover
    bundles: tuple[BundleState, ...]
    hosts: HostProgress
    leaves: LeafProgress
    served_old: tuple[str, ...]
    #: why the current phase cannot advance (empty: ``advance`` may go)
    blockers: tuple[str, ...]
    #: seconds the re-issue left takes at the pace (move, or after an aborted move)
    eta_seconds: float
    actions: tuple[str, ...] = ()


def _bundles(fleet: FleetAccess, rollover: Rollover) -> list[edit.Bundle]:
    return [fleet.read_bundle(name) for name in rollover.bundles]


def measure(fleet: FleetAccess, rollover: Rollover, actions: Sequence[str] = ()) -> Progress:
    """Read the fleet and say where the rollover stands (nothing is written)."""
    old, new = fleet.ca_certificate(rollover.old_ca_arn), fleet.ca_certificate(rollover.new_ca_arn)
    bundles = _bundles(fleet, rollover)
    states = tuple(BundleState(b.name, b.arn, b.fingerprint, b.holds(old), b.holds(new)) for b in bundles)
    readers = {b.name: fleet.bundle_readers(b) for b in bundles}
    reports, unreadable = fleet.trust_reports()
    hosts = bundle_hosts(
        reports,
        {b.name: (b.arn, b.fingerprint) for b in bundles},
        lambda account, bundle: readers[bundle] is None or account in (readers[bundle] or ()),
        unreadable,
    )
    leaves = fleet.leaves(rollover, old, new)
    progress = leaf_progress(leaves)
    served = old_leaves_served(fleet.host_reports(), progress.moved) if rollover.phase is Phase.MOVE else []
    blockers = _blockers(rollover, states, hosts, progress, served)
    back = [leaf for leaf in leaves if leaf.on_new_ca] if rollover.phase is Phase.PROVE else []
    # What is left to re-issue: back to the old CA after an aborted move, else what move re-issues.
    left = back or (list(progress.to_move) if rollover.phase in _BEFORE_RETIRE else [])
    return Progress(
        rollover, states, hosts, progress, tuple(served), blockers, estimated_seconds(list(left)), tuple(actions)
    )


_BEFORE_RETIRE = frozenset({Phase.PLANNED, Phase.ADD, Phase.PROVE, Phase.MOVE})


def _blockers(
    rollover: Rollover,
    bundles: Sequence[BundleState],
    hosts: HostProgress,
    leaves: LeafProgress,
    served: Sequence[str],
) -> tuple[str, ...]:
    phase = rollover.phase
    found: list[str] = []
    if phase in (Phase.DONE, Phase.ABORTED):
        return (f"the rollover is {phase.value}",)
    if phase is Phase.ADD:
        found += [f"bundle {b.name} does not hold the new CA yet" for b in bundles if not b.holds_new]
    if phase is Phase.RETIRE:
        found += [f"bundle {b.name} still holds the old CA" for b in bundles if b.holds_old]
    if phase in (Phase.PROVE, Phase.RETIRE):
        if hosts.lagging:
            found.append(
                f"{len(hosts.lagging)} host(s) lag (not on the bundle's current fingerprint): "
                + named([lag.describe() for lag in hosts.lagging])
            )
        found += [f"fleet view unreadable: {line}" for line in hosts.unreadable]
    if phase is Phase.MOVE:
        if leaves.to_move:
            found.append(
                f"{len(leaves.to_move)} secret(s) not on the new CA yet: " + named([s.name for s in leaves.to_move])
            )
        if served:
            found.append(f"{len(served)} host record(s) still serve an old leaf: " + named(list(served)))
    return tuple(found)


def plan(fleet: FleetAccess, name: str, old_ca: str, new_ca: str, bundles: Sequence[str]) -> Progress:
    """What ``start`` would record and change (nothing is written)."""
    stored = fleet.store.read()
    _check_new(stored, name, old_ca, new_ca, bundles)
    return measure(fleet, Rollover(name, old_ca, new_ca, tuple(bundles)))


def _check_new(stored: StoredPolicy, name: str, old_ca: str, new_ca: str, bundles: Sequence[str]) -> None:
    existing = by_name(stored.policy.rollovers, name)
    if existing is not None and existing.phase is not Phase.ABORTED:
        raise RolloverError(f"rollover {name!r} already exists ({existing.phase.value}): see `ca-rollover status`")
    if not any(old_ca in rule.ca_arns or "*" in rule.ca_arns for rule in stored.policy.rules):
        raise RolloverError(f"--old-ca {old_ca}: no rule of the issuance policy allows this CA: nothing to move")
    if not bundles:
        raise RolloverError("--bundle: name at least one trust bundle that holds the old CA")


def start(fleet: FleetAccess, name: str, old_ca: str, new_ca: str, bundles: Sequence[str]) -> Progress:
    """Record the rollover (planned), then do ``add``: every bundle gains the new CA.

    Raises:
        RolloverError: the name is taken, the old CA is in no rule, no bundle is named, or a bundle
            does not hold the old CA.
        PolicyError: the rollover cannot be stored (the document names the field).
    """
    stored = fleet.store.read()
    _check_new(stored, name, old_ca, new_ca, bundles)
    old = fleet.ca_certificate(old_ca)
    fleet.ca_certificate(new_ca)  # the new CA exists and has a certificate, before anything is recorded
    missing = [b.name for b in (fleet.read_bundle(n) for n in bundles) if not b.holds(old)]
    if missing:
        raise RolloverError(f"--bundle {', '.join(missing)}: does not hold the old CA's certificate")
    rollover = Rollover(name, old_ca, new_ca, tuple(dict.fromkeys(bundles))).at(Phase.PLANNED, fleet.clock())
    stored = fleet.store.save(stored, rollover)
    return _enter(fleet, stored, rollover, Phase.ADD)


def current(fleet: FleetAccess, name: str) -> tuple[StoredPolicy, Rollover]:
    stored = fleet.store.read()
    rollover = by_name(stored.policy.rollovers, name)
    if rollover is None:
        known = ", ".join(r.name for r in stored.policy.rollovers) or "none"
        raise RolloverError(f"no rollover {name!r} in {fleet.store.parameter} (rollovers: {known})")
    return stored, rollover


def status(fleet: FleetAccess, name: str) -> Progress:
    return measure(fleet, current(fleet, name)[1])


def advance(fleet: FleetAccess, name: str) -> Progress:
    """Finish the current phase's work, then move to the next phase if its gate holds.

    Raises:
        GateClosed: the gate does not hold (the blockers are named; the phase is unchanged).
        RolloverError: the rollover is done or aborted.
    """
    stored, rollover = current(fleet, name)
    if rollover.phase not in NEXT:
        raise RolloverError(f"rollover {name!r} is {rollover.phase.value}: nothing to advance")
    actions = _work(fleet, rollover)
    progress = measure(fleet, rollover, actions)
    if progress.blockers:
        raise GateClosed(
            f"{rollover.phase.value} -> {NEXT[rollover.phase].value} refused: " + "; ".join(progress.blockers), progress
        )
    return _enter(fleet, stored, rollover, NEXT[rollover.phase], actions)


def abort(fleet: FleetAccess, name: str) -> Progress:
    """Return to the state before the latest phase's change, and undo it.

    Raises:
        GateClosed: aborting ``prove`` while leaves are still on the new CA (an aborted move's
            re-issue not finished): their servers' clients need the new CA in the bundles.
        RolloverError: the rollover is done or aborted.
    """
    stored, rollover = current(fleet, name)
    if rollover.phase not in ABORT_TO:
        raise RolloverError(
            f"rollover {name!r} is {rollover.phase.value}: nothing to abort"
            + (" (to go back, start a rollover from the new CA to the old one)" if rollover.phase is Phase.DONE else "")
        )
    actions: tuple[str, ...] = ()
    if rollover.phase is Phase.PROVE:
        actions = _work(fleet, rollover)
        progress = measure(fleet, rollover, actions)
        on_new = [leaf.name for leaf in fleet.leaves(rollover, *_cas(fleet, rollover)) if leaf.on_new_ca]
        if on_new:
            raise GateClosed(
                f"abort of prove refused: {len(on_new)} secret(s) still hold a new-CA leaf (being re-issued from "
                f"the old CA): {named(on_new)}; the new CA stays in the bundles until they are back",
                progress,
            )
    return _enter(fleet, stored, rollover, ABORT_TO[rollover.phase], actions)


def _cas(fleet: FleetAccess, rollover: Rollover) -> tuple[x509.Certificate, x509.Certificate]:
    return fleet.ca_certificate(rollover.old_ca_arn), fleet.ca_certificate(rollover.new_ca_arn)


def _enter(
    fleet: FleetAccess, stored: StoredPolicy, rollover: Rollover, phase: Phase, before: Sequence[str] = ()
) -> Progress:
    """Record ``phase``, then do its work."""
    entered = rollover.at(phase, fleet.clock())
    fleet.store.save(stored, entered)
    fleet.progress(f"{rollover.name}: {rollover.phase.value} -> {phase.value} recorded in {fleet.store.parameter}")
    actions = [*before, f"phase {rollover.phase.value} -> {phase.value}", *_work(fleet, entered)]
    return measure(fleet, entered, actions)


def _work(fleet: FleetAccess, rollover: Rollover) -> tuple[str, ...]:
    """What the phase does, idempotently: done again, it changes only what is not done yet."""
    old, new = _cas(fleet, rollover)
    phase = rollover.phase
    if phase is Phase.ABORTED:
        return tuple(_edit_bundles(fleet, rollover, lambda pem: edit.without_ca(pem, new), "the new CA removed"))
    if phase is Phase.ADD:
        return tuple(_edit_bundles(fleet, rollover, lambda pem: edit.with_ca(pem, new), "the new CA added"))
    if phase is Phase.MOVE:
        bundles = _edit_bundles(fleet, rollover, lambda pem: edit.with_ca(pem, old), "the old CA back")
        return (
            *bundles,
            *_reissue(
                fleet, rollover, [leaf for leaf in fleet.leaves(rollover, old, new) if not leaf.on_new_ca], "new"
            ),
        )
    if phase is Phase.PROVE:  # after an aborted move: the leaves on the new CA go back to the old one
        back = [leaf for leaf in fleet.leaves(rollover, old, new) if leaf.on_new_ca]
        return _reissue(fleet, rollover, back, "old") if back else ()
    if phase is Phase.RETIRE:
        actions = _edit_bundles(fleet, rollover, lambda pem: edit.without_ca(pem, old), "the old CA removed")
        if fleet.revoke_old is not None:
            actions += fleet.revoke_old(rollover, fleet.leaves(rollover, old, new))
        return tuple(actions)
    return ()


def _edit_bundles(fleet: FleetAccess, rollover: Rollover, change: Callable[[str], str], what: str) -> list[str]:
    actions = []
    for bundle in _bundles(fleet, rollover):
        text = change(bundle.pem)
        if edit.certificates(text) == edit.certificates(bundle.pem):
            continue
        fleet.write_bundle(bundle, text)
        actions.append(f"bundle {bundle.name}: {what} (hosts install it on their next trust-bundle run)")
    return actions


def _reissue(fleet: FleetAccess, rollover: Rollover, leaves: Sequence[Leaf], towards: str) -> tuple[str, ...]:
    """Start the rotations of ``leaves`` once the function's policy cache has seen the phase."""
    if not leaves:
        return ()
    ready = rollover.changed_at + timedelta(seconds=fleet.policy_ttl)
    wait = (ready - fleet.clock()).total_seconds()
    if wait > 0:
        if not fleet.wait:
            return (
                f"re-issue of {len(leaves)} secret(s) from the {towards} CA not started: the rotation function "
                f"may keep the previous policy until {ready:%H:%M:%S} UTC; run the command again then",
            )
        fleet.progress(f"waiting {wait:.0f} s for the rotation function's policy cache ({fleet.policy_ttl:g} s)")
        fleet.sleep(wait)
    result: ReissueResult = reissue(
        leaves,
        fleet.rotate,
        fleet.limiter_for,
        lambda done, total: fleet.progress(f"re-issue from the {towards} CA: {done}/{total} started"),
    )
    lines = [f"re-issue from the {towards} CA: {len(result.started)} rotation(s) started"]
    if result.in_flight:
        lines.append(f"{len(result.in_flight)} already rotating: " + named(list(result.in_flight)))
    lines += [f"rotation of {name} not started: {error}" for name, error in result.failed]
    return tuple(lines)
