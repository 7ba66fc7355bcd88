"""Issuance: the spec, the plan, the policy, keys and CSRs, the issuers, the pacer and the verification."""
