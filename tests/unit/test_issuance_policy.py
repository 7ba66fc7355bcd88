"""The issuance policy's matcher, stated as properties over generated names (pure: no AWS)."""

from __future__ import annotations

import itertools
import json
import random
import string
from datetime import UTC, datetime, timedelta

import pytest

from rotation.issuance.policy import (
    ANY_IP,
    IssuedFacts,
    PolicyError,
    Rule,
    check_issued,
    default_policy,
    dns_pattern_matches,
    fit_request,
    normalize_dns,
    parse_policy,
)
from rotation.issuance.spec import CertificateType, CertSpec, parse_spec
from rotation.issuance.validity import requested_lifetime

CA = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/" + "1" * 36
RANDOM = random.Random(15)  # reproducible generated cases
LABEL_CHARS = string.ascii_lowercase + string.digits + "-"


def label() -> str:
    text = "".join(RANDOM.choice(LABEL_CHARS) for _ in range(RANDOM.randint(1, 12)))
    return "a" + text.strip("-") + "z"


def names(count: int = 200) -> list[str]:
    return [".".join(label() for _ in range(RANDOM.randint(1, 4))) for _ in range(count)]


def rule(*dns: str, ips: tuple[str, ...] = ()) -> Rule:
    return Rule("r", ("*",), (CA,), dns_names=tuple(dns), ip_ranges=ips)


@pytest.mark.parametrize("name", names())
def test_a_suffix_admits_every_name_strictly_under_it_and_nothing_else(name: str) -> None:
    parent = "example.internal"
    assert dns_pattern_matches("." + parent, f"{name}.{parent}")
    assert dns_pattern_matches("." + parent, f"*.{name}.{parent}")
    assert not dns_pattern_matches("." + parent, parent)
    assert not dns_pattern_matches("." + parent, f"{name}{parent}")  # no label boundary: evilexample.internal
    assert not dns_pattern_matches("." + parent, f"{parent}.{name}")


@pytest.mark.parametrize("name", names())
def test_a_wildcard_pattern_matches_exactly_one_label(name: str) -> None:
    pattern = "*.example.internal"
    first = name.split(".", maxsplit=1)[0]
    assert dns_pattern_matches(pattern, f"{first}.example.internal")
    assert dns_pattern_matches(pattern, "*.example.internal")
    if "." in name:
        assert not dns_pattern_matches(pattern, f"{name}.example.internal")
    assert not dns_pattern_matches(pattern, "example.internal")
    assert not dns_pattern_matches(pattern, f"*.{first}.example.internal")


@pytest.mark.parametrize("name", names(60))
def test_case_and_one_trailing_dot_do_not_change_a_match(name: str) -> None:
    allowed = rule(f"{name}.example")
    for variant in (name.upper(), name.title(), name + "."):
        assert allowed.allows_name(f"{variant}.example" if not variant.endswith(".") else f"{name}.example.")
    assert normalize_dns(name.upper() + ".") == name


def test_idn_patterns_match_their_punycode_only() -> None:
    policy = parse_policy(
        json.dumps(
            {
                "version": 1,
                "rules": [{"name": "idn", "secrets": ["*"], "ca_arns": [CA], "dns_names": ["*.Bücher.example"]}],
            }
        )
    )
    (allowed,) = policy.rules
    assert allowed.dns_names == ("*.xn--bcher-kva.example",)
    assert allowed.allows_name("shop.xn--bcher-kva.example")
    assert allowed.allows_name("shop.BÜCHER.example")
    assert not allowed.allows_name("shop.bucher.example")


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("10.1.2.3", True),
        ("11.0.0.1", False),
        ("fd00::1", True),
        ("fe80::1", False),
        ("::ffff:10.1.2.3", False),  # an IPv4-mapped address is not the IPv4 network
        ("2001:db8::1", False),
    ],
)
def test_ip_ranges_match_by_version_and_network(address: str, allowed: bool) -> None:
    assert rule(ips=("10.0.0.0/8", "fd00::/8")).allows_name(address) is allowed


def test_any_ip_admits_both_families() -> None:
    assert all(rule(ips=ANY_IP).allows_name(a) for a in ("192.0.2.1", "2001:db8::1"))


@pytest.mark.parametrize(
    ("prefix", "secret", "governs"),
    [
        ("team-a/*", "team-a/web", True),
        ("team-a/*", "team-ab/web", False),
        ("team-a/web", "team-a/web", True),
        ("team-a/web", "team-a/web2", False),
        ("*", "anything", True),
    ],
)
def test_rules_are_keyed_by_the_secret_name(prefix: str, secret: str, governs: bool) -> None:
    assert Rule("r", (prefix,), (CA,)).governs(secret, "111122223333") is governs


def test_the_first_matching_rule_governs_and_accounts_narrow_it() -> None:
    first = Rule("a", ("team-a/*",), (CA,), accounts=("111122223333",))
    second = Rule("b", ("*",), (CA,))
    policy = default_policy(None).__class__(rules=(first, second))
    assert policy.rule_for("team-a/web", "111122223333").name == "a"
    assert policy.rule_for("team-a/web", "444455556666").name == "b"


@pytest.mark.parametrize("bad", ["*", "a.*.example", "f*.example", "*.com", "-a.example", ".*.example", "a..b"])
def test_invalid_dns_patterns_are_refused_naming_the_field(bad: str) -> None:
    text = json.dumps({"version": 1, "rules": [{"name": "x", "secrets": ["*"], "ca_arns": [CA], "dns_names": [bad]}]})
    with pytest.raises(PolicyError) as caught:
        parse_policy(text)
    assert caught.value.field == "rules[0].dns_names"


def test_default_policy_of_one_two_and_unknown_cas() -> None:
    (only,) = default_policy((CA,)).rules
    assert only.ca_arns == (CA,) and not only.client_auth and only.max_validity_days == 397
    assert default_policy((CA, CA.replace("1", "2"))).rules == ()
    assert default_policy(None).warnings


def test_the_normalized_document_parses_back_to_the_same_policy() -> None:
    combos = itertools.product([True, False], repeat=3)
    rules = [
        {
            "name": f"r{i}",
            "secrets": [f"team-{i}/*"],
            "ca_arns": [CA],
            "dns_names": [f".t{i}.example"],
            "client_auth": c,
            "acm_issued": a,
            "reuse_private_key": r,
            "max_validity_days": 90 + i,
        }
        for i, (c, a, r) in enumerate(combos)
    ]
    policy = parse_policy(json.dumps({"version": 1, "rules": rules}))
    assert parse_policy(json.dumps(policy.to_document())).rules == policy.rules


# --- lifetimes: what Private CA makes of VALIDITY, and the 60-minute backdating ------------------


def _spec(validity: str) -> CertSpec:
    return parse_spec(
        {"CERTIFICATE_TYPE": "PCA_ISSUED", "CA_ARN": CA, "COMMON_NAME": "a.example", "VALIDITY": validity}
    )


def _facts(lifetime: timedelta) -> IssuedFacts:
    issued = datetime(2027, 5, 4, 12, 0, tzinfo=UTC)
    not_before = issued - timedelta(minutes=60)
    return IssuedFacts(("a.example",), not_before, not_before + lifetime, CA, CertificateType.PCA_ISSUED)


@pytest.mark.parametrize("days", [1, 90, 365, 397])
def test_a_certificate_at_the_ceiling_with_the_documented_backdating_passes_and_a_second_more_does_not(
    days: int,
) -> None:
    ceiling = Rule("r", ("*",), (CA,), dns_names=(".",), max_validity_days=days)
    check_issued(ceiling, _facts(timedelta(days=days, minutes=60)))  # as Private CA issues VALIDITY = the ceiling
    with pytest.raises(PolicyError, match=f"at most {days} days"):
        check_issued(ceiling, _facts(timedelta(days=days, minutes=60, seconds=1)))


@pytest.mark.parametrize(
    ("validity", "now", "days"),
    [
        ("90", datetime(2027, 1, 31, 9, tzinfo=UTC), 90),
        ("12 MONTHS", datetime(2028, 6, 15, 9, tzinfo=UTC), 365),  # June 2028 to June 2029: no 29 February
        ("12 MONTHS", datetime(2027, 6, 15, 9, tzinfo=UTC), 366),  # crosses 29 February 2028
        ("1 YEAR", datetime(2028, 2, 29, 9, tzinfo=UTC), 365),  # 28 February 2029: the day is clamped
        ("1 MONTH", datetime(2027, 1, 31, 9, tzinfo=UTC), 28),  # 28 February 2027
        ("3 MONTHS", datetime(2026, 12, 7, 9, tzinfo=UTC), 90),
    ],
)
def test_the_pre_check_measures_validity_as_private_ca_applies_it(validity: str, now: datetime, days: int) -> None:
    spec = _spec(validity)
    assert requested_lifetime(spec.validity, now) == timedelta(days=days)
    fit_request(Rule("r", ("*",), (CA,), dns_names=(".",), max_validity_days=days), spec, now=now)
    with pytest.raises(PolicyError) as caught:
        fit_request(Rule("r", ("*",), (CA,), dns_names=(".",), max_validity_days=days - 1), spec, now=now)
    assert caught.value.field == "VALIDITY" and f"{days} days from issuance" in str(caught.value)


def test_a_month_boundary_inside_the_issue_window_counts_against_the_request() -> None:
    # 23:55 on 28 February 2027: signed ten minutes later, 12 MONTHS runs from 1 March 2027 to 1 March 2028.
    late = datetime(2027, 2, 28, 23, 55, tzinfo=UTC)
    assert requested_lifetime(_spec("12 MONTHS").validity, late) == timedelta(days=366)


def test_the_default_validity_fits_a_365_day_rule_before_and_after_issuance() -> None:
    spec = _spec("")
    rule_365 = Rule("r", ("*",), (CA,), dns_names=(".",), max_validity_days=365)
    now = datetime(2027, 5, 4, 12, tzinfo=UTC)
    fit_request(rule_365, spec, now=now)
    check_issued(rule_365, _facts(timedelta(days=365, minutes=60)))


NOW_POLICY = datetime(2027, 5, 4, 12, tzinfo=UTC)


def test_the_pre_issue_check_lists_every_violation_and_fit_request_refuses_the_first() -> None:
    from rotation.issuance.policy import fit_request, request_problems
    from rotation.issuance.spec import KeyAlgorithm
    from tests.support.certs import spec_for

    narrow = Rule(
        "payments",
        ("payments/*",),
        (CA,),
        dns_names=("*.a.example.internal",),
        key_algorithms=(KeyAlgorithm.EC_prime256v1,),
        max_validity_days=90,
    )
    other_ca = CA.replace("1" * 12, "2" * 12)
    spec = spec_for(CA_ARN=other_ca, COMMON_NAME="api.other.example", KEY_ALGORITHM="RSA_2048")  # VALIDITY: 365
    problems = request_problems(narrow, spec, now=NOW_POLICY)
    assert [p.field for p in problems] == ["CA_ARN", "COMMON_NAME", "KEY_ALGORITHM", "VALIDITY"]
    with pytest.raises(PolicyError) as refused:
        fit_request(narrow, spec, now=NOW_POLICY)
    assert refused.value.field == "CA_ARN"
    inside = spec_for(CA_ARN=CA, COMMON_NAME="api.a.example.internal", KEY_ALGORITHM="EC_prime256v1", VALIDITY="90")
    assert request_problems(narrow, inside, now=NOW_POLICY) == []


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:acm-pca:eu-west-1:111122223333:certificate-authority/…",
        "arn:aws:acm-pca:eu-west-1:1111:certificate-authority/" + "1" * 36,
        "arn:aws:acm:eu-west-1:111122223333:certificate-authority/" + "1" * 36,
        "arn:aws:acm-pca:::template/EndEntityCertificate/V1",
    ],
)
def test_a_policy_ca_arn_must_be_well_formed(arn: str) -> None:
    document = {"version": 1, "rules": [{"name": "a", "secrets": ["*"], "ca_arns": [arn]}]}
    with pytest.raises(PolicyError) as refused:
        parse_policy(json.dumps(document))
    assert refused.value.field == "rules[0].ca_arns"


def test_every_rule_allowance_is_one_constraint_that_the_summary_line_reads() -> None:
    """A rule's allowances and the constraint table are one list: each attribute a rule limits with is
    read by exactly one constraint, and ``policy validate``'s summary line says what each allows."""
    from dataclasses import fields

    from rotation.cli.policy import describe_rule
    from rotation.issuance.policy import CONSTRAINTS

    governance = {"name", "secrets", "accounts"}  # which secrets a rule governs, not what they may obtain
    read = [key for constraint in CONSTRAINTS for key in constraint.keys]
    assert sorted(read) == sorted({f.name for f in fields(Rule)} - governance)
    rule = Rule("r", ("team-a/*",), (CA,), dns_names=(".a.example",), client_auth=True, max_validity_days=30)
    line = describe_rule(rule)
    assert line.startswith("r: secrets team-a/*; ")
    assert all(constraint.allows(rule) in line for constraint in CONSTRAINTS)
    assert "<= 30 days" in line and "server+client" in line and "names .a.example" in line


def test_the_post_issue_check_lists_every_violation_and_check_issued_refuses_the_first() -> None:
    from rotation.issuance.policy import issued_problems

    narrow = Rule("payments", ("payments/*",), (CA,), dns_names=("a.example",), max_names=1, max_validity_days=30)
    other_ca = CA.replace("1" * 12, "2" * 12)
    facts = IssuedFacts(
        ("a.example", "b.example"), NOW_POLICY, NOW_POLICY + timedelta(days=90), other_ca, CertificateType.PCA_ISSUED
    )
    problems = issued_problems(narrow, facts)
    assert [(p.field, p.value) for p in problems] == [
        ("CA_ARN", other_ca),
        ("CERTIFICATE_PEM", "2 names"),
        ("CERTIFICATE_PEM", "b.example"),
        ("CERTIFICATE_PEM", problems[3].value),
    ]
    assert "lives longer than the rule allows" in problems[3].problem
    with pytest.raises(PolicyError) as refused:
        check_issued(narrow, facts)
    assert refused.value.field == "CA_ARN"


def test_every_violation_of_an_acm_request_is_listed_at_once() -> None:
    """ACM_ISSUED under a rule that refuses ACM and is shorter than ACM's 395 days: both, and the key and names."""
    from rotation.issuance.policy import request_problems
    from rotation.issuance.spec import KeyAlgorithm
    from tests.support.certs import spec_for

    rule = Rule(
        "r",
        ("*",),
        (CA,),
        dns_names=("a.example",),
        key_algorithms=(KeyAlgorithm.EC_prime256v1,),
        acm_issued=False,
        max_validity_days=90,
    )
    spec = spec_for(CERTIFICATE_TYPE="ACM_ISSUED", CA_ARN=CA, COMMON_NAME="b.example", KEY_ALGORITHM="RSA_2048")
    problems = request_problems(rule, spec, now=NOW_POLICY)
    assert [p.field for p in problems] == ["CERTIFICATE_TYPE", "CERTIFICATE_TYPE", "COMMON_NAME", "KEY_ALGORITHM"]
