"""What ``certrotate ca-rollover`` prints: a rollover's phase and each gate's progress (lines or JSON)."""

from __future__ import annotations

from typing import Any

from rotation.cli.output import Output
from rotation.issuance.policy.rollovers import NEXT, Phase
from rotation.rollover.gates import named
from rotation.rollover.phases import Progress
from rotation.rollover.reissue import pace

#: What each phase waits on, in the words ``status`` uses.
WAITS_ON = {
    Phase.PLANNED: "nothing: advance adds the new CA to the bundles",
    Phase.ADD: "every bundle to hold the new CA",
    Phase.PROVE: "every host that installs the bundles to report their new fingerprint",
    Phase.MOVE: "every secret naming the old CA to hold a new-CA leaf, and no host to serve an old one",
    Phase.RETIRE: "every host that installs the bundles to report them without the old CA",
    Phase.DONE: "nothing: the rollover is done (specs naming the old CA issue from the new one)",
    Phase.ABORTED: "nothing: the rollover is aborted",
}


def as_json(progress: Progress) -> dict[str, Any]:
    r = progress.rollover
    return {
        "rollover": r.describe(),
        "next_phase": NEXT[r.phase].value if r.phase in NEXT else None,
        "waits_on": WAITS_ON[r.phase],
        "can_advance": not progress.blockers,
        "blockers": list(progress.blockers),
        "bundles": [
            {
                "name": b.name,
                "arn": b.arn,
                "fingerprint_sha256": b.fingerprint,
                "holds_old_ca": b.holds_old,
                "holds_new_ca": b.holds_new,
            }
            for b in progress.bundles
        ],
        "hosts": {
            "done": list(progress.hosts.done),
            "lagging": [
                {
                    "host": lag.host,
                    "bundle": lag.bundle,
                    "reported_fingerprint": lag.reported,
                    "status": lag.status,
                    "recorded_at": lag.recorded_at,
                    "message": lag.message,
                }
                for lag in progress.hosts.lagging
            ],
            "ignored": list(progress.hosts.ignored),
            "unreadable": list(progress.hosts.unreadable),
        },
        "leaves": {
            "moved": len(progress.leaves.moved),
            "to_move": len(progress.leaves.to_move),
            "to_move_names": [leaf.name for leaf in progress.leaves.to_move],
            "rotating": sum(1 for leaf in progress.leaves.to_move if leaf.rotating),
        },
        "served_old_leaves": list(progress.served_old),
        "estimated_seconds": round(progress.eta_seconds, 1),
        "pace_per_second": {kind: pace(kind) for kind in ("PCA_ISSUED", "ACM_ISSUED")},
        "actions": list(progress.actions),
    }


def lines(progress: Progress) -> list[str]:
    r = progress.rollover
    following = f" -> {NEXT[r.phase].value}" if r.phase in NEXT else ""
    found = [
        f"rollover {r.name}: {r.old_ca_arn} -> {r.new_ca_arn}",
        f"phase: {r.phase.value}{following} (since {r.changed_at:%Y-%m-%d %H:%M:%S} UTC); waits on {WAITS_ON[r.phase]}",
    ]
    for b in progress.bundles:
        holds = ", ".join(w for w, held in (("old CA", b.holds_old), ("new CA", b.holds_new)) if held) or "neither CA"
        found.append(f"bundle {b.name}: holds {holds}; fingerprint {b.fingerprint[:16]}")
    hosts = progress.hosts
    found.append(f"hosts: {len(hosts.done)} on the bundles' current fingerprint, {len(hosts.lagging)} lagging")
    found += [f"  lagging: {lag.describe()}" for lag in hosts.lagging]
    found += [f"  ignored: {line}" for line in hosts.ignored]
    found += [f"  unreadable: {line}" for line in hosts.unreadable]
    leaves = progress.leaves
    total = len(leaves.moved) + len(leaves.to_move)
    found.append(
        f"leaves: {len(leaves.moved)}/{total} secret(s) naming the old CA hold a new-CA leaf"
        + (f"; left: {named([leaf.name for leaf in leaves.to_move], 10)}" if leaves.to_move else "")
    )
    if progress.eta_seconds:
        found.append(
            f"re-issue left: about {progress.eta_seconds:.0f} s at the pace (Private CA {pace('PCA_ISSUED'):g}/s, "
            f"ACM {pace('ACM_ISSUED'):g}/s: half the issuers' quotas), then hosts install on their next run"
        )
    found += [f"  serves an old leaf: {line}" for line in progress.served_old]
    found += [f"done: {action}" for action in progress.actions]
    found.append("can advance" if not progress.blockers else "cannot advance yet: " + "; ".join(progress.blockers))
    return found


def show(out: Output, progress: Progress) -> None:
    if out.json_mode:
        out.emit_json(as_json(progress))
        return
    for line in lines(progress):
        out.say(line)
