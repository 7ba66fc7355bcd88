"""AWS plumbing shared by the adapters: client construction and error translation.

boto3 is imported lazily so importing the Lambda handler stays cheap.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rotation.errors import AwsCallError
from rotation.redaction import redact, shorten

__all__ = ["aws_call", "client_config", "error_code", "make_client", "redact"]

if TYPE_CHECKING:  # pragma: no cover
    from botocore.config import Config


def client_config(attempts: int | None = None) -> Config:
    """Retries in standard mode and timeouts that fit inside a rotation step.

    ``attempts``: the total attempts a call gets (1: botocore retries nothing); by default
    botocore's ``max_attempts`` of ``CERTROTATE_AWS_MAX_ATTEMPTS`` (4).
    """
    from botocore.config import Config

    retries: dict[str, Any] = {"mode": "standard"}
    if attempts is None:
        retries["max_attempts"] = int(os.environ.get("CERTROTATE_AWS_MAX_ATTEMPTS", "4"))
    else:
        retries["total_max_attempts"] = attempts
    return Config(
        retries=retries,  # type: ignore[arg-type]
        connect_timeout=5,
        read_timeout=20,
        user_agent_extra="certrotate",
    )


_session: Any = None


def make_client(service: str, region: str | None = None, *, attempts: int | None = None) -> Any:
    """A client for ``service`` in ``region`` (default: the environment's region).

    Made from a botocore session, not boto3's: a boto3 client *is* a botocore client (boto3 adds
    only resources and S3/DynamoDB helpers, which the rotation does not use), and importing boto3
    also imports s3transfer, about 50 ms of a cold start. Credentials, region and
    ``AWS_ENDPOINT_URL`` come from the environment exactly as with boto3.
    """
    global _session
    if _session is None:
        import botocore.session

        _session = botocore.session.get_session()
    return _session.create_client(service, region_name=region, config=client_config(attempts))


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError, else the exception's class name."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(exc).__name__


@contextlib.contextmanager
def aws_call(service: str, operation: str) -> Iterator[None]:
    """Turn botocore failures of one call into :class:`AwsCallError` (``raise … from``).

    Raises:
        AwsCallError: the call failed, after botocore's own retries.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        message = shorten(redact(str(exc.response.get("Error", {}).get("Message", ""))), 1000)
        raise AwsCallError(service, operation, error_code(exc), message) from exc
    except BotoCoreError as exc:
        raise AwsCallError(service, operation, type(exc).__name__, shorten(redact(str(exc)), 1000)) from exc
