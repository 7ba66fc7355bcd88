"""The concurrent fetching of fleet-wide reads: the rate cap and the page overlap (pure, no AWS)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator, Sequence

from rotation.cli.bulk_reads import RateLimiter, in_parallel, overlapped


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def test_the_limiter_spaces_calls_at_its_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(5.0, clock=clock, sleep=clock.sleep)
    stamps = []
    for _ in range(6):
        limiter.acquire()
        stamps.append(clock.now)
    assert [round(b - a, 6) for a, b in itertools.pairwise(stamps)] == [0.2] * 5


def test_batches_of_a_page_are_read_while_the_next_page_is_listed() -> None:
    events: list[str] = []
    first_batch_read = threading.Event()

    def pages() -> Iterator[list[int]]:
        yield list(range(45))
        # the pool already reads page 1's batches while page 2 is being fetched
        assert first_batch_read.wait(timeout=10)
        events.append("page 2 listed")
        yield list(range(45, 60))

    def read(chunk: Sequence[int]) -> list[int]:
        first_batch_read.set()
        return [n * 10 for n in chunk]

    result = overlapped(pages(), 20, read, workers=4)
    assert result == [n * 10 for n in range(60)]  # in page order, every item once
    assert events == ["page 2 listed"]


def test_in_parallel_keeps_order() -> None:
    assert in_parallel(lambda n: n * n, [3, 1, 2]) == [9, 1, 4]


def test_the_partitions_cover_every_node_id_once() -> None:
    from rotation.cli.bulk_reads import partitioned_fleet

    class Report:
        def __init__(self, instance_id: str) -> None:
            self.instance_id = instance_id

    ids = ["i-0123456789abcdef0", "i-0f23456789abcdef0", "i-1234abcd", "i-fedcba98", "mi-0123456789abcdef0"]
    ids += [f"i-0{h}23456789abcdef0" for h in "0123456789abcdef"]

    def read(client: object) -> tuple[list[Report], list[str]]:
        (values,) = [f["Values"] for f in client.get_inventory()["Filters"]]  # type: ignore[attr-defined]
        return [Report(i) for i in ids if any(i.startswith(v) for v in values)], []

    class Ssm:
        def get_inventory(self, **request: object) -> dict[str, object]:
            return request

    reports, problems = partitioned_fleet(read, Ssm())
    assert [r.instance_id for r in reports] == sorted(ids) and problems == []


def test_a_split_listing_ends_when_pages_come_back_empty_with_a_token() -> None:
    """ListSecrets may answer a page with no secrets and a NextToken; the split must still end."""
    from rotation.cli.bulk_reads import split_listing

    names = [f"app/{n:03d}" for n in range(250)] + ["app/"]
    calls: list[tuple[tuple[str, ...], str | None]] = []

    def list_page(values: tuple[str, ...], token: str | None) -> tuple[list[dict[str, str]], str | None]:
        calls.append((values, token))
        matching = [n for n in names if any(n.startswith(v) for v in values)]
        if token is None and len(matching) > 100:
            return [], "more"  # an empty first page that says there is more
        start = int(token or 0) if token != "more" else 0
        page, rest = matching[start : start + 100], matching[start + 100 :]
        return [{"ARN": f"arn:{n}", "Name": n} for n in page], (str(start + 100) if rest else None)

    def describe(name: str) -> dict[str, str] | None:
        return {"ARN": f"arn:{name}", "Name": name} if name in names else None

    listed = [s["Name"] for page in split_listing(list_page, describe, "app/") for s in page]
    assert sorted(listed) == sorted(names) and len(calls) < 200


def test_a_ctrl_c_always_reaches_the_main_thread_never_a_reader() -> None:
    """Only the main thread runs Python's signal handlers: a SIGINT the kernel gave a reader blocked
    in a socket read would wait for that read to end. Every reader blocks SIGINT; the main thread
    does not."""
    import signal

    from rotation.cli import bulk_reads

    def mask(_: int) -> set[int]:
        return set(signal.pthread_sigmask(signal.SIG_BLOCK, []))

    readers = bulk_reads.in_parallel(mask, list(range(4)), workers=4)
    pages = bulk_reads.overlapped([[1, 2], [3]], 1, lambda chunk: [mask(0)], workers=2)

    assert all(signal.SIGINT in blocked for blocked in readers + pages)
    assert signal.SIGINT not in mask(0)
