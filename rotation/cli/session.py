"""AWS clients for the command line: --profile, --region, --endpoint-url (or AWS_ENDPOINT_URL)."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any

from rotation.errors import CertRotateError


class UsageError(CertRotateError):
    """The command cannot run as asked (bad flag value, no region, unknown secret, bad input)."""


@dataclass
class AwsContext:
    profile: str | None
    region: str | None
    endpoint_url: str | None
    _session: Any = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> AwsContext:
        return cls(args.profile, args.region, args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None)

    @property
    def session(self) -> Any:
        if self._session is None:
            import boto3

            self._session = boto3.Session(profile_name=self.profile, region_name=self.region)
        return self._session

    def has_credentials(self) -> bool:
        try:
            return self.session.get_credentials() is not None
        except Exception:
            return False

    def client(self, service: str, region: str | None = None, session: Any = None) -> Any:
        from botocore.config import Config

        chosen = region or (session or self.session).region_name
        if not chosen:
            raise UsageError("no AWS region: pass --region or set AWS_REGION")
        config = Config(
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=5,
            read_timeout=30,
            user_agent_extra="certrotate-cli",
        )
        return (session or self.session).client(
            service, region_name=chosen, endpoint_url=self.endpoint_url, config=config
        )

    def assumed(self, role_arn: str, session_name: str = "certrotate") -> Any:
        """A boto3 session with the credentials of ``role_arn`` (another account's deploy role)."""
        import boto3

        from rotation.aws import aws_call

        with aws_call("sts", "AssumeRole"):
            credentials = self.client("sts").assume_role(RoleArn=role_arn, RoleSessionName=session_name)["Credentials"]
        return boto3.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=self.session.region_name,
        )


def add_aws_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("AWS")
    group.add_argument("--region", help="AWS region (default: the profile's or AWS_REGION)")
    group.add_argument("--profile", help="named AWS profile")
    group.add_argument("--endpoint-url", help="AWS endpoint, e.g. a moto server (default: AWS_ENDPOINT_URL)")
