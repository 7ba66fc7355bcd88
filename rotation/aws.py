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
        _session.register_component("data_loader", _loader(_session.get_config_variable("data_path")))
    return _session.create_client(service, region_name=region, config=client_config(attempts))


def _loader(data_path: str | None) -> Any:
    """botocore's data loader (the search paths of ``botocore.loaders.create_loader``) that checks a
    model exists by looking at the one service asked for.

    botocore's ``load_service_model`` first lists every service that has a model of the type (about
    450 directories read, once per model type: about 13 ms of CPU each, twice for a first client)
    only to check that the one asked for is among them. Here, while a model is being loaded, the
    listing is that service alone if it has such a model; otherwise (and for any other caller) it
    is botocore's full listing, so an unknown service fails exactly as before.
    """
    import threading

    from botocore.exceptions import DataNotFoundError
    from botocore.loaders import Loader

    class OneServiceLoader(Loader):
        asking = threading.local()

        def load_service_model(self, service_name: str, type_name: str, api_version: str | None = None) -> Any:
            self.asking.service = service_name
            try:
                return super().load_service_model(service_name, type_name, api_version)
            finally:
                self.asking.service = None

        def list_available_services(self, type_name: str) -> list[str]:
            asked = getattr(self.asking, "service", None)
            if isinstance(asked, str) and _plain_name(asked):
                try:
                    if self.list_api_versions(asked, type_name):
                        return [asked]
                except DataNotFoundError:
                    pass
            listed: list[str] = super().list_available_services(type_name)
            return listed

    paths = [os.path.expanduser(os.path.expandvars(p)) for p in data_path.split(os.pathsep)] if data_path else []
    return OneServiceLoader(extra_search_paths=paths)


def _plain_name(service: str) -> bool:
    """A directory name botocore's listing could return (no path separators, not ``.``/``..``)."""
    return bool(service) and service not in (".", "..") and "/" not in service and os.sep not in service


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
