"""One hook on moto's request dispatch: the wrappers the emulation puts around every request moto answers.

moto answers every request, whatever the service, through one method: ``BaseResponse._dispatch``
calls ``BaseResponse.call_action``, which authorizes the request, finds the operation's method and
serializes what it returns (moto 5, ``moto/core/responses.py``). A ``ThreadedMotoServer`` of the
same process dispatches through it as ``mock_aws`` does. Throttling (:mod:`.throttling`), the
latency of a network round trip and DynamoDB's one-item atomicity (:mod:`.dynamodb_atomic`) are
each a wrapper around that call; this module owns the one patch that runs them, so they combine in
any order and leave moto as it was however their contexts end.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

#: ``wrapper(response, proceed)``: answer the request held by moto's ``response`` object, calling
#: ``proceed()`` to go on to the next wrapper and finally moto's own ``call_action``.
Wrapper = Callable[[Any, Callable[[], Any]], Any]

_LOCK = threading.Lock()
_WRAPPERS: list[Wrapper] = []  # the last one entered first: it wraps those entered before it
_ORIGINAL: list[Any] = []  # moto's call_action while the patch is in place


@contextlib.contextmanager
def around_moto_requests(wrapper: Wrapper) -> Iterator[None]:
    """Run ``wrapper`` around every request moto answers for the duration (contexts may end in any order)."""
    from moto.core.responses import BaseResponse

    with _LOCK:
        if not _WRAPPERS:
            _ORIGINAL.append(BaseResponse.call_action)
            BaseResponse.call_action = _call_action  # type: ignore[method-assign,assignment]
        _WRAPPERS.insert(0, wrapper)
    try:
        yield
    finally:
        with _LOCK:
            del _WRAPPERS[next(i for i, w in enumerate(_WRAPPERS) if w is wrapper)]
            if not _WRAPPERS:
                BaseResponse.call_action = _ORIGINAL.pop()  # type: ignore[method-assign]


def _call_action(response: Any) -> Any:
    wrappers = tuple(_WRAPPERS)
    original = _ORIGINAL[0]

    def proceed(depth: int) -> Any:
        if depth == len(wrappers):
            return original(response)
        return wrappers[depth](response, lambda: proceed(depth + 1))

    return proceed(0)
