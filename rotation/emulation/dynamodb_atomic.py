"""DynamoDB's one-item atomicity inside moto: each request's read-check-write runs alone.

DynamoDB applies a conditional ``UpdateItem`` atomically: the condition is checked and the write made
with no other write to the item in between. moto's backend reads the item, evaluates the condition
and writes it back in plain Python, so two threads of one process (the storm benchmark's containers,
the tests' concurrent rotations) can both pass a condition only one of them should. While
:func:`atomic_dynamodb` is active every DynamoDB request moto answers holds one lock, which gives
moto the service's guarantee (and more: whole requests are serialised, which costs nothing here).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from rotation.emulation.moto_dispatch import around_moto_requests

_LOCK = threading.RLock()


@contextlib.contextmanager
def atomic_dynamodb() -> Iterator[None]:
    """Serialise moto's DynamoDB requests for the duration (in process and in a same-process server)."""

    def serialised(response: Any, proceed: Callable[[], Any]) -> Any:
        if str(response.service_name) != "dynamodb":
            return proceed()
        with _LOCK:
            return proceed()

    with around_moto_requests(serialised):
        yield
