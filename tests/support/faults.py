"""Fault injection at botocore's HTTP layer, in front of moto.

Throttling and 5xx answers are returned *instead of* moto's (the service never saw the call); a
read timeout is raised *after* moto processed the call (the service did the work, the answer was
lost). Both are real botocore responses or exceptions, so the code under test sees exactly what
boto3 raises against AWS.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError
from moto.core.models import botocore_stubber

FAULTS = {
    "throttling": (400, "ThrottlingException", "Rate exceeded"),
    "5xx": (500, "InternalServiceError", "We encountered an internal error"),
}
KINDS = ["throttling", "5xx", "timeout"]


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def inject(client: Any, operation: str, kind: str, *, nth: int = 1) -> dict[str, int]:
    """Fail the ``nth`` call of ``operation`` on ``client`` once; returns a hit counter."""
    state = {"seen": 0, "failed": 0}
    service = client.meta.service_model.service_id.hyphenize()

    def send(event_name: str, request: Any, **kwargs: Any) -> AWSResponse | None:
        if not event_name.endswith(f".{service}.{operation}"):
            return botocore_stubber(event_name, request, **kwargs)
        state["seen"] += 1
        if state["seen"] != nth:
            return botocore_stubber(event_name, request, **kwargs)
        state["failed"] += 1
        if kind == "timeout":
            botocore_stubber(event_name, request, **kwargs)
            raise ReadTimeoutError(endpoint_url=request.url)
        status, code, message = FAULTS[kind]
        body = json.dumps({"__type": code, "message": message}).encode()
        return AWSResponse(request.url, status, {"Content-Type": "application/x-amz-json-1.1"}, _Raw(body))

    client.meta.events.unregister("before-send", botocore_stubber)
    client.meta.events.register("before-send", send, unique_id=f"fault-{service}-{operation}-{nth}")
    return state
