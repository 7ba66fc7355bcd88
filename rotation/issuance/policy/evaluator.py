"""The issuance policy's evaluator: a request or an issued certificate against every constraint of its rule. Pure.

The rotation checks a request against its rule before anything is issued (:func:`fit_request`,
which refuses on the first violation and narrows the template) and the issued certificate again in
testSecret (:func:`check_issued`). ``certrotate validate`` and ``create-secret`` show every
violation (:func:`request_problems`), so a spec is fixed in one round.
"""

from __future__ import annotations

from datetime import datetime

from rotation.issuance.policy.constraints import CONSTRAINTS
from rotation.issuance.policy.issued import IssuedFacts
from rotation.issuance.policy.rules import PolicyError, Rule
from rotation.issuance.spec import CertSpec


def request_problems(rule: Rule, spec: CertSpec, *, now: datetime) -> list[PolicyError]:
    """Every violation of ``rule`` by ``spec``, constraint by constraint: the pre-issue check."""
    return [problem for constraint in CONSTRAINTS for problem in constraint.requested(rule, spec, now)]


def fit_request(rule: Rule, spec: CertSpec, *, now: datetime) -> CertSpec:
    """The spec as the rule lets it be issued, before anything is issued.

    A server+client template under a rule without clientAuth is narrowed to its server-only twin
    (same variety); everything else outside the rule is refused, so that nothing this passes is
    refused by :func:`check_issued` after issuance.

    Raises:
        PolicyError: the first violation (:func:`request_problems` lists every one).
    """
    problems = request_problems(rule, spec, now=now)
    if problems:
        raise problems[0]
    for constraint in CONSTRAINTS:
        spec = constraint.narrow(rule, spec)
    return spec


def issued_problems(rule: Rule, facts: IssuedFacts) -> list[PolicyError]:
    """Every property of the issued certificate outside ``rule``: issuer, names, lifetime (EKU: verification)."""
    return [problem for constraint in CONSTRAINTS for problem in constraint.issued(rule, facts)]


def check_issued(rule: Rule, facts: IssuedFacts) -> None:
    """The issued certificate is inside the rule.

    Raises:
        PolicyError: the first property outside the rule (:func:`issued_problems` lists every one).
    """
    problems = issued_problems(rule, facts)
    if problems:
        raise problems[0]
