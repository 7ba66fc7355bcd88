"""``status``'s listing split into ListSecrets chains by name prefix: every secret once, within the API's limits.

moto in process answers ListSecrets with the ``name`` filter as AWS documents it (API reference,
Filter: "name: Prefix match, case-sensitive"; several values are OR-ed; at most 10 values of at
most 512 characters, botocore's FilterValuesStringList), which the first test checks, since the
split relies on it.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import Counter
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.model import ListShape
from moto import mock_aws

from rotation.cli.bulk_reads import FILTER_VALUE_LENGTH, FILTER_VALUES, NAME_ALPHABET, split_listing, split_prefixes
from rotation.cli.inventory import split_pages
from rotation.emulation.secrets_listing import paged_list_secrets

REGION = "us-east-1"


def listed_names(sm: Any, **arguments: Any) -> list[str]:
    return [s["Name"] for page in sm.get_paginator("list_secrets").paginate(**arguments) for s in page["SecretList"]]


def test_the_name_filter_is_a_case_sensitive_prefix_with_values_ored_as_documented() -> None:
    values = botocore.session.get_session().get_service_model("secretsmanager").shape_for("FilterValuesStringList")
    assert isinstance(values, ListShape)
    assert (values.metadata["max"], values.member.metadata["max"]) == (FILTER_VALUES, FILTER_VALUE_LENGTH)
    with mock_aws():
        sm = boto3.client("secretsmanager", region_name=REGION)
        for name in ("alpha/1", "Alpha/2", "beta/3", "gamma/4"):
            sm.create_secret(Name=name, SecretString="{}")
        assert sorted(listed_names(sm, Filters=[{"Key": "name", "Values": ["alpha", "beta"]}])) == ["alpha/1", "beta/3"]
        assert listed_names(sm, Filters=[{"Key": "name", "Values": ["Al"]}]) == ["Alpha/2"]


class Calls:
    def __init__(self, sm: Any) -> None:
        self.filters: list[list[str]] = []
        self.described: list[str] = []
        sm.meta.events.register("provide-client-params.secretsmanager.ListSecrets", self.listing)
        sm.meta.events.register("provide-client-params.secretsmanager.DescribeSecret", self.describing)

    def listing(self, params: dict[str, Any], **_: Any) -> None:
        names = [v for f in params.get("Filters", []) if f["Key"] == "name" for v in f["Values"]]
        assert len(names) <= FILTER_VALUES and all(len(v) <= FILTER_VALUE_LENGTH for v in names)
        self.filters.append(names)

    def describing(self, params: dict[str, Any], **_: Any) -> None:
        self.described.append(params["SecretId"])


def read(sm: Any, prefix: str | None = None, tags: tuple[tuple[str, str], ...] = ()) -> Counter[str]:
    pages = split_pages(sm, prefix=prefix, tags=tags, max_rate=1000.0)
    return Counter(s["Name"] for page in pages for s in page)


@pytest.fixture(params=["moto", "paged emulation"])
def sm(request: pytest.FixtureRequest) -> Any:
    """moto as it ships, and with the benchmark's ListSecrets paging (its name index)."""
    with mock_aws(), paged_list_secrets() if request.param == "paged emulation" else contextlib.nullcontext():
        yield boto3.client("secretsmanager", region_name=REGION)


def test_names_starting_with_every_allowed_character_are_each_listed_once(sm: Any) -> None:
    names = [c for c in NAME_ALPHABET] + [f"{c}x/{k}" for c in NAME_ALPHABET for k in range(2)]
    # one team holding most of them, and names equal to prefixes a split passes through
    names += [f"team/payments/api-{n:03d}" for n in range(250)] + ["team", "team/", "team/payments", "team/p"]
    names += [f"team/platform/{n:02d}" for n in range(40)] + ["Team/payments/other-case"]
    for name in names:
        sm.create_secret(Name=name, SecretString=json.dumps({"CERTIFICATE_TYPE": "PCA_ISSUED"}))
    sm.create_secret(Name="team/payments/deleted", SecretString="{}")
    sm.delete_secret(SecretId="team/payments/deleted", RecoveryWindowInDays=7)
    calls = Calls(sm)

    everything = read(sm)
    assert everything == Counter(names)  # each exactly once; the deleted one not at all
    assert len({tuple(f) for f in calls.filters}) > 1  # the listing was split into chains

    under_team = read(sm, prefix="team/")
    assert under_team == Counter(n for n in names if n.startswith("team/"))  # "team/" itself, not "Team/…"
    assert "team/" in calls.described  # the name a split prefix equals is read by DescribeSecret


def test_a_split_listing_keeps_the_tag_filter(sm: Any) -> None:
    for n in range(230):
        tags = [{"Key": "owner", "Value": "web" if n % 2 else "db"}]
        sm.create_secret(Name=f"svc/{n % 7}/{n:03d}", SecretString="{}", Tags=tags)
    sm.create_secret(Name="svc/", SecretString="{}", Tags=[{"Key": "owner", "Value": "db"}])
    assert read(sm, prefix="svc/", tags=(("owner", "web"),)) == Counter(
        f"svc/{n % 7}/{n:03d}" for n in range(1, 230, 2)
    )


def test_one_page_of_secrets_is_one_call(sm: Any) -> None:
    for n in range(100):
        sm.create_secret(Name=f"small/{n:03d}", SecretString="{}")
    calls = Calls(sm)
    assert read(sm, prefix="small/") == Counter(f"small/{n:03d}" for n in range(100))
    assert calls.filters == [["small/"]] and calls.described == []


def test_a_group_holding_more_than_a_page_splits_into_one_chain_per_prefix() -> None:
    """Peeling off the one prefix its page showed left the other nine one chain (8,000 of 10,000 names)."""
    group = tuple(f"fleet/{d}" for d in "0123456789")
    page = [f"fleet/1{n:03d}" for n in range(100)]
    assert split_prefixes(group, page) == [(v,) for v in group]
    assert split_prefixes(group, []) == [group[:5], group[5:]]  # an empty page that says there is more


def test_a_prefix_splits_into_what_its_page_showed_and_the_unseen_grouped_by_kind_of_character() -> None:
    children = split_prefixes(("fleet/",), [f"fleet/0{n:03d}" for n in range(100)])
    assert children[0] == ("fleet/0",)
    assert (
        "fleet/1",
        "fleet/2",
        "fleet/3",
        "fleet/4",
        "fleet/5",
        "fleet/6",
        "fleet/7",
        "fleet/8",
        "fleet/9",
    ) in children
    assert tuple(f"fleet/{c}" for c in "/_+=.@-") in children
    assert all(len(c) <= FILTER_VALUES and len({v[6].isdigit() for v in c}) == 1 for c in children)
    covered = Counter(v for c in children for v in c)
    assert covered == Counter(f"fleet/{c}" for c in NAME_ALPHABET)  # every next character once


def test_sequential_names_list_in_fewer_calls_and_shorter_chains() -> None:
    """10,000 names ``fleet/00000`` … (the benchmark's), listed in creation order 100 a page: the
    calls made and the longest chain, against what the split did before (136-181 calls, one chain of
    60-70 pages: the critical path of 50 ms round trips)."""
    names = [f"fleet/{n:05d}" for n in range(10_000)]
    lock = threading.Lock()
    pages: Counter[tuple[str, ...]] = Counter()

    def list_page(values: tuple[str, ...], token: str | None) -> tuple[list[dict[str, Any]], str | None]:
        start = int(token or 0)
        matched = [n for n in names[start:] if n.startswith(values)]
        with lock:
            pages[values] += 1
        more = str(names.index(matched[100])) if len(matched) > 100 else None
        return [{"ARN": n, "Name": n} for n in matched[:100]], more

    listed = [s["Name"] for page in split_listing(list_page, lambda name: None, "fleet/") for s in page]
    assert sorted(listed) == names
    assert sum(pages.values()) <= 150
    assert max(pages.values()) <= 20
