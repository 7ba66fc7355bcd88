"""The ``rollovers`` section of the issuance policy document, parsed and validated. Pure.

Every refusal is a :class:`~rotation.issuance.policy.rules.PolicyError` naming the field
(``rollovers[0].phase``), the value and what is allowed;
:meth:`~rotation.issuance.policy.rollovers.Rollover.describe` writes the same keys back.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rotation.issuance.policy.rollovers import ACTIVE, BUNDLE_NAME, ROLLOVER_KEYS, TIME_FORMAT, Phase, Rollover
from rotation.issuance.policy.rules import PolicyError
from rotation.issuance.spec import CA_ARN_PATTERN


def parse_rollovers(raw: object) -> tuple[Rollover, ...]:
    """The document's ``rollovers`` list, validated.

    Raises:
        PolicyError: naming the first invalid field (``rollovers[0].phase``), its value and what is allowed.
    """
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise PolicyError("rollovers", raw, "must be a list of rollovers", "a JSON list")
    found = tuple(_rollover(f"rollovers[{i}]", item) for i, item in enumerate(raw))
    names = [r.name for r in found]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise PolicyError("rollovers[].name", duplicate, "two rollovers have this name", "unique rollover names")
    for i, rollover in enumerate(found):
        if rollover.phase not in ACTIVE:
            continue
        other = next((r for r in found[:i] if r.phase in ACTIVE and r.old_ca_arn == rollover.old_ca_arn), None)
        if other is not None:
            raise PolicyError(
                f"rollovers[{i}].old_ca_arn",
                rollover.old_ca_arn,
                f"rollover {other.name!r} already moves this CA",
                "one rollover per old CA that is not aborted",
            )
    if _loops(found):
        raise PolicyError("rollovers", None, "the rollovers lead from a CA back to itself", "no cycle of CAs")
    return found


def _rollover(where: str, raw: Any) -> Rollover:
    if not isinstance(raw, dict):
        raise PolicyError(where, None, "a rollover must be a JSON object", list(ROLLOVER_KEYS))
    unknown = set(raw) - set(ROLLOVER_KEYS)
    if unknown:
        raise PolicyError(f"{where}.{sorted(unknown)[0]}", None, "unknown key", list(ROLLOVER_KEYS))
    name = raw.get("name")
    if not isinstance(name, str) or not BUNDLE_NAME.fullmatch(name):
        raise PolicyError(f"{where}.name", name, "not a rollover name", "letters, digits, '-', '_' (1-64)")
    arns = {}
    for key in ("old_ca_arn", "new_ca_arn"):
        value = raw.get(key)
        if not isinstance(value, str) or not CA_ARN_PATTERN.fullmatch(value):
            raise PolicyError(
                f"{where}.{key}",
                value,
                "not a Private CA ARN",
                "arn:<partition>:acm-pca:<region>:<12-digit account>:certificate-authority/<36-character id>",
            )
        arns[key] = value
    if arns["old_ca_arn"] == arns["new_ca_arn"]:
        raise PolicyError(f"{where}.new_ca_arn", arns["new_ca_arn"], "the same CA as old_ca_arn", "another CA")
    bundles = raw.get("bundles", [])
    if not isinstance(bundles, list) or not all(isinstance(b, str) and BUNDLE_NAME.fullmatch(b) for b in bundles):
        raise PolicyError(f"{where}.bundles", bundles, "must be a list of trust bundle names", "e.g. ['partners']")
    phase_text = raw.get("phase", Phase.PLANNED.value)
    phase = next((p for p in Phase if p.value == phase_text), None)
    if phase is None:
        raise PolicyError(f"{where}.phase", phase_text, "unknown phase", [p.value for p in Phase])
    changed = raw.get("changed_at", "1970-01-01T00:00:00Z")
    try:
        changed_at = datetime.strptime(str(changed), TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise PolicyError(f"{where}.changed_at", changed, "not a UTC time", "YYYY-MM-DDTHH:MM:SSZ") from None
    return Rollover(name, arns["old_ca_arn"], arns["new_ca_arn"], tuple(dict.fromkeys(bundles)), phase, changed_at)


def _loops(rollovers: Sequence[Rollover]) -> bool:
    edges = {r.old_ca_arn: r.new_ca_arn for r in rollovers if r.phase in ACTIVE}
    for start, first in edges.items():
        seen = {start}
        ca = first
        while ca in edges:
            if ca in seen:
                return True
            seen.add(ca)
            ca = edges[ca]
    return False
