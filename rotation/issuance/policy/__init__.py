"""The issuance policy: which names, CAs, lifetimes, keys and purposes each secret may obtain. Pure.

The stack operator writes the policy (a JSON document in the SSM parameter the central stack
names, :mod:`rotation.issuance.policy_store`); a secret's writer only chooses, inside the rule that
governs the secret, what the secret asks for. The package, by job:

- :mod:`~rotation.issuance.policy.rules`: the model (a :class:`Rule`, the :class:`IssuancePolicy`,
  the default policy) and which rule governs a secret;
- :mod:`~rotation.issuance.policy.document`: the JSON document parsed and validated into rules;
- :mod:`~rotation.issuance.policy.names`: DNS patterns and IP ranges compared with names;
- :mod:`~rotation.issuance.policy.constraints`: one constraint per thing a rule limits, each
  reporting its own violations (cert-manager approver-policy's model), in one table;
- :mod:`~rotation.issuance.policy.evaluator`: a request (:func:`request_problems`: every
  violation; :func:`fit_request`: refuse on the first, narrow the template) or an issued
  certificate (:func:`check_issued`) against every constraint.

Every refusal is a :class:`PolicyError`: the field, the value (redacted), the rule and what the
rule allows.
"""

from rotation.issuance.policy.constraints import CONSTRAINTS, Constraint
from rotation.issuance.policy.document import parse_policy, policy_warnings
from rotation.issuance.policy.evaluator import check_issued, fit_request, issued_problems, request_problems
from rotation.issuance.policy.issued import IssuedFacts, issued_facts
from rotation.issuance.policy.names import ANY_DNS, ANY_IP, dns_pattern_matches, normalize_dns
from rotation.issuance.policy.rules import (
    ACM_PRIVATE_VALIDITY_DAYS,
    ANY,
    DEFAULT_MAX_VALIDITY_DAYS,
    FORMAT_VERSION,
    IssuancePolicy,
    PolicyError,
    Rule,
    default_policy,
)

__all__ = [
    "ACM_PRIVATE_VALIDITY_DAYS",
    "ANY",
    "ANY_DNS",
    "ANY_IP",
    "CONSTRAINTS",
    "DEFAULT_MAX_VALIDITY_DAYS",
    "FORMAT_VERSION",
    "Constraint",
    "IssuancePolicy",
    "IssuedFacts",
    "PolicyError",
    "Rule",
    "check_issued",
    "default_policy",
    "dns_pattern_matches",
    "fit_request",
    "issued_facts",
    "issued_problems",
    "normalize_dns",
    "parse_policy",
    "policy_warnings",
    "request_problems",
]
