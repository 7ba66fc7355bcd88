"""Secrets Manager's side of a rotation, for moto: stage AWSPENDING, then call the four steps.

moto's RotateSecret without a Lambda completes the rotation by itself (and cannot invoke ours),
so :func:`stage_pending` attaches AWSPENDING to a new, value-less version on moto's backend, as
Secrets Manager does before it calls createSecret; :func:`run_steps` then calls the real
``rotation.handler.lambda_handler`` with the events Secrets Manager sends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.secretsmanager.models import secretsmanager_backends

from rotation.emulation.moto_patch import replaced

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
LAMBDA_ARN = "arn:aws:lambda:us-east-1:123456789012:function:certrotate-rotation"


@dataclass
class LocalLambdaContext:
    """The parts of a Lambda context the handler and Powertools read."""

    function_name: str = "certrotate-rotation"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = LAMBDA_ARN
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    remaining_ms: int = 300_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def rotation_event(step: str, secret_id: str, token: str) -> dict[str, Any]:
    return {"Step": step, "SecretId": secret_id, "ClientRequestToken": token}


def stage_pending(secret_id: str, token: str | None = None, region: str = "us-east-1") -> str:
    """Attach AWSPENDING to a new, value-less version ``token`` and mark rotation enabled."""
    token = token or str(uuid.uuid4())
    secret = secretsmanager_backends[DEFAULT_ACCOUNT_ID][region].secrets[secret_id]
    secret.remove_version_stages_from_old_versions(["AWSPENDING"])
    secret.versions[token] = {"createdate": int(time.time()), "version_id": token, "version_stages": ["AWSPENDING"]}
    secret.rotation_requested = True
    secret.rotation_enabled = True
    secret.rotation_lambda_arn = secret.rotation_lambda_arn or LAMBDA_ARN
    return token


def run_steps(secret_id: str, token: str, steps: Iterable[str] = STEPS) -> None:
    """Invoke the rotation Lambda for each step, as Secrets Manager does (stops at the first failure)."""
    from rotation.handler import lambda_handler

    for step in steps:
        lambda_handler(rotation_event(step, secret_id, token), LocalLambdaContext())


def rotate(secret_id: str, token: str | None = None) -> str:
    """One full rotation; returns the token, the new AWSCURRENT version id."""
    token = stage_pending(secret_id, token)
    run_steps(secret_id, token)
    return token


EMULATED_LEDGER_TABLE = "certrotate-ledger"


@contextlib.contextmanager
def issuance_ledger(region: str | None = None) -> Iterator[str]:
    """The issuance ledger as the central stack creates it, in moto, named by the function's variable.

    ACM_ISSUED rotations need it (ownership of ACM certificates is proved by the ledger). Reuses
    the table the caller's environment already names; otherwise creates one and unsets the
    variable again on exit.
    """
    import boto3

    from rotation.fleet.ledger import LEDGER_TABLE_ENV, create_table

    named = os.environ.get(LEDGER_TABLE_ENV)
    table = named or EMULATED_LEDGER_TABLE
    client = boto3.client("dynamodb", region_name=region or os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    if table not in client.list_tables().get("TableNames", []):
        create_table(client, table)
    os.environ[LEDGER_TABLE_ENV] = table
    try:
        yield table
    finally:
        if named is None:
            os.environ.pop(LEDGER_TABLE_ENV, None)


class _LambdaLogShipper(logging.Handler):
    """What Lambda does with a function's log output: each line into ``/aws/lambda/NAME`` in CloudWatch Logs.

    moto runs no Lambda, so the rotation runs in a thread of moto's process; this handler takes the
    Powertools log records of that thread only, formatted exactly as the function writes them, and
    puts them into moto's CloudWatch Logs, where ``certrotate rotate --wait`` reads them.
    """

    def __init__(self, function_arn: str, token: str, region: str) -> None:
        super().__init__(logging.DEBUG)
        from moto.logs.exceptions import ResourceAlreadyExistsException
        from moto.logs.models import logs_backends

        self._thread = threading.current_thread().name
        self._backend = logs_backends[DEFAULT_ACCOUNT_ID][region]
        self._group = f"/aws/lambda/{function_arn.split(':')[6]}"
        self._stream = time.strftime("%Y/%m/%d/[$LATEST]") + token.replace("-", "")
        with contextlib.suppress(ResourceAlreadyExistsException):
            self._backend.create_log_group(self._group, {})
        with contextlib.suppress(ResourceAlreadyExistsException):
            self._backend.create_log_stream(self._group, self._stream)
        powertools = logging.getLogger("certrotate")
        self.setFormatter(next((h.formatter for h in powertools.handlers if h.formatter), logging.Formatter()))

    def emit(self, record: logging.LogRecord) -> None:
        if threading.current_thread().name != self._thread:
            return
        event = {"timestamp": int(record.created * 1000), "message": self.format(record)}
        self._backend.put_log_events(self._group, self._stream, [event])


@contextlib.contextmanager
def rotation_function_in_moto() -> Iterator[list[BaseException]]:
    """Make moto's RotateSecret invoke certrotate's rotation function, as Secrets Manager does.

    moto can only invoke Lambdas it runs in Docker; this replaces its RotateSecret with what the
    service does: record the rotation configuration, stage AWSPENDING on a new version (the
    ClientRequestToken), answer at once, and run the four steps in the background. Step failures
    are collected in the yielded list (Secrets Manager would log them and retry), and the function's
    log lines land in moto's CloudWatch Logs group ``/aws/lambda/NAME``, as Lambda ships them.

    It also makes moto track AWSCURRENT when UpdateSecretVersionStage moves it: moto otherwise keeps
    serving the old version to calls without a stage (BatchGetSecretValue, which ``status`` uses).

    DescribeSecret answers the rotation rules as given (moto keeps ``AutomaticallyAfterDays`` only and
    drops ``ScheduleExpression`` and ``Duration``) and a ``NextRotationDate``: the API's
    DescribeSecret response carries ``RotationRules`` with all three members and ``NextRotationDate``
    (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_DescribeSecret.html). The
    date here is the end of one period from now (``rate(N days|hours)`` or ``AutomaticallyAfterDays``);
    AWS picks a moment inside the window that starts then. A ``cron(...)`` schedule gets none.
    """
    from moto.secretsmanager.models import SecretsManagerBackend

    original = SecretsManagerBackend.rotate_secret
    original_move = SecretsManagerBackend.update_secret_version_stage

    def update_secret_version_stage(
        self: Any, secret_id: str, version_stage: str, remove_from_version_id: str, move_to_version_id: str
    ) -> Any:
        result = original_move(self, secret_id, version_stage, remove_from_version_id, move_to_version_id)
        if version_stage == "AWSCURRENT" and move_to_version_id:
            self.secrets[secret_id].default_version_id = move_to_version_id
        return result

    failures: list[BaseException] = []
    threads: list[threading.Thread] = []
    ledger = issuance_ledger()
    ledger.__enter__()

    def rotate_secret(
        self: Any,
        secret_id: str,
        client_request_token: str | None = None,
        rotation_lambda_arn: str | None = None,
        rotation_rules: dict[str, Any] | None = None,
        rotate_immediately: bool = True,
    ) -> str:
        if not self._is_valid_identifier(secret_id):
            return original(self, secret_id)  # moto's own ResourceNotFoundException
        secret = self.secrets[secret_id]
        secret.rotation_lambda_arn = rotation_lambda_arn or secret.rotation_lambda_arn or LAMBDA_ARN
        _record_rules(secret, rotation_rules)
        token = stage_pending(secret.arn, client_request_token, region=self.region_name)
        steps = STEPS if rotate_immediately else ("testSecret",)

        region = self.region_name

        def run() -> None:
            shipper = _LambdaLogShipper(secret.rotation_lambda_arn, token, region)
            logging.getLogger("certrotate").addHandler(shipper)
            try:
                run_steps(secret.arn, token, steps)
                secret.last_rotation_date = int(time.time())
            except BaseException as exc:
                failures.append(exc)
            finally:
                logging.getLogger("certrotate").removeHandler(shipper)

        thread = threading.Thread(target=run, name=f"rotation-{token}", daemon=True)
        threads.append(thread)
        thread.start()
        return str(secret.to_short_dict(version_id=token))

    try:
        with (
            replaced(
                SecretsManagerBackend,
                rotate_secret=rotate_secret,
                update_secret_version_stage=update_secret_version_stage,
            ),
            _rules_described(),
        ):
            try:
                yield failures
            finally:
                for thread in threads:
                    thread.join(timeout=60)
    finally:
        ledger.__exit__(None, None, None)


def _record_rules(secret: Any, rotation_rules: dict[str, Any] | None) -> None:
    """RotateSecret's rules on moto's secret, all of them, and the next rotation one period from now."""
    if rotation_rules:
        secret.auto_rotate_after_days = rotation_rules.get("AutomaticallyAfterDays", 0)
        secret.certrotate_rotation_rules = dict(rotation_rules)
        secret.rotation_requested = True
        secret.rotation_enabled = True
    period = _period(getattr(secret, "certrotate_rotation_rules", None) or {})
    if period:
        secret.next_rotation_date = int(time.time() + period)


@contextlib.contextmanager
def _rules_described() -> Iterator[None]:
    """DescribeSecret and ListSecrets answer the rules RotateSecret was given, not moto's days alone."""
    from moto.secretsmanager.models import FakeSecret

    original_to_dict = FakeSecret.to_dict

    def to_dict(self: Any) -> dict[str, Any]:
        result: dict[str, Any] = original_to_dict(self)
        rules = getattr(self, "certrotate_rotation_rules", None)
        if rules and "RotationRules" in result:
            result["RotationRules"] = dict(rules)
        return result

    with replaced(FakeSecret, to_dict=to_dict):
        yield


_RATE = re.compile(r"^rate\((\d+) (hour|hours|day|days)\)$")


def _period(rules: dict[str, Any]) -> float:
    """Seconds between rotations of ``rules`` (0: unknown, a cron schedule)."""
    match = _RATE.match(str(rules.get("ScheduleExpression") or ""))
    if match:
        return int(match.group(1)) * (3600 if match.group(2).startswith("hour") else 86400)
    days = rules.get("AutomaticallyAfterDays")
    return float(days) * 86400 if isinstance(days, int) and days > 0 else 0.0
