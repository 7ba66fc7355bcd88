"""CA rollovers, the ``rollovers`` section of the issuance policy: what the rotation issues from while one runs. Pure.

AWS Private CA has no in-place key rotation: a new CA is a new ARN. A rollover moves every secret
whose spec names the old CA to the new one without editing any secret. Its state lives in the
issuance policy document, beside the rules, because that is where only operators write (the SSM
parameter the rotation role may only read) and what the rotation already trusts: one trust anchor,
read with the policy, versioned by the parameter's history. Nothing a secret's writer can write (the
secret's value, a tag, a host record) is read here.

The phases (``certrotate ca-rollover`` drives them; :mod:`rotation.rollover` gates each on the fleet):

``planned`` recorded, nothing done -> ``add`` every named trust bundle gains the new CA -> ``prove``
every host that installs those bundles reports the new fingerprint -> ``move`` the rotation issues
from the new CA for every spec naming the old one (:func:`redirect`), and the rules that allow the
old CA accept the new one (:func:`widen`) -> ``retire`` the old CA leaves the bundles -> ``done``.
``aborted``: nothing of it holds any more. In ``move``, ``retire`` and ``done`` the redirect holds (a
done rollover stays in the document while secrets still name the old CA: removing it would send
their next rotation back to the retired CA).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from rotation.issuance.spec import CertSpec


class Phase(StrEnum):
    PLANNED = "planned"
    ADD = "add"
    PROVE = "prove"
    MOVE = "move"
    RETIRE = "retire"
    DONE = "done"
    ABORTED = "aborted"


#: The phase ``advance`` leads to from each phase.
NEXT: dict[Phase, Phase] = {
    Phase.PLANNED: Phase.ADD,
    Phase.ADD: Phase.PROVE,
    Phase.PROVE: Phase.MOVE,
    Phase.MOVE: Phase.RETIRE,
    Phase.RETIRE: Phase.DONE,
}
#: The phase ``abort`` returns to: the state before the latest phase's own change. ``prove`` changes
#: nothing of its own (it waits on ``add``'s bundles), so aborting it undoes ``add``.
ABORT_TO: dict[Phase, Phase] = {
    Phase.PLANNED: Phase.ABORTED,
    Phase.ADD: Phase.ABORTED,
    Phase.PROVE: Phase.ABORTED,
    Phase.MOVE: Phase.PROVE,
    Phase.RETIRE: Phase.MOVE,
}
#: Phases in which the rotation issues from the new CA for specs naming the old one.
ISSUING_FROM_NEW = frozenset({Phase.MOVE, Phase.RETIRE, Phase.DONE})
#: Phases in which a rollover still claims its old CA (at most one such rollover per old CA).
ACTIVE = frozenset(set(Phase) - {Phase.ABORTED})
#: A trust bundle's name, as the central template's ``TrustBundleName`` admits it.
BUNDLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
ROLLOVER_KEYS = ("name", "old_ca_arn", "new_ca_arn", "bundles", "phase", "changed_at")


@dataclass(frozen=True)
class Rollover:
    """One CA rollover as the policy document records it."""

    #: Unique among the document's rollovers (the same alphabet as a bundle name).
    name: str
    old_ca_arn: str
    new_ca_arn: str
    #: Trust bundle names (``certrotate/trust-bundles/<name>``) that hold the old CA.
    bundles: tuple[str, ...]
    phase: Phase = Phase.PLANNED
    #: When the phase last changed (UTC); ``move``'s re-issue waits one policy cache lifetime after it.
    changed_at: datetime = datetime(1970, 1, 1, tzinfo=UTC)

    @property
    def issues_from_new(self) -> bool:
        return self.phase in ISSUING_FROM_NEW

    def at(self, phase: Phase, now: datetime) -> Rollover:
        """The same rollover in ``phase`` from ``now``."""
        return replace(self, phase=phase, changed_at=now.astimezone(UTC).replace(microsecond=0))

    def describe(self) -> dict[str, Any]:
        """The rollover as the policy document writes it."""
        return {
            "name": self.name,
            "old_ca_arn": self.old_ca_arn,
            "new_ca_arn": self.new_ca_arn,
            "bundles": list(self.bundles),
            "phase": self.phase.value,
            "changed_at": self.changed_at.strftime(TIME_FORMAT),
        }


def issuing_ca(ca_arn: str, rollovers: Sequence[Rollover]) -> str:
    """The CA the rotation issues from for a spec naming ``ca_arn``: the new CA of every rollover in
    ``move``, ``retire`` or ``done`` that moves it, followed to the end (A -> B, then B -> C: C)."""
    moves = {r.old_ca_arn: r.new_ca_arn for r in rollovers if r.issues_from_new}
    for _ in range(len(moves)):
        if ca_arn not in moves:
            break
        ca_arn = moves[ca_arn]
    return ca_arn


def redirect(spec: CertSpec, rollovers: Sequence[Rollover]) -> CertSpec:
    """The spec as the rotation issues it while a rollover moves its CA: the new CA, its signing family.

    The key settings stay the spec's: Private CA signs any leaf key it accepts (RSA 2048-4096, EC
    P-256/P-384/P-521) with a CA of either family; what the CA's key decides is the signature's family
    (Private CA refuses a ``SigningAlgorithm`` of another family than the CA key's, see
    :mod:`rotation.emulation.pca_issuance`), so a ``SIGNING_ALGORITHM`` naming the old CA's family
    gives way to the new CA's, with the spec's hash. Nothing in the secret changes.
    """
    target = issuing_ca(spec.ca_arn, rollovers)
    if target == spec.ca_arn:
        return spec
    return replace(spec, ca_arn=target, signing_family=None)


def widened_cas(ca_arns: Sequence[str], rollovers: Sequence[Rollover]) -> tuple[str, ...]:
    """A rule's CAs as they apply while rollovers issue from their new CA: a rule that allows a moved
    old CA also allows where it moved to (never a CA that no rollover of the operator names)."""
    extra = (issuing_ca(arn, rollovers) for arn in ca_arns)
    return tuple(dict.fromkeys([*ca_arns, *extra]))


def by_name(rollovers: Sequence[Rollover], name: str) -> Rollover | None:
    return next((r for r in rollovers if r.name == name), None)


def with_rollover(rollovers: Sequence[Rollover], rollover: Rollover) -> tuple[Rollover, ...]:
    """``rollovers`` with ``rollover`` in place of the one of its name (appended when new)."""
    if by_name(rollovers, rollover.name) is None:
        return (*rollovers, rollover)
    return tuple(rollover if r.name == rollover.name else r for r in rollovers)


def describe_all(rollovers: Sequence[Rollover]) -> list[Mapping[str, Any]]:
    return [r.describe() for r in rollovers]
