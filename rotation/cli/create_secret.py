"""``certrotate create-secret``: the walkthrough's console steps in one command.

Builds the specification from flags, validates it (offline and against the CA), creates the
secret (KMS key, tags), and, given the rotation function, turns rotation on with its schedule —
which issues the first certificate at once.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from typing import Any

from rotation.aws import aws_call
from rotation.cli.session import AwsContext, UsageError
from rotation.cli.validate import validate

_SCHEDULE = re.compile(r"^(rate\(\d+ (hour|hours|day|days)\)|cron\(.+\))$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="secret name")
    parser.add_argument("--type", required=True, choices=["ACM_ISSUED", "PCA_ISSUED"], dest="certificate_type")
    parser.add_argument("--ca-arn", required=True)
    parser.add_argument("--common-name", required=True)
    parser.add_argument("--san", action="append", default=[], help="extra DNS name or IP (repeatable)")
    parser.add_argument("--key-algorithm", help="RSA_2048 (default), RSA_3072, RSA_4096, EC_prime256v1, ...")
    parser.add_argument("--signing-hash", choices=["sha256", "sha384", "sha512"])
    parser.add_argument("--template-arn")
    parser.add_argument("--validity", help="Private CA validity, e.g. 90 or '12 MONTHS'")
    parser.add_argument("--environment", help="free label; TEST renews on every rotation")
    parser.add_argument("--renewal-policy", choices=["ALWAYS", "WHEN_DUE"])
    parser.add_argument("--renew-before-days")
    parser.add_argument("--kms-key-id", help="KMS key for the secret (the workload roles need decrypt on it)")
    parser.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--rotation-lambda-arn", help="turn rotation on with this function")
    schedule = parser.add_mutually_exclusive_group()
    schedule.add_argument("--schedule", help="rotation schedule, e.g. 'rate(4 hours)' or 'rate(30 days)'")
    schedule.add_argument("--rotate-every-days", type=int)


def spec_from_args(args: argparse.Namespace) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "CERTIFICATE_TYPE": args.certificate_type,
        "CA_ARN": args.ca_arn,
        "COMMON_NAME": args.common_name,
    }
    optional = {
        "SUBJECT_ALTERNATIVE_NAMES": args.san or None,
        "KEY_ALGORITHM": args.key_algorithm,
        "SIGNING_HASH": args.signing_hash,
        "TEMPLATE_ARN": args.template_arn,
        "VALIDITY": args.validity,
        "ENVIRONMENT": args.environment,
        "RENEWAL_POLICY": args.renewal_policy,
        "RENEW_BEFORE_DAYS": args.renew_before_days,
    }
    fields.update({k: v for k, v in optional.items() if v})
    return fields


def parse_tags(raw: list[str]) -> list[dict[str, str]]:
    tags = []
    for item in raw:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--tag {item!r}: expected KEY=VALUE")
        tags.append({"Key": key, "Value": value})
    return tags


def create_secret(aws: AwsContext, args: argparse.Namespace, say: Callable[[str], None]) -> str:
    """Validate, create, and optionally enable rotation; returns the secret ARN."""
    fields = spec_from_args(args)
    tags = parse_tags(args.tag)
    schedule: dict[str, Any] = {}
    if args.schedule:
        if not _SCHEDULE.match(args.schedule):
            raise UsageError(f"--schedule {args.schedule!r}: expected rate(N hours|days) or cron(...)")
        schedule = {"ScheduleExpression": args.schedule}
    elif args.rotate_every_days:
        schedule = {"AutomaticallyAfterDays": args.rotate_every_days}
    if schedule and not args.rotation_lambda_arn:
        raise UsageError("a rotation schedule needs --rotation-lambda-arn")
    validate(fields, aws, say)
    sm = aws.client("secretsmanager")
    request: dict[str, Any] = {
        "Name": args.name,
        "SecretString": json.dumps(fields),
        "Description": f"certrotate {args.certificate_type} certificate for {args.common_name}",
    }
    if args.kms_key_id:
        request["KmsKeyId"] = args.kms_key_id
    if tags:
        request["Tags"] = tags
    with aws_call("secretsmanager", "CreateSecret"):
        arn = str(sm.create_secret(**request)["ARN"])
    say(f"created {arn}")
    if args.rotation_lambda_arn:
        rotation: dict[str, Any] = {
            "SecretId": arn,
            "RotationLambdaARN": args.rotation_lambda_arn,
            "RotateImmediately": True,
        }
        if schedule:
            rotation["RotationRules"] = schedule
        with aws_call("secretsmanager", "RotateSecret"):
            sm.rotate_secret(**rotation)
        say("rotation enabled; the first certificate is being issued")
    return arn
