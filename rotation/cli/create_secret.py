"""``certrotate create-secret``: the walkthrough's console steps in one command.

Builds the specification from flags, validates it (offline, against the CA, and against the stored
issuance policy rule that will govern the name, every violation listed: nothing is created then), creates the
secret (KMS key, tags), and, given the rotation function, turns rotation on with its schedule —
which issues the first certificate at once. Either all of it happens or nothing is left behind:
a secret whose rotation cannot be turned on is deleted again (without a recovery window).

``--from-file SPECS.jsonl`` creates many, validated first and paced (:mod:`rotation.cli.bulk_create`).
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

from rotation.aws import aws_call
from rotation.cli import bulk_create, options
from rotation.cli.output import Output
from rotation.cli.secret_creation import enable_rotation, secret_request
from rotation.cli.session import AwsContext, UsageError
from rotation.cli.validate import PolicyCheck, add_policy_parameter, validate
from rotation.lifecycle.schedules import default_window

_SCHEDULE = re.compile(r"^(rate\(\d+ (hour|hours|day|days)\)|cron\(.+\))$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", type=options.secret_name, help="secret name (not with --from-file)")
    parser.add_argument(
        "--from-file",
        metavar="SPECS.jsonl",
        help='many secrets: JSON Lines, one {"name": ..., "spec": {...}} a line; all validated, then created '
        "paced at the issuers' quotas; existing names are left as they are",
    )
    parser.add_argument("--type", choices=["ACM_ISSUED", "PCA_ISSUED"], dest="certificate_type", help="(required)")
    parser.add_argument("--ca-arn", help="(required)")
    parser.add_argument("--common-name", help="(required)")
    parser.add_argument(
        "--san",
        type=options.comma_list,
        action="extend",
        default=[],
        help="extra DNS names or IPs: a,b or repeated --san",
    )
    parser.add_argument("--key-algorithm", help="RSA_2048 (default), RSA_3072, RSA_4096, EC_prime256v1, ...")
    parser.add_argument("--signing-hash", choices=["sha256", "sha384", "sha512"])
    parser.add_argument("--template-arn")
    parser.add_argument("--validity", help="Private CA validity, e.g. 90 or '12 MONTHS'")
    parser.add_argument("--environment", help="free label; TEST renews on every rotation")
    parser.add_argument("--renewal-policy", choices=["ALWAYS", "WHEN_DUE"])
    parser.add_argument("--renew-before-days")
    parser.add_argument("--kms-key-id", help="KMS key for the secret (the workload roles need decrypt on it)")
    parser.add_argument("--tag", type=options.tag, action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--rotation-lambda-arn", help="turn rotation on with this function")
    schedule = parser.add_mutually_exclusive_group()
    schedule.add_argument(
        "--schedule", type=options.schedule, help="rotation schedule, e.g. 'rate(4 hours)' or 'rate(30 days)'"
    )
    schedule.add_argument(
        "--rotate-every-days", type=options.positive_number("--rotate-every-days", unit="days", maximum=1000)
    )
    parser.add_argument("--dry-run", action="store_true", help="validate and say what would be created; change nothing")
    add_policy_parameter(parser)


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


def _schedule(args: argparse.Namespace) -> dict[str, Any]:
    schedule: dict[str, Any] = {}
    if args.schedule:
        if not _SCHEDULE.match(args.schedule):
            raise UsageError(f"--schedule {args.schedule!r}: expected rate(N hours|days) or cron(...)")
        schedule = {"ScheduleExpression": args.schedule, **default_window(args.schedule)}
    elif args.rotate_every_days:
        if args.rotate_every_days != int(args.rotate_every_days):
            raise UsageError(f"--rotate-every-days {args.rotate_every_days:g}: expected whole days")
        schedule = {"AutomaticallyAfterDays": int(args.rotate_every_days)}
    if schedule and not args.rotation_lambda_arn:
        raise UsageError("a rotation schedule needs --rotation-lambda-arn")
    return schedule


def run(aws: AwsContext, args: argparse.Namespace, out: Output) -> int:
    schedule = _schedule(args)
    if args.from_file:
        return bulk_create.run(aws, args, out, schedule)
    missing = [
        flag
        for flag, value in (
            ("NAME", args.name),
            ("--type", args.certificate_type),
            ("--ca-arn", args.ca_arn),
            ("--common-name", args.common_name),
        )
        if not value
    ]
    if missing:
        raise UsageError(f"the following arguments are required: {', '.join(missing)} (or --from-file SPECS.jsonl)")
    fields = spec_from_args(args)
    tags = [{"Key": key, "Value": value} for key, value in args.tag]
    policy = PolicyCheck(aws, args.name, args.policy_parameter, from_secret=False)
    summary = validate(fields, aws, out.say, policy=policy)
    out.say(policy.verdict)
    request = secret_request(args.name, fields, tags, args.kms_key_id or "")
    result: dict[str, Any] = {
        "name": args.name,
        "arn": "",
        "specification": fields,
        "rotation_function": args.rotation_lambda_arn or "",
        "schedule": schedule,
        "dry_run": bool(args.dry_run),
        "summary": summary,
    }
    if args.dry_run:
        _report(result, out, f"would create {args.name}: {json.dumps(fields)}")
        return 0
    sm = aws.client("secretsmanager")
    with aws_call("secretsmanager", "CreateSecret"):
        arn = str(sm.create_secret(**request)["ARN"])
    result["arn"] = arn
    if args.rotation_lambda_arn:
        enable_rotation(sm, arn, args.rotation_lambda_arn, schedule)
    _report(result, out, f"created {arn}")
    return 0


def _report(result: dict[str, Any], out: Output, line: str) -> None:
    if out.json_mode:
        out.emit_json(result)
        return
    out.say(line)
    if result["rotation_function"]:
        verb = "would turn" if result["dry_run"] else "turned"
        out.say(f"{verb} rotation on with {result['rotation_function']}; the first certificate is issued at once")
