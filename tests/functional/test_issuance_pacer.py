"""The issuance pacer books slots on the ledger table (moto's DynamoDB): idle, busy, beyond the deadline, skewed clocks.

Times are given explicitly (the pacer's clock and sleep are injected): these tests assert booked
slots and table contents, never elapsed time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from rotation.errors import IssuanceTimeoutError
from rotation.fleet.ledger import Ledger, create_table
from rotation.fleet.revocation import IssuedCertificate
from rotation.issuance.issuers.base import WaitBudget
from rotation.issuance.pacer import (
    HEADROOM,
    HORIZON,
    NEXT_SLOT,
    PACER_PREFIX,
    IssuancePacer,
    pacer_key,
    rates_from_environment,
)

TABLE = "ledger"
ISSUE = ("acm-pca", "IssueCertificate")
KEY = pacer_key("acm-pca", "IssueCertificate", "123456789012", "us-east-1")
T0 = 1_800_000_000.0  # an epoch time (2027)


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1", config=Config(retries={"total_max_attempts": 1}))
        create_table(client, TABLE)
        yield client


class Container:
    """One Lambda container's pacer, with its own clock (possibly skewed) and a recording sleep."""

    def __init__(self, client: Any, now: float, rate: float = 20.0) -> None:
        self.now = now
        self.slept: list[float] = []
        self.calls = 0
        counting = _Counting(client, self)
        self.pacer = IssuancePacer(counting, TABLE, {ISSUE: rate}, clock=lambda: self.now, sleep=self.slept.append)

    def wait(self, remaining: float = 60.0) -> float:
        return self.pacer.wait_for_slot(*ISSUE, "123456789012", "us-east-1", _Fixed(remaining))


class _Counting:
    def __init__(self, client: Any, container: Container) -> None:
        self._client = client
        self._container = container

    def update_item(self, **kwargs: Any) -> Any:
        self._container.calls += 1
        return self._client.update_item(**kwargs)


class _Fixed:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def remaining(self) -> float:
        return self.seconds


def near(value: Any) -> Any:
    """Equal within 0.1 ms (epoch seconds as DynamoDB numbers carry about 0.2 µs of rounding)."""
    return pytest.approx(value, abs=1e-4)


def next_slot(client: Any) -> float:
    item = client.get_item(
        TableName=TABLE, Key={"SecretArn": {"S": KEY}, "Serial": {"S": "pacer"}}, ConsistentRead=True
    )
    return float(item["Item"][NEXT_SLOT]["N"])


def test_an_idle_pacer_gives_the_slot_now_and_books_one_interval(dynamodb: Any) -> None:
    container = Container(dynamodb, T0)
    assert container.wait() == 0.0
    assert container.slept == []
    assert next_slot(dynamodb) == near(T0 + 0.05)
    item = dynamodb.get_item(TableName=TABLE, Key={"SecretArn": {"S": KEY}, "Serial": {"S": "pacer"}})["Item"]
    assert float(item["ExpiresAt"]["N"]) == int(T0) + 86_400  # the table's TTL removes an idle pacer


def test_a_busy_pacer_gives_each_container_the_next_slot(dynamodb: Any) -> None:
    """Ten containers at the same instant: slots 1/rate apart, each sleeps until its own."""
    containers = [Container(dynamodb, T0) for _ in range(10)]
    waits = [c.wait() for c in containers]
    assert waits == near([i * 0.05 for i in range(10)])
    assert [c.slept for c in containers[1:]] == [[near(i * 0.05)] for i in range(1, 10)]
    assert next_slot(dynamodb) == near(T0 + 10 * 0.05)


def test_a_pacer_idle_again_gives_the_slot_now(dynamodb: Any) -> None:
    first = Container(dynamodb, T0)
    first.wait()
    later = Container(dynamodb, T0 + 30)
    assert later.wait() == 0.0
    assert next_slot(dynamodb) == near(T0 + 30.05)


def test_a_slot_beyond_the_deadline_fails_the_step_and_books_nothing(dynamodb: Any) -> None:
    """A slot the step could not use would push every later rotation back: none is booked."""
    for _ in range(100):  # 5 s of slots at 20/s
        Container(dynamodb, T0).wait()
    booked = next_slot(dynamodb)
    late = Container(dynamodb, T0)
    with pytest.raises(IssuanceTimeoutError, match=r"beyond this step's time.*Secrets Manager retries"):
        late.wait(remaining=HEADROOM + 4.0)  # it could wait 4 s; the next slot is 5 s away
    assert next_slot(dynamodb) == booked
    assert late.slept == []
    assert Container(dynamodb, T0).wait(remaining=HEADROOM + 6.0) == near(5.0)  # 6 s is enough


def test_a_step_with_no_time_to_wait_takes_only_a_free_slot(dynamodb: Any) -> None:
    assert Container(dynamodb, T0).wait(remaining=1.0) == 0.0  # idle: the slot is now
    with pytest.raises(IssuanceTimeoutError):
        Container(dynamodb, T0).wait(remaining=1.0)  # busy, and no time to wait for the next slot


def test_a_container_remembers_the_pacer_is_busy_and_books_in_one_call(dynamodb: Any) -> None:
    container = Container(dynamodb, T0)
    container.wait()
    assert container.calls == 1  # idle: the first guess
    Container(dynamodb, T0).wait()  # another container makes it busy
    container.calls = 0
    container.wait()
    assert container.calls == 2  # guessed idle, was busy
    container.calls = 0
    container.wait()
    assert container.calls == 1  # now guesses busy


def test_a_clock_behind_waits_longer_and_never_moves_the_pacer_back(dynamodb: Any) -> None:
    Container(dynamodb, T0).wait()  # NextSlotAt = T0 + 0.05
    behind = Container(dynamodb, T0 - 0.3)  # this container's clock is 0.3 s slow
    assert behind.wait() == near(0.35)  # its slot is T0 + 0.05 by the shared timeline
    assert next_slot(dynamodb) == near(T0 + 0.10)


def test_a_clock_ahead_books_from_its_own_now_and_never_moves_the_pacer_back(dynamodb: Any) -> None:
    Container(dynamodb, T0).wait()  # NextSlotAt = T0 + 0.05
    ahead = Container(dynamodb, T0 + 0.3)  # sees the pacer idle
    assert ahead.wait() == 0.0
    assert next_slot(dynamodb) == near(T0 + 0.35)  # later than before, never earlier
    assert Container(dynamodb, T0).wait() == near(0.35)  # a correct clock queues after it


def test_a_pacer_booked_beyond_any_reach_is_reset(dynamodb: Any) -> None:
    """A clock hours ahead (or an operator's write) cannot block issuance: past the horizon, reset."""
    Container(dynamodb, T0 + 7200).wait()  # NextSlotAt two hours ahead of the true time
    assert next_slot(dynamodb) > T0 + HORIZON
    assert Container(dynamodb, T0).wait() == 0.0
    assert next_slot(dynamodb) == near(T0 + 0.05)


def test_pacer_items_never_meet_ledger_entries(dynamodb: Any) -> None:
    from datetime import UTC, datetime

    secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:web-AbCdEf"
    ledger = Ledger(dynamodb, TABLE)
    now = datetime(2027, 1, 1, tzinfo=UTC)
    ledger.record_issued(IssuedCertificate(secret, "0A", "arn:ca", "PCA_ISSUED", "v1", now, now, "f" * 64))
    Container(dynamodb, T0).wait()
    assert [e.serial for e in ledger.entries(secret)] == ["A"]
    assert KEY.startswith(PACER_PREFIX) and not KEY.startswith("arn:")


def test_without_the_table_the_call_goes_ahead_unpaced(dynamodb: Any, caplog: pytest.LogCaptureFixture) -> None:
    pacer = IssuancePacer(dynamodb, "no-such-table", {ISSUE: 20.0}, clock=lambda: T0, sleep=lambda s: None)
    assert pacer.wait_for_slot(*ISSUE, "123456789012", "us-east-1", WaitBudget(60.0)) == 0.0


def test_an_operation_not_paced_books_nothing(dynamodb: Any) -> None:
    container = Container(dynamodb, T0)
    assert container.pacer.wait_for_slot("acm-pca", "GetCertificate", "1", "us-east-1", _Fixed(60)) == 0.0
    assert container.calls == 0


def test_rates_come_from_the_environment_and_a_bad_one_is_named() -> None:
    rates = rates_from_environment({"CERTROTATE_PCA_ISSUE_RATE": "40", "CERTROTATE_ACM_ISSUE_RATE": "0"})
    assert rates[ISSUE] == 40.0
    assert rates[("acm", "RequestCertificate")] == 0.0  # not paced
    defaults = rates_from_environment({})
    assert defaults[ISSUE] == 20.0 and defaults[("acm", "ExportCertificate")] == 4.5  # under 25/s and 5/s
    for bad in ("fast", "-1", "inf", "nan"):
        with pytest.raises(ValueError, match=rf"CERTROTATE_PCA_ISSUE_RATE='{bad}'.*≥ 0"):
            rates_from_environment({"CERTROTATE_PCA_ISSUE_RATE": bad})


def test_the_lambda_paces_where_it_has_a_ledger_and_its_issuer_clients_retry_nothing(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """default_services: the pacer on the ledger's table at the environment's rates (none without a
    ledger, or with every rate 0); the Private CA and ACM clients make one botocore attempt a call."""
    from rotation.issuance.spec import CertificateType
    from rotation.lifecycle.engine import default_services

    monkeypatch.setenv("CERTROTATE_LEDGER_TABLE", TABLE)
    monkeypatch.setenv("CERTROTATE_PCA_ISSUE_RATE", "30")
    services = default_services()
    pacer = services.issuers[CertificateType.PCA_ISSUED]._pacer  # type: ignore[attr-defined]
    assert isinstance(pacer, IssuancePacer) and pacer.table == TABLE and pacer.rate(*ISSUE) == 30.0
    assert services.issuers[CertificateType.ACM_ISSUED]._pacer is pacer  # type: ignore[attr-defined]
    for certificate_type in CertificateType:
        issuer: Any = services.issuers[certificate_type]
        assert issuer._client_for_region("us-east-1").meta.config.retries["total_max_attempts"] == 1
    assert services.store._client.meta.config.retries.get("total_max_attempts") != 1  # Secrets Manager: botocore's

    monkeypatch.setenv("CERTROTATE_PCA_ISSUE_RATE", "0")
    monkeypatch.setenv("CERTROTATE_ACM_ISSUE_RATE", "0")
    assert default_services().issuers[CertificateType.PCA_ISSUED]._pacer is None  # type: ignore[attr-defined]
    monkeypatch.delenv("CERTROTATE_LEDGER_TABLE")
    monkeypatch.delenv("CERTROTATE_PCA_ISSUE_RATE")
    assert default_services().issuers[CertificateType.PCA_ISSUED]._pacer is None  # type: ignore[attr-defined]


def test_concurrent_containers_never_share_a_slot(dynamodb: Any) -> None:
    """40 containers book at once from threads (moto made atomic per request, as DynamoDB is per item)."""
    import threading

    from rotation.emulation.dynamodb_atomic import atomic_dynamodb

    containers = [Container(dynamodb, T0) for _ in range(40)]
    start = threading.Barrier(len(containers))
    waits: list[float] = []

    def book(container: Container) -> None:
        start.wait()
        waits.append(container.wait())

    with atomic_dynamodb():
        threads = [threading.Thread(target=book, args=(c,)) for c in containers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(round(w / 0.05) for w in waits) == list(range(40))  # one container a slot, none skipped
    assert next_slot(dynamodb) == near(T0 + 40 * 0.05)
