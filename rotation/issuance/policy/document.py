"""The issuance policy document (JSON, as the operator stores it): parsed and validated into rules. Pure.

Every refusal is a :class:`~rotation.issuance.policy.rules.PolicyError` naming the field
(``rules[2].dns_names[0]``), the value and what is allowed. The inverse,
:meth:`~rotation.issuance.policy.rules.IssuancePolicy.to_document`, writes the same keys.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

from rotation.issuance.policy.names import ANY_DNS, normalize_dns
from rotation.issuance.policy.rollover_document import parse_rollovers
from rotation.issuance.policy.rules import (
    ACM_PRIVATE_VALIDITY_DAYS,
    ANY,
    DEFAULT_MAX_VALIDITY_DAYS,
    FORMAT_VERSION,
    IssuancePolicy,
    PolicyError,
    Rule,
)
from rotation.issuance.spec import CA_ARN_PATTERN, MAX_NAMES, KeyAlgorithm

#: The keys of the document (``rollovers``: :mod:`rotation.issuance.policy.rollover_document`).
DOCUMENT_KEYS = ("version", "rules", "description", "rollovers")
#: The keys a rule may hold: its attributes, under the same names.
RULE_KEYS = frozenset(f.name for f in fields(Rule))


def parse_policy(text: str, *, source: str = "file", revision: str = "") -> IssuancePolicy:
    """Parse and validate a policy document (JSON).

    Raises:
        PolicyError: naming the first invalid field (``rules[2].dns_names[0]``) and what is allowed.
    """
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise PolicyError("policy", None, f"not valid JSON{where}", "a JSON object {version, rules}") from None
    if not isinstance(document, dict):
        raise PolicyError("policy", None, "not a JSON object", "a JSON object {version, rules}")
    unknown = set(document) - set(DOCUMENT_KEYS)
    if unknown:
        raise PolicyError("policy", sorted(unknown)[0], "unknown key", list(DOCUMENT_KEYS))
    if document.get("version") != FORMAT_VERSION:
        raise PolicyError("version", document.get("version"), "unsupported policy format", [str(FORMAT_VERSION)])
    rules_raw = document.get("rules")
    if not isinstance(rules_raw, list):
        raise PolicyError("rules", rules_raw, "must be a list of rules", "a JSON list")
    rules = tuple(_rule(f"rules[{i}]", raw) for i, raw in enumerate(rules_raw))
    names = [r.name for r in rules]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise PolicyError("rules[].name", duplicate, "two rules have this name", "unique rule names")
    return IssuancePolicy(
        rules=rules,
        source=source,
        revision=revision,
        warnings=tuple(policy_warnings(rules)),
        rollovers=parse_rollovers(document.get("rollovers")),
    )


def policy_warnings(rules: Sequence[Rule]) -> list[str]:
    """What a valid policy may still get wrong: shadowed rules, ACM certificates refused by validity."""
    warnings = []
    for i, rule in enumerate(rules):
        for earlier in rules[:i]:
            if ANY in earlier.secrets and ANY in earlier.accounts:
                warnings.append(
                    f"rule {rule.name!r} is never used: rule {earlier.name!r} before it governs every secret"
                )
                break
        if rule.acm_issued and rule.max_validity_days < ACM_PRIVATE_VALIDITY_DAYS:
            warnings.append(
                f"rule {rule.name!r} allows ACM_ISSUED but at most {rule.max_validity_days} days: "
                "ACM's 13-month certificates are refused before they are requested"
            )
        if ANY in rule.ca_arns:
            warnings.append(f"rule {rule.name!r} allows any CA the rotation role may use")
    return warnings


def _rule(where: str, raw: Any) -> Rule:
    if not isinstance(raw, dict):
        raise PolicyError(where, None, "a rule must be a JSON object", "an object with name, secrets, ca_arns, …")
    unknown = set(raw) - RULE_KEYS
    if unknown:
        raise PolicyError(f"{where}.{sorted(unknown)[0]}", None, "unknown key", sorted(RULE_KEYS))
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise PolicyError(f"{where}.name", name, "required: a non-empty string")
    secrets = _strings(where, raw, "secrets", required=True)
    for pattern in secrets:
        if "*" in pattern[:-1]:
            raise PolicyError(f"{where}.secrets", pattern, "'*' only at the end", "a name, 'prefix/*' or '*'")
    accounts = _strings(where, raw, "accounts") or (ANY,)
    for account in accounts:
        if account != ANY and not (account.isdigit() and len(account) == 12):
            raise PolicyError(f"{where}.accounts", account, "not an account id", "12 digits or '*'")
    ca_arns = _strings(where, raw, "ca_arns", required=True)
    for arn in ca_arns:
        if arn != ANY and not CA_ARN_PATTERN.fullmatch(arn):
            raise PolicyError(
                f"{where}.ca_arns",
                arn,
                "not a Private CA ARN",
                "'*' or arn:<partition>:acm-pca:<region>:<12-digit account>:certificate-authority/<36-character id>",
            )
    dns = tuple(_dns_pattern(f"{where}.dns_names", p) for p in _strings(where, raw, "dns_names"))
    ranges = _strings(where, raw, "ip_ranges")
    for text in ranges:
        try:
            ipaddress.ip_network(text, strict=True)
        except ValueError:
            raise PolicyError(
                f"{where}.ip_ranges", text, "not a network", "CIDR such as 10.0.0.0/8 or fd00::/8"
            ) from None
    keys = _key_algorithms(where, raw)
    return Rule(
        name=name.strip(),
        secrets=secrets,
        accounts=accounts,
        ca_arns=ca_arns,
        dns_names=dns,
        ip_ranges=tuple(str(ipaddress.ip_network(r)) for r in ranges),
        key_algorithms=tuple(keys) or tuple(KeyAlgorithm),
        max_validity_days=_int(where, raw, "max_validity_days", DEFAULT_MAX_VALIDITY_DAYS, 1, 3650),
        client_auth=_flag(where, raw, "client_auth"),
        acm_issued=_flag(where, raw, "acm_issued"),
        reuse_private_key=_flag(where, raw, "reuse_private_key"),
        max_names=_int(where, raw, "max_names", MAX_NAMES, 1, MAX_NAMES),
    )


def _key_algorithms(where: str, raw: Mapping[str, Any]) -> list[KeyAlgorithm]:
    keys = []
    for text in _strings(where, raw, "key_algorithms"):
        member = next((k for k in KeyAlgorithm if k.value.lower() == text.lower()), None)
        if member is None:
            raise PolicyError(f"{where}.key_algorithms", text, "unknown key algorithm", [k.value for k in KeyAlgorithm])
        keys.append(member)
    return keys


def _strings(where: str, raw: Mapping[str, Any], key: str, *, required: bool = False) -> tuple[str, ...]:
    value = raw.get(key)
    if value is None and not required:
        return ()
    if (
        not isinstance(value, list)
        or not all(isinstance(v, str) and v.strip() for v in value)
        or (required and not value)
    ):
        raise PolicyError(
            f"{where}.{key}", value, "must be a non-empty list of strings" if required else "must be a list of strings"
        )
    return tuple(v.strip() for v in value)


def _flag(where: str, raw: Mapping[str, Any], key: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise PolicyError(f"{where}.{key}", value, "must be true or false", ["true", "false"])
    return value


def _int(where: str, raw: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PolicyError(f"{where}.{key}", value, "out of range", f"a whole number from {low} to {high}")
    return value


def _dns_pattern(where: str, pattern: str) -> str:
    """A pattern normalized as names are; refused unless it is a name, ``*.name``, ``.name`` or ``.``."""
    if pattern == ANY_DNS:
        return pattern
    suffix = pattern.startswith(".")
    body = pattern[1:] if suffix else pattern
    try:
        normalized = normalize_dns(body)
    except (ValueError, UnicodeError):
        raise PolicyError(where, pattern, "not a DNS name pattern", _PATTERN_RULE) from None
    labels = normalized.split(".")
    wildcard = labels[0] == "*"
    rest = labels[1:] if wildcard else labels
    if suffix and wildcard:
        raise PolicyError(where, pattern, "a suffix cannot hold a wildcard", _PATTERN_RULE)
    if any("*" in label or not _ldh(label) for label in rest) or (wildcard and len(rest) < 2):
        raise PolicyError(where, pattern, "not a DNS name pattern", _PATTERN_RULE)
    return ("." if suffix else "") + normalized


_PATTERN_RULE = (
    "a name (a.example), a wildcard as the whole leftmost label (*.example.internal), a suffix (.example) or '.'"
)


def _ldh(label: str) -> bool:
    return (
        0 < len(label) <= 63
        and all(c.isalnum() or c == "-" for c in label)
        and label.isascii()
        and not (label.startswith("-") or label.endswith("-"))
    )
