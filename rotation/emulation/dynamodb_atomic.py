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
from collections.abc import Iterator
from typing import Any

_LOCK = threading.RLock()


@contextlib.contextmanager
def atomic_dynamodb() -> Iterator[None]:
    """Serialise moto's DynamoDB requests for the duration (in process and in a same-process server)."""
    from moto.core.responses import BaseResponse

    original = BaseResponse.call_action

    def call_action(self: Any) -> Any:
        if str(self.service_name) != "dynamodb":
            return original(self)
        with _LOCK:
            return original(self)

    BaseResponse.call_action = call_action  # type: ignore[method-assign]
    try:
        yield
    finally:
        BaseResponse.call_action = original  # type: ignore[method-assign]
