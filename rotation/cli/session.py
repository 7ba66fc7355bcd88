"""AWS clients for the command line (profile, region, endpoint, the bounds of every call) and its errors.

Every client the CLI makes has a connect timeout, a read timeout and one retry, so an endpoint
that accepts connections and never answers fails a call in about ``2 * read_timeout`` seconds
(20 s with the defaults, 26 s if connecting also stalls) instead of botocore's 60 s read timeout times its retries.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rotation.errors import CertRotateError

DEFAULT_CONNECT_TIMEOUT = 3.0
DEFAULT_READ_TIMEOUT = 10.0
MAX_ATTEMPTS = 2  # the first try and one retry (botocore's standard mode: throttling, 5xx, timeouts)


def utc_timestamp(value: Any) -> datetime:
    """A response's timestamp as an aware UTC datetime (botocore's parser answers in the local zone).

    The JSON protocols (Secrets Manager, DynamoDB, SSM) send epoch seconds; botocore's default parser
    builds a ``dateutil`` ``tzlocal()`` for each of them, about a second of CPU for the 50,000
    timestamps of a ``status`` over 10,000 secrets. The same instant in UTC is read directly;
    anything else (ISO 8601, RFC 822 text) goes to botocore's parser, then to UTC. Every time the
    CLI shows is converted to UTC, so what it prints is the same.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    from botocore.utils import parse_timestamp

    parsed: datetime = parse_timestamp(value)
    return parsed.astimezone(UTC)


class UsageError(CertRotateError):
    """A flag or argument has a value the command cannot use (exit 2)."""


class InvalidInputError(CertRotateError):
    """The input the command was pointed at is unusable: no such file, not a certificate secret (exit 3)."""


class ConfigurationError(CertRotateError):
    """No region or credentials to call AWS with (exit 4)."""


class ProblemsError(CertRotateError):
    """Several things went wrong (exit 1): ``problems`` lists every one, and each is printed on its own line."""

    problems: Sequence[str | CertRotateError]

    def __init__(self, problems: Sequence[str | CertRotateError]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


class InvalidSpecError(ProblemsError):
    """The specification has problems (exit 3); ``problems`` lists every one."""

    problems: Sequence[CertRotateError]

    def __init__(self, problems: Sequence[CertRotateError]) -> None:
        super().__init__(problems)


@dataclass
class AwsContext:
    profile: str | None
    region: str | None
    endpoint_url: str | None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    _session: Any = field(default=None, repr=False)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> AwsContext:
        endpoint = args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
        if endpoint is not None and args.endpoint_url is None:
            from rotation.cli.options import endpoint_url

            try:
                endpoint = endpoint_url(endpoint, source="AWS_ENDPOINT_URL")
            except argparse.ArgumentTypeError as exc:
                raise UsageError(str(exc)) from None
        return cls(args.profile, args.region, endpoint, args.connect_timeout, args.read_timeout)

    @property
    def session(self) -> Any:
        if self._session is None:
            import boto3

            self._session = boto3.Session(profile_name=self.profile, region_name=self.region)
            factory = self._session._session.get_component("response_parser_factory")
            factory.set_parser_defaults(timestamp_parser=utc_timestamp)
        return self._session

    @property
    def region_name(self) -> str:
        # botocore reads AWS_DEFAULT_REGION and the profile's region, never AWS_REGION (which Lambda,
        # CodeBuild and the other SDKs set): honour it after those, as the other SDKs do.
        chosen = self.session.region_name or os.environ.get("AWS_REGION")
        if not chosen:
            raise ConfigurationError(
                "no AWS region: pass --region, set AWS_DEFAULT_REGION, or set one in the profile (aws configure)"
            )
        return str(chosen)

    def has_credentials(self) -> bool:
        try:
            return self.session.get_credentials() is not None
        except Exception:
            return False

    def config(self) -> Any:
        from botocore.config import Config

        return Config(
            retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            user_agent_extra="certrotate-cli",
        )

    def client(self, service: str, region: str | None = None, session: Any = None) -> Any:
        chosen = region or (session.region_name if session is not None else None) or self.region_name
        return (session or self.session).client(
            service, region_name=chosen, endpoint_url=self.endpoint_url, config=self.config()
        )

    def assumed(self, role_arn: str, session_name: str = "certrotate") -> Any:
        """A boto3 session with the credentials of ``role_arn`` (another account's deploy role)."""
        import boto3

        from rotation.aws import aws_call

        with aws_call("sts", "AssumeRole"):
            credentials = self.client("sts").assume_role(RoleArn=role_arn, RoleSessionName=session_name)["Credentials"]
        assumed = boto3.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=self.region_name,
        )
        assumed._session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=utc_timestamp)
        return assumed
