"""What each rollover phase waits on, from the fleet's own records: hosts, leaves, served certificates. Pure.

- prove (and retire, for the bundles without the old CA): every host that installs a named bundle
  reports that bundle's current fingerprint (:func:`bundle_hosts`). A host's records are claims its
  root can write, for its own account's hosts (SSM inventory is per account); a record counts only
  in an account that may read the bundle (:func:`reader_accounts`, from the bundle secret's resource
  policy, which only operators write), so no account's records can pass or hold the rollover for
  another account's hosts.
- move: every secret whose spec names the old CA holds a leaf the new CA signed (:class:`Leaf`).
- retire: no host serves a leaf of a moved secret other than its current (new-CA) one
  (:func:`old_leaves_served`): what a host last reported counts, failed and stale hosts included,
  as for revocation (:func:`rotation.fleet.view.hosts_serving`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from rotation.fleet.trust_view import TrustReport
from rotation.fleet.view import CurrentCertificate, HostReport, names_secret, serves_certificate

#: How many lagging hosts or secrets a status line names before "and N more".
NAMED = 20


@dataclass(frozen=True)
class Lag:
    """A host that does not (yet) report a bundle's current fingerprint."""

    host: str  # account/instance
    bundle: str
    reported: str  # the fingerprint it reports ("" before any install)
    status: str
    recorded_at: str
    message: str

    def describe(self) -> str:
        said = f"reports {self.reported[:16]}" if self.reported else "reports no installed bundle"
        failed = f", last run failed: {self.message[:120]}" if self.status == "failed" else ""
        return f"{self.host} ({self.bundle}): {said} at {self.recorded_at or '?'}{failed}"


@dataclass(frozen=True)
class HostProgress:
    done: tuple[str, ...]  # account/instance/bundle
    lagging: tuple[Lag, ...]
    #: records of accounts that may not read the bundle: never counted, named so the operator sees them
    ignored: tuple[str, ...] = ()
    #: accounts whose records could not be read (each holds the gate)
    unreadable: tuple[str, ...] = ()

    @property
    def proven(self) -> bool:
        return not self.lagging and not self.unreadable


def bundle_hosts(
    reports: Iterable[TrustReport],
    expected: Mapping[str, tuple[str, str]],
    may_read: Callable[[str, str], bool],
    unreadable: Sequence[str] = (),
) -> HostProgress:
    """Which hosts installed each bundle's current text.

    ``expected``: bundle name -> (bundle secret ARN, fingerprint of its current text); a record
    belongs to a bundle when its ``BundleArn`` names that secret (full or partial ARN, or name).
    ``may_read(account, bundle)``: whether the account may read the bundle.
    """
    done: list[str] = []
    lagging: list[Lag] = []
    ignored: list[str] = []
    for report in reports:
        bundle = next((n for n, (arn, _) in expected.items() if names_secret(report.bundle_arn, arn)), None)
        if bundle is None:
            continue
        host = f"{report.account}/{report.instance_id}"
        if not may_read(report.account, bundle):
            ignored.append(f"{host} ({bundle}): account {report.account} may not read the bundle")
            continue
        if report.fingerprint == expected[bundle][1]:
            done.append(f"{host}/{bundle}")
        else:
            lagging.append(Lag(host, bundle, report.fingerprint, report.status, report.recorded_at, report.message))
    lagging.sort(key=lambda g: g.host)
    return HostProgress(tuple(sorted(done)), tuple(lagging), tuple(ignored), tuple(unreadable))


def reader_accounts(resource_policy: str | None, own_account: str) -> frozenset[str] | None:
    """The accounts that may read a bundle: its own, and every account a ``GetSecretValue`` Allow of
    its resource policy names (an ARN or an account id); None when the policy allows any principal.
    An unreadable policy grants nothing beyond the bundle's own account."""
    accounts = {own_account}
    try:
        document = json.loads(resource_policy) if resource_policy else {}
    except ValueError:
        return frozenset(accounts)
    statements = document.get("Statement", []) if isinstance(document, dict) else []
    for statement in statements if isinstance(statements, list) else [statements]:
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if not any(a in ("*", "secretsmanager:*", "secretsmanager:GetSecretValue") for a in actions):
            continue
        principal = statement.get("Principal", {})
        values = principal.get("AWS", []) if isinstance(principal, dict) else principal
        for value in [values] if isinstance(values, str) else values:
            if value == "*":
                return None
            text = str(value)
            account = text.split(":")[4] if text.startswith("arn:") and text.count(":") >= 5 else text
            if account.isdigit() and len(account) == 12:
                accounts.add(account)
    return frozenset(accounts)


@dataclass(frozen=True)
class Leaf:
    """One certificate secret whose spec names the old CA, and where its current leaf comes from."""

    arn: str
    name: str
    certificate_type: str
    serial: str
    fingerprint: str
    on_new_ca: bool
    #: a rotation is under way (a version staged AWSPENDING that is not AWSCURRENT)
    rotating: bool = False
    on_old_ca: bool = True
    #: the spec's ``REVOKE_SUPERSEDED_AFTER`` in seconds (None: its old leaves are never revoked)
    revoke_after: float | None = None

    @property
    def current(self) -> CurrentCertificate:
        return CurrentCertificate(self.arn, self.serial, self.fingerprint)


@dataclass(frozen=True)
class LeafProgress:
    moved: tuple[Leaf, ...]
    to_move: tuple[Leaf, ...]

    @property
    def complete(self) -> bool:
        return not self.to_move


def leaf_progress(leaves: Iterable[Leaf]) -> LeafProgress:
    """Which affected secrets hold a leaf of the new CA (moved) and which do not yet."""
    moved: list[Leaf] = []
    left: list[Leaf] = []
    for leaf in leaves:
        (moved if leaf.on_new_ca else left).append(leaf)
    return LeafProgress(tuple(moved), tuple(left))


def old_leaves_served(reports: Iterable[HostReport], leaves: Sequence[Leaf]) -> list[str]:
    """Each host that still serves a leaf of an affected secret other than the secret's current one:
    while it does, the old CA stays in the bundles (its clients would fail the handshake)."""
    blockers = []
    for report in reports:
        leaf = next((leaf for leaf in leaves if names_secret(report.secret_arn, leaf.arn)), None)
        if leaf is None:
            continue
        if not serves_certificate(report, leaf.serial, leaf.fingerprint):
            blockers.append(
                f"{report.account}/{report.instance_id} serves serial {report.serial or '?'} of {leaf.name} "
                f"({report.certificate_file}), not its current {leaf.serial}"
            )
    return sorted(blockers)


def named(items: Sequence[str], limit: int = NAMED) -> str:
    """Up to ``limit`` items, then how many more."""
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")
