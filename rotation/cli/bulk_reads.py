"""Fleet-wide reads in parallel, within the service quotas: a bounded pool and a request-rate cap.

``status`` over thousands of secrets is one ListSecrets page chain (100 secrets a page; each page
needs the previous page's NextToken, so the chain is sequential) and one BatchGetSecretValue per
20 secrets. Here the batches of a page are read by a small pool *while* the next page is being
listed, and every BatchGetSecretValue first takes a token from a rate limiter: Secrets Manager's
default quota for BatchGetSecretValue is 100 requests per second per account and Region
(AWS Secrets Manager User Guide, *Quotas*), so the default cap stays under it. ``hosts`` reads its
accounts concurrently (each account's GetInventory chain is its own, with its own cap: quotas are
per account). boto3 clients are thread safe; sessions and client *creation* are not, so clients
are made before the pool starts.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

from rotation.throttling import ThrottleRetryingClient

T = TypeVar("T")
R = TypeVar("R")

#: Requests per second per API and account the CLI allows itself (BatchGetSecretValue's quota: 100/s).
DEFAULT_MAX_RATE = 80.0
#: Calls in flight at once.
WORKERS = 8
#: How long one read keeps retrying a throttled call.
READ_DEADLINE_SECONDS = 120.0


def add_max_rate_argument(parser: argparse.ArgumentParser) -> None:
    def rate(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            number = 0.0
        if not 0 < number <= 1000:
            raise argparse.ArgumentTypeError(f"--max-rate {value!r}: a number of requests per second, 0 < rate ≤ 1000")
        return number

    parser.add_argument(
        "--max-rate",
        type=rate,
        default=DEFAULT_MAX_RATE,
        metavar="N",
        help=f"at most N read requests per second per API and account (default {DEFAULT_MAX_RATE:g}; "
        "Secrets Manager's BatchGetSecretValue quota is 100/s)",
    )


class RateLimiter:
    """At most ``rate`` acquisitions per second across threads (calls are spaced 1/rate apart)."""

    def __init__(
        self, rate: float, *, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._next = clock()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self._interval
        if slot > now:
            self._sleep(slot - now)


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self._end - time.monotonic()


def rate_limited(client: Any, max_rate: float) -> Any:
    """``client`` whose API calls each take a :class:`RateLimiter` token first (the rest passes through).

    A call answered with throttling all the same (another client of the account shares the quota)
    is retried with full-jitter backoff (:func:`rotation.throttling.call_with_backoff`) for up to
    :data:`READ_DEADLINE_SECONDS`, each attempt taking its token again. These clients keep
    botocore's standard retries: a timeout or a 5xx was already retried there, so only throttling
    is retried here (a silent endpoint fails within the bounds).
    """
    limiter = RateLimiter(max_rate)
    return ThrottleRetryingClient(
        client,
        lambda: _Deadline(READ_DEADLINE_SECONDS),
        before_call=lambda service, operation: limiter.acquire(),
        transient_retries=0,
    )


@contextlib.contextmanager
def _pool(workers: int, name: str) -> Iterator[ThreadPoolExecutor]:
    """A thread pool that waits for its reads when the block ends normally, and not when it raises
    (Ctrl-C above all): a read blocked on an endpoint that never answers must not hold the command
    for its read timeout. The command line then ends the process without joining those threads."""
    pool = ThreadPoolExecutor(
        max_workers=workers, thread_name_prefix=name, initializer=_interrupts_go_to_the_main_thread
    )
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _interrupts_go_to_the_main_thread() -> None:
    """Each reader blocks SIGINT, so the kernel hands a Ctrl-C to the main thread, the only one that
    runs Python's signal handlers. Delivered to a reader instead, it would only interrupt that
    reader's socket read, and the main thread, asleep in its wait for the readers, would learn of it
    when the read ends: up to ``--read-timeout`` later (seen once as a Ctrl-C with no effect for 30 s)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def overlapped(
    pages: Iterable[Sequence[T]], chunk: int, read: Callable[[Sequence[T]], list[R]], *, workers: int = WORKERS
) -> list[R]:
    """``read`` each ``chunk``-sized slice of every page on a pool while the next pages are produced.

    The results come back in page order. The first failure is raised once the pool has stopped.
    """
    futures: list[Future[list[R]]] = []
    with _pool(workers, "certrotate-read") as pool:
        for page in pages:
            futures += [pool.submit(read, page[start : start + chunk]) for start in range(0, len(page), chunk)]
    return [item for future in futures for item in future.result()]


def in_parallel(read: Callable[[T], R], items: Sequence[T], *, workers: int = WORKERS) -> list[R]:
    """``read`` every item concurrently; results in the items' order."""
    if len(items) <= 1:
        return [read(item) for item in items]
    with _pool(min(workers, len(items)), "certrotate-read") as pool:
        return list(pool.map(read, items))


#: Managed-node id prefixes that split one account's GetInventory page chain into chains read side
#: by side: EC2 ids are ``i-`` and 8 or 17 hex digits (the 17-digit ones begin with 0), hybrid
#: nodes ``mi-`` and 17 (the API's InstanceId pattern), so these prefixes cover every id.
ID_PREFIXES = (*(f"i-0{h}" for h in "0123456789abcdef"), *(f"i-{h}" for h in "123456789abcdef"), "mi-")
#: Chains per account (each filter holds a share of the prefixes; a filter takes up to 40 values).
PARTITIONS = 8
INSTANCE_ID_FILTER = "AWS:InstanceInformation.InstanceId"


class _InstancePartition:
    """An SSM client whose GetInventory calls see only the nodes whose ids begin with ``prefixes``."""

    def __init__(self, ssm: Any, prefixes: Sequence[str]) -> None:
        self._ssm = ssm
        self._filter = {"Key": INSTANCE_ID_FILTER, "Type": "BeginWith", "Values": list(prefixes)}

    def get_inventory(self, **request: Any) -> Any:
        return self._ssm.get_inventory(**{**request, "Filters": [*request.get("Filters", []), self._filter]})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ssm, name)


def partitioned_fleet(
    read: Callable[[Any], tuple[list[Any], list[str]]], ssm: Any, *, partitions: int = PARTITIONS
) -> tuple[list[Any], list[str]]:
    """``read`` (one account's GetInventory chain) over ``partitions`` id ranges concurrently.

    The records come back in instance-id order, as one chain returns them.
    """
    groups = [ID_PREFIXES[i::partitions] for i in range(partitions)]
    results = in_parallel(lambda prefixes: read(_InstancePartition(ssm, prefixes)), groups)
    reports = sorted((r for found, _ in results for r in found), key=lambda r: str(r.instance_id))
    return reports, [p for _, problems in results for p in problems]


#: The characters a secret name may hold (AWS Secrets Manager API reference, CreateSecret ``Name``:
#: "ASCII letters, numbers, and the following characters: /_+=.@-"). Every name that extends a
#: prefix extends it by one of these, so the children of a prefix cover what it covers, once.
NAME_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/_+=.@-"
#: The alphabet by kind of character: the prefixes a split has not seen are grouped within a kind,
#: so a group that turns out to hold many names (``team-01`` … ``team-99``) is one of digits, whose
#: prefixes its own split then finds populated, not one mixing ``y``, ``z`` and digits.
NAME_CLASSES = (NAME_ALPHABET[:26], NAME_ALPHABET[26:52], NAME_ALPHABET[52:62], NAME_ALPHABET[62:])
#: ListSecrets ``Filter.Values`` holds at most 10 values, each at most 512 characters (API reference, Filter).
FILTER_VALUES = 10
FILTER_VALUE_LENGTH = 512
#: ListSecrets chains read side by side at most; a chain past its first page is split only below this.
LISTING_CHAINS = 16

Page = tuple[list[dict[str, Any]], str | None]


def split_prefixes(values: tuple[str, ...], names: Sequence[str]) -> list[tuple[str, ...]]:
    """The chains (their ``name`` filter values) that a chain listing ``values`` splits into, given
    the names its first page showed: together they cover what ``values`` covers, each name once
    (the secret named exactly a single prefix ``p`` aside: :func:`split_listing` describes it).
    """
    if len(values) > 1:
        if not any(n.startswith(v) for n in names for v in values):
            # an empty first page that says there is more: halve the group
            half = len(values) // 2
            return [values[:half], values[half:]]
        # one chain per prefix: a group that holds more than a page after a split is where the
        # names are (peeling off one shown prefix at a time left the rest one long chain)
        return [(v,) for v in values]
    (parent,) = values
    nexts = {n[len(parent)] for n in names if n.startswith(parent) and len(n) > len(parent)}
    shown = tuple(parent + c for c in NAME_ALPHABET if c in nexts)
    groups = []
    for characters in NAME_CLASSES:  # names that share a prefix tend to go on in one class
        others = [parent + c for c in characters if c not in nexts]
        groups += [tuple(others[i : i + FILTER_VALUES]) for i in range(0, len(others), FILTER_VALUES)]
    return [(v,) for v in shown] + groups


def split_listing(
    list_page: Callable[[tuple[str, ...], str | None], Page],
    describe: Callable[[str], dict[str, Any] | None],
    prefix: str = "",
    *,
    chains: int = LISTING_CHAINS,
    workers: int = LISTING_CHAINS,
) -> Iterator[list[dict[str, Any]]]:
    """Every secret whose name starts with ``prefix``, a page at a time, listed by chains side by side.

    A ListSecrets page chain is sequential (each page needs the last one's NextToken), so one long
    chain is split into independent ones by name prefix: ``list_page(values, token)`` lists the
    secrets whose name starts with any of ``values`` (one ``name`` filter: a case-sensitive prefix
    match, its values OR-ed). A chain whose first page says there is more is split, while fewer
    than ``chains`` are open: a group of prefixes into one chain per prefix (a group still holding
    more than a page is where the names are; an empty first page halves it); one prefix ``p`` into
    ``p`` + each character its page showed next, the other ``p`` + character in groups of 10, and
    ``describe(p)`` for the secret named exactly ``p`` (no ``p`` + character matches it). The split
    chains cover what their parent covered and nothing twice; what is yielded is still de-duplicated
    by ARN. A chain that is not split reads on from its token. A small listing (one page) costs one
    call, as a single chain does.
    """
    seen: set[str] = set()

    def fresh(secrets: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        page = [s for s in secrets if str(s.get("ARN")) not in seen]
        seen.update(str(s.get("ARN")) for s in page)
        return page

    def splittable(values: tuple[str, ...]) -> bool:
        return len(values) > 1 or len(values[0]) < FILTER_VALUE_LENGTH

    with _pool(workers, "certrotate-list") as pool:
        # The calls in flight: a page of the chain listing ``values`` from ``token``, or (``exact``)
        # the DescribeSecret of the one name ``values[0]``.
        pending: dict[Future[Any], tuple[tuple[str, ...], str | None, bool]] = {}

        def start(values: tuple[str, ...], token: str | None = None) -> None:
            pending[pool.submit(list_page, values, token)] = (values, token, False)

        start((prefix,))
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                values, token, exact = pending.pop(future)
                if exact:
                    secret = future.result()
                    if secret is not None and (page := fresh([secret])):
                        yield page
                    continue
                secrets, next_token = future.result()
                chains_open = sum(1 for *_, e in pending.values() if not e)
                if next_token and token is None and chains_open + 1 < chains and splittable(values):
                    for child in split_prefixes(values, [str(s.get("Name", "")) for s in secrets]):
                        start(child)
                    if len(values) == 1 and values[0]:
                        pending[pool.submit(describe, values[0])] = (values, None, True)
                    continue
                if page := fresh(secrets):
                    yield page
                if next_token:
                    start(values, next_token)
