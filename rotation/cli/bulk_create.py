"""``certrotate create-secret --from-file SPECS.jsonl``: many certificate secrets, validated first, created paced.

The file is JSON Lines, one secret per line (blank lines are skipped)::

    {"name": "payments/web", "spec": {"CERTIFICATE_TYPE": "PCA_ISSUED", "CA_ARN": "...", "COMMON_NAME": "web.ex"}}
    {"name": "payments/api", "spec": {...}, "tags": {"team": "payments"}, "schedule": "rate(4 hours)"}

``spec`` is the certificate specification exactly as a secret holds it (what ``certrotate validate
FILE`` reads); ``tags``, ``schedule`` / ``rotate_every_days`` and ``kms_key_id`` are optional and
override (tags: extend) the command's ``--tag``, ``--schedule`` / ``--rotate-every-days`` and
``--kms-key-id``. One line per secret gives every problem a line number, and ``jq -c`` writes it.

Every line is validated before anything is created (the offline checks of every field, then each
distinct CA once: exists, ACTIVE, key family); any problem and nothing is created, every problem
listed with its line, field, value and what is allowed (exit 3). Then the secrets are created in
the file's order. With ``--rotation-lambda-arn`` each one's rotation is turned on with
``RotateImmediately``, which issues its first certificate at once: creations then start at the
pace of their issuer's quota (ACM 5/s, Private CA 25/s, as ``rotate --all``), with a progress line,
and each schedule gets its rotation window (``Duration``) as single ``create-secret`` gives it.

Re-running the same file is safe: a name that already exists is reported ``exists`` and left as it
is (neither its value nor its rotation is touched), not failed. A secret whose rotation cannot be
turned on is deleted again, as with single ``create-secret``, and the run goes on with the others;
the failures are listed at the end (exit 1), and a re-run creates what is missing.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rotation.aws import aws_call
from rotation.cli import options
from rotation.cli.output import Output
from rotation.cli.pacing import paced
from rotation.cli.secret_creation import enable_rotation, secret_request
from rotation.cli.session import AwsContext, InvalidInputError, InvalidSpecError, ProblemsError, UsageError
from rotation.cli.validate import PolicyCheck, ca_problems, output_field_problems
from rotation.errors import AwsCallError, CertRotateError, SpecError
from rotation.issuance.spec import parse_spec, spec_problems
from rotation.lifecycle.schedules import default_window

#: The keys a line may have.
LINE_KEYS = ("name", "spec", "tags", "schedule", "rotate_every_days", "kms_key_id")
#: A bulk file holds at most this many bytes (64 KiB a secret value, thousands of secrets).
MAX_BULK_BYTES = 64 * 1024 * 1024
#: The flags that describe one secret: with --from-file each line says them.
_SINGLE_SECRET_FLAGS = {
    "name": "NAME",
    "certificate_type": "--type",
    "ca_arn": "--ca-arn",
    "common_name": "--common-name",
    "san": "--san",
    "key_algorithm": "--key-algorithm",
    "signing_hash": "--signing-hash",
    "template_arn": "--template-arn",
    "validity": "--validity",
    "environment": "--environment",
    "renewal_policy": "--renewal-policy",
    "renew_before_days": "--renew-before-days",
}


class LineProblem(CertRotateError):
    """One problem of one line of the bulk file."""

    def __init__(self, path: str, line: int, problem: CertRotateError) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        super().__init__(f"{path} line {line}: {problem}")


@dataclass(frozen=True)
class Entry:
    """One valid line: the secret to create."""

    line: int
    name: str
    fields: dict[str, Any]
    tags: dict[str, str] = field(default_factory=dict)
    schedule: dict[str, Any] = field(default_factory=dict)
    kms_key_id: str = ""

    @property
    def certificate_type(self) -> str:
        return str(self.fields.get("CERTIFICATE_TYPE", ""))


def single_secret_flags_given(args: argparse.Namespace) -> list[str]:
    """The per-secret flags given on the command line (refused with --from-file)."""
    return [flag for dest, flag in _SINGLE_SECRET_FLAGS.items() if getattr(args, dest, None)]


def run(aws: AwsContext, args: argparse.Namespace, out: Output, command_schedule: dict[str, Any]) -> int:
    given = single_secret_flags_given(args)
    if given:
        raise UsageError(f"--from-file: each line names its secret and specification; drop {', '.join(given)}")
    path = str(args.from_file)
    command_tags = dict(args.tag)
    entries = load_entries(
        path,
        command_tags=command_tags,
        command_schedule=command_schedule,
        kms_key_id=args.kms_key_id or "",
        rotation_function=args.rotation_lambda_arn or "",
    )
    check_cas(path, entries, aws, PolicyCheck(aws, "", args.policy_parameter, from_secret=False))
    if not entries:
        out.note(f"{path}: no secrets in the file; nothing to create")
    if args.dry_run:
        results = [_result(e, args.rotation_lambda_arn, "would-create") for e in entries]
        _report(results, out)
        return 0
    sm = aws.client("secretsmanager")

    def create(entry: Entry) -> dict[str, Any]:
        return create_one(sm, entry, args.rotation_lambda_arn or "")

    if args.rotation_lambda_arn:  # RotateImmediately issues: start at the issuers' quotas
        results = paced(entries, create, lambda e: e.certificate_type, out, noun="secrets", verb="created")
    else:
        results = _unpaced(entries, create, out)
    _report(results, out)
    failed = [r for r in results if r["status"] == "failed"]
    if failed:
        raise ProblemsError(  # some secrets could not be created (the others were)
            [f"line {r['line']} {r['name']}: {r['error']}" for r in failed]
        )
    return 0


def _unpaced(entries: Sequence[Entry], create: Callable[[Entry], dict[str, Any]], out: Output) -> list[dict[str, Any]]:
    results = []
    with out.progress() as progress:
        for number, entry in enumerate(entries, 1):
            results.append(create(entry))
            progress.update(f"created {number}/{len(entries)} secrets")
    return results


def create_one(sm: Any, entry: Entry, rotation_function: str) -> dict[str, Any]:
    """CreateSecret (and rotation on); an existing name is ``exists``, left as it is."""
    request = secret_request(
        entry.name, entry.fields, [{"Key": k, "Value": v} for k, v in entry.tags.items()], entry.kms_key_id
    )
    result = _result(entry, rotation_function, "created")
    try:
        with aws_call("secretsmanager", "CreateSecret"):
            result["arn"] = str(sm.create_secret(**request)["ARN"])
    except AwsCallError as exc:
        if exc.code == "ResourceExistsException":
            return {**result, "status": "exists"}
        return {**result, "status": "failed", "error": str(exc)}
    if rotation_function:
        try:
            enable_rotation(sm, result["arn"], rotation_function, entry.schedule)
        except CertRotateError as exc:
            return {**result, "arn": "", "status": "failed", "error": str(exc)}
    return result


def _result(entry: Entry, rotation_function: str | None, status: str) -> dict[str, Any]:
    return {
        "line": entry.line,
        "name": entry.name,
        "arn": "",
        "status": status,
        "certificate_type": entry.certificate_type,
        "rotation_function": rotation_function or "",
        "schedule": entry.schedule,
    }


def _report(results: list[dict[str, Any]], out: Output) -> None:
    counts = {s: sum(1 for r in results if r["status"] == s) for s in ("created", "exists", "failed", "would-create")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "nothing to create"
    if out.json_mode:
        out.emit_json(results)
        out.note(summary)
        return
    for r in results:
        if r["status"] == "created":
            rotation = "; rotation on, first certificate being issued" if r["rotation_function"] else ""
            out.say(f"created {r['arn']}{rotation}")
        elif r["status"] == "exists":
            out.say(f"exists {r['name']} (left as it is)")
        elif r["status"] == "would-create":
            out.say(f"would create {r['name']} ({r['certificate_type']})")
    out.note(summary)


# -- validation ---------------------------------------------------------------------------------


def load_entries(
    path: str,
    *,
    command_tags: Mapping[str, str],
    command_schedule: dict[str, Any],
    kms_key_id: str,
    rotation_function: str,
) -> list[Entry]:
    """Every line of the file, validated offline; all problems at once.

    Raises:
        InvalidInputError: the file cannot be read, is too large or not UTF-8.
        InvalidSpecError: one or more lines have problems (each a :class:`LineProblem`).
    """
    text = _read(path)
    entries: list[Entry] = []
    problems: list[CertRotateError] = []
    first_line: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        line_problems: list[CertRotateError] = []
        entry = _entry(number, raw, line_problems, command_tags, command_schedule, kms_key_id, rotation_function)
        if entry is not None:
            if entry.name in first_line:
                line_problems.append(
                    SpecError("name", entry.name, f"also on line {first_line[entry.name]}", "each name once per file")
                )
            else:
                first_line[entry.name] = number
        problems += [LineProblem(path, number, p) for p in line_problems]
        if entry is not None and not line_problems:
            entries.append(entry)
    if problems:
        raise InvalidSpecError(problems)
    return entries


def _read(path: str) -> str:
    file = Path(path)
    if not file.is_file():
        raise InvalidInputError(f"{path}: {'not a regular file' if file.exists() else 'no such file'}")
    with file.open("rb") as stream:
        data = stream.read(MAX_BULK_BYTES + 1)
    if len(data) > MAX_BULK_BYTES:
        raise InvalidInputError(f"{path}: larger than {MAX_BULK_BYTES} bytes; split it into several files")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "a bulk file is UTF-8 JSON Lines"
        ) from None


def _entry(
    number: int,
    raw: str,
    problems: list[CertRotateError],
    command_tags: Mapping[str, str],
    command_schedule: dict[str, Any],
    kms_key_id: str,
    rotation_function: str,
) -> Entry | None:
    try:
        line = json.loads(raw)
    except json.JSONDecodeError as exc:
        problems.append(CertRotateError(f"not valid JSON at column {exc.colno} ({exc.msg}): one JSON object a line"))
        return None
    if not isinstance(line, dict):
        problems.append(CertRotateError(f"a JSON {type(line).__name__}, not an object: one JSON object a line"))
        return None
    for key in line:
        if key not in LINE_KEYS:
            problems.append(SpecError("key", key, "not a key of a bulk line", LINE_KEYS))
    name = line.get("name")
    try:
        options.secret_name(name if isinstance(name, str) else "")
    except argparse.ArgumentTypeError:
        problems.append(
            SpecError("name", name, "not a secret name", "1 to 512 ASCII letters, digits and /_+=.@- (no spaces)")
        )
    spec = line.get("spec")
    if not isinstance(spec, dict):
        problems.append(
            SpecError("spec", spec, "not an object of certificate fields", "a JSON object, as `certrotate validate`")
        )
        spec = {}
    else:
        problems += [SpecError(f"spec.{p.field}", p.value, p.problem, p.allowed) for p in spec_problems(spec)]
        problems += output_field_problems(spec, prefix="spec.")
    tags = _tags(line.get("tags", {}), problems)
    schedule = _line_schedule(line, problems, command_schedule, rotation_function)
    kms = line.get("kms_key_id", kms_key_id)
    if not isinstance(kms, str):
        problems.append(SpecError("kms_key_id", kms, "not a string", "a KMS key id, ARN or alias"))
        kms = ""
    if problems:
        return Entry(number, str(name), {}) if isinstance(name, str) else None
    return Entry(number, str(name), spec, {**command_tags, **tags}, schedule, kms)


def _tags(value: Any, problems: list[CertRotateError]) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        problems.append(SpecError("tags", value, "not an object of string tags", '{"KEY": "VALUE", ...}'))
        return {}
    bad = [k for k, v in value.items() if not 1 <= len(k) <= 128 or len(v) > 256]
    if bad:
        problems.append(SpecError("tags", bad[0], "a tag key is 1-128 characters, a value at most 256", None))
    return dict(value)


def _line_schedule(
    line: Mapping[str, Any], problems: list[CertRotateError], command_schedule: dict[str, Any], rotation_function: str
) -> dict[str, Any]:
    if "schedule" in line and "rotate_every_days" in line:
        problems.append(SpecError("schedule", line["schedule"], "given with rotate_every_days", "one of the two"))
        return {}
    schedule = command_schedule
    if "schedule" in line:
        value = line["schedule"]
        try:
            schedule = {"ScheduleExpression": options.schedule(value), **default_window(value)}
        except (argparse.ArgumentTypeError, TypeError):
            problems.append(
                SpecError(
                    "schedule",
                    value,
                    "not a rotation schedule",
                    "rate(N hours) with N >= 4, rate(N days) with N <= 1000, or cron(MIN HOUR DAY MONTH WEEKDAY YEAR)",
                )
            )
            return {}
    elif "rotate_every_days" in line:
        days = line["rotate_every_days"]
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 1000:
            problems.append(SpecError("rotate_every_days", days, "not a whole number of days", "1 to 1000"))
            return {}
        schedule = {"AutomaticallyAfterDays": days}
    if schedule and not rotation_function and ("schedule" in line or "rotate_every_days" in line):
        problems.append(
            SpecError(
                "schedule",
                line.get("schedule", line.get("rotate_every_days")),
                "a rotation schedule needs --rotation-lambda-arn",
                None,
            )
        )
    return schedule


def check_cas(path: str, entries: Sequence[Entry], aws: AwsContext, policy: PolicyCheck | None = None) -> None:
    """Each distinct CA (and signing choice) checked once against AWS Private CA; with ``policy``, each
    line against the stored issuance policy rule of its name (every violation).

    Raises:
        InvalidSpecError: a line's CA is missing, not ACTIVE or of the wrong key family; a line outside its rule.
    """
    seen: dict[str, list[CertRotateError]] = {}
    problems: list[CertRotateError] = []
    for entry in entries:
        spec = parse_spec(entry.fields)
        key = json.dumps(
            [
                spec.ca_arn,
                spec.certificate_type.value,
                spec.key_algorithm.value,
                spec.signing_hash.value,
                entry.fields.get("SIGNING_ALGORITHM"),
            ]
        )
        if key not in seen:
            seen[key] = ca_problems(spec, aws)
        problems += [LineProblem(path, entry.line, p) for p in seen[key]]
        if policy is not None:  # the rule of the line's name, as create-secret NAME checks it
            problems += [
                LineProblem(path, entry.line, p) for p in policy.named(entry.name).problems(spec, entry.fields)
            ]
    if problems:
        raise InvalidSpecError(problems)
