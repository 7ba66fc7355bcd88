"""Issuance: the spec, the policy, keys and CSRs, the issuers, the pacer and the verification."""
