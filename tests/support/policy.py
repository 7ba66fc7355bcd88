"""Issuance policies for tests: a document, as the operator would write it, on the handler's services."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import rotation.handler
from rotation.issuance.policy import IssuancePolicy, parse_policy
from rotation.issuance.policy_store import fixed_policy


def rule(name: str, secrets: list[str], ca_arns: list[str], **allows: Any) -> dict[str, Any]:
    """One rule of a policy document; ``allows`` are its other keys (dns_names, client_auth, …)."""
    return {"name": name, "secrets": secrets, "ca_arns": ca_arns, **allows}


def document(*rules: dict[str, Any]) -> str:
    return json.dumps({"version": 1, "rules": list(rules)})


def use_policy(text: str) -> IssuancePolicy:
    """Make the handler's services (the ``aws`` fixture's) answer this policy."""
    policy = parse_policy(text, source="test")
    services = rotation.handler.services()
    rotation.handler._services = dataclasses.replace(services, policy=fixed_policy(policy))
    return policy
