"""Private CA's error responses, as the emulation answers them."""

from __future__ import annotations

from moto.core.exceptions import JsonRESTError


class PrivateCaError(JsonRESTError):
    """An error response as Private CA sends it (400, a JSON ``__type``)."""

    code = 400

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(error_type, message)
