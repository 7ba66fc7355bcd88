"""Runs one rotation step: DescribeSecret once, the contract guard, then the step by table."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import Any

from rotation.aws import make_client
from rotation.certificate_authority import CertificateAuthorities
from rotation.guard import Verdict, check_step
from rotation.issuers import AcmIssuer, PcaIssuer, WaitBudget
from rotation.ledger import LEDGER_TABLE_ENV, Ledger
from rotation.revoker import read_fleet
from rotation.rotation_event import RotationEvent
from rotation.secrets_store import SecretStore
from rotation.spec import CertificateType, CertSpec
from rotation.steps import STEPS, Services, StepContext
from rotation.telemetry import logger


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_services(
    secrets_client: Any,
    pca_for_region: Callable[[str], Any],
    acm_for_region: Callable[[str], Any],
    *,
    ledger: Ledger | None = None,
    ssm_client: Any = None,
) -> Services:
    """Wire the adapters on the given clients (moto's in tests, boto3's in Lambda).

    Without a ledger no history is kept and nothing is revoked; without an SSM client the fleet
    view is not read and nothing is revoked either.
    """
    fleet = None if ssm_client is None else (lambda account: read_fleet(ssm_client, account))
    return Services(
        ledger=ledger,
        pca_for_region=pca_for_region,
        fleet=fleet,
        store=SecretStore(secrets_client),
        authorities=CertificateAuthorities(pca_for_region),
        issuers={
            CertificateType.PCA_ISSUED: PcaIssuer(pca_for_region),
            CertificateType.ACM_ISSUED: AcmIssuer(acm_for_region),
        },
    )


def default_services() -> Services:
    """Services on boto3 clients: Secrets Manager in the function's region, PCA/ACM in the CA's."""

    @cache
    def regional(service: str, region: str) -> Any:
        return make_client(service, region)

    table = os.environ.get(LEDGER_TABLE_ENV, "")
    return build_services(
        make_client("secretsmanager"),
        lambda region: regional("acm-pca", region),
        lambda region: regional("acm", region),
        ledger=Ledger(make_client("dynamodb"), table) if table else None,
        ssm_client=make_client("ssm") if table else None,
    )


def run_step(
    event: RotationEvent,
    services: Services,
    budget: WaitBudget,
    *,
    clock: Callable[[], datetime] = utc_now,
    observe: Callable[[CertSpec], None] = lambda spec: None,
) -> Verdict:
    """Guard the step with one DescribeSecret, then run it.

    Raises:
        CertRotateError: the guard refused the step or the step failed; nothing half-made was put.
    """
    metadata = services.store.describe(event.secret_id)
    verdict = check_step(metadata, event.token)
    if verdict is Verdict.ALREADY_CURRENT:
        logger.info("version is already AWSCURRENT; nothing to do")
        return verdict
    STEPS[event.step](StepContext(event, metadata, services, clock, budget, observe))
    return verdict
