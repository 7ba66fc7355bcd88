"""Runs one rotation step: DescribeSecret once, the contract guard, then the step by table."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from rotation.aws import aws_call, client_config, make_client
from rotation.issuance.certificate_authority import CertificateAuthorities
from rotation.issuance.issuers import Issuer, PcaIssuer, WaitBudget
from rotation.issuance.policy import IssuancePolicy
from rotation.issuance.policy_store import DEFAULT_TTL_SECONDS, POLICY_PARAMETER_ENV, PolicySource, stack_cas_from_env
from rotation.issuance.spec import CertificateType, CertSpec
from rotation.lifecycle.guard import Verdict, check_step
from rotation.lifecycle.rotation_event import RotationEvent, Step
from rotation.lifecycle.secrets_store import SecretStore
from rotation.lifecycle.steps import STEPS, Services, StepContext
from rotation.telemetry import logger

if TYPE_CHECKING:  # pragma: no cover - loaded only when a ledger is configured (cold start, issue 18)
    from rotation.fleet.ledger import Ledger
    from rotation.fleet.scope import FleetScope
    from rotation.issuance.pacer import IssuancePacer

#: ``rotation.fleet.ledger.LEDGER_TABLE_ENV``, spelled out so that a container without a ledger never
#: imports the ledger, the revocation policy and the fleet view (a test keeps the two equal).
LEDGER_TABLE_ENV = "CERTROTATE_LEDGER_TABLE"
#: Comma-separated FleetViewRole ARNs of the workload accounts whose hosts revocation must see.
FLEET_ROLES_ENV = "CERTROTATE_FLEET_ROLE_ARNS"
#: The issuers' services: their clients make one attempt a call (rotation.throttling retries).
ISSUER_SERVICES = frozenset({"acm-pca", "acm"})


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_services(
    secrets_client: Any,
    pca_for_region: Callable[[str], Any],
    acm_for_region: Callable[[str], Any],
    *,
    ledger: Ledger | None = None,
    make_ssm: Callable[[str | None], Any] | None = None,
    fleet_role_arns: Sequence[str] = (),
    assume_ssm: Callable[[str, str | None], Any] = lambda role, region: None,
    fleet_scope: FleetScope | None = None,
    policy: Callable[[], IssuancePolicy] | None = None,
    pacer: IssuancePacer | None = None,
) -> Services:
    """Wire the adapters on the given clients (moto's in tests, boto3's in Lambda).

    Without a ledger no history is kept and nothing is revoked; without an SSM client the fleet
    view is not read and nothing is revoked either (``make_ssm`` is called only when a revocation
    needs the view, so a container whose secrets never revoke creates no SSM client).
    ``fleet_role_arns`` are the workload accounts' FleetViewRoles, read through
    ``assume_ssm(role, region)`` (an SSM client in that account), in each of ``fleet_scope``'s
    regions (``make_ssm(region)``; ``None``: the function's own region).
    ``policy`` answers the issuance policy (cached by its source); without one the default policy
    for an unknown CA list applies. ``pacer`` books every issuing call a slot of the issuer's quota
    shared by all containers (rotation.issuance.pacer; it lives in the ledger's table); without one
    each container only backs off when throttled.
    """
    fleet = None
    if make_ssm is not None:
        from rotation.fleet.revoker import fleet_reader
        from rotation.fleet.scope import FleetScope

        fleet = fleet_reader(make_ssm, assume_ssm, fleet_role_arns, fleet_scope or FleetScope())
    return Services(
        policy=policy or PolicySource(None, "", None),
        ledger=ledger,
        pca_for_region=pca_for_region,
        fleet=fleet,
        store=SecretStore(secrets_client),
        authorities=CertificateAuthorities(pca_for_region),
        issuers=_Issuers(
            {
                CertificateType.PCA_ISSUED: lambda: PcaIssuer(pca_for_region, pacer),
                CertificateType.ACM_ISSUED: lambda: _acm_issuer(acm_for_region, ledger, pacer),
            }
        ),
    )


class _Issuers(Mapping[CertificateType, Issuer]):
    """The issuers, each built on first use: a Private CA container never imports ACM's issuer."""

    def __init__(self, factories: Mapping[CertificateType, Callable[[], Issuer]]) -> None:
        self._factories = factories
        self._built: dict[CertificateType, Issuer] = {}

    def __getitem__(self, certificate_type: CertificateType) -> Issuer:
        if certificate_type not in self._built:
            self._built[certificate_type] = self._factories[certificate_type]()
        return self._built[certificate_type]

    def __iter__(self) -> Iterator[CertificateType]:
        return iter(self._factories)

    def __len__(self) -> int:
        return len(self._factories)


def _acm_issuer(acm_for_region: Callable[[str], Any], ledger: Ledger | None, pacer: IssuancePacer | None) -> Issuer:
    from rotation.issuance.issuers.acm import AcmIssuer

    return AcmIssuer(acm_for_region, ledger, pacer)


def default_services(*, policy_ttl: float = DEFAULT_TTL_SECONDS) -> Services:
    """Services on boto3 clients: Secrets Manager in the function's region, PCA/ACM in the CA's;
    the issuance policy read again after ``policy_ttl`` seconds (the sandbox with hosts: 0)."""

    @cache
    def regional(service: str, region: str | None) -> Any:
        # The issuers' calls are retried by rotation.throttling (after a pacer slot), not by botocore.
        return make_client(service, region, attempts=1 if service in ISSUER_SERVICES else None)

    table = os.environ.get(LEDGER_TABLE_ENV, "")
    ledger = _ledger(table) if table else None
    roles = [r.strip() for r in os.environ.get(FLEET_ROLES_ENV, "").split(",") if r.strip()]
    return build_services(
        make_client("secretsmanager"),
        lambda region: regional("acm-pca", region),
        lambda region: regional("acm", region),
        ledger=ledger,
        pacer=_pacer(ledger) if ledger is not None else None,
        make_ssm=(lambda region: regional("ssm", region)) if table else None,
        fleet_role_arns=roles,
        assume_ssm=lambda role, region: assumed_client(make_client("sts"), role, "ssm", region),
        fleet_scope=_fleet_scope() if table else None,
        policy=PolicySource(
            lambda: regional("ssm", None),
            os.environ.get(POLICY_PARAMETER_ENV, ""),
            stack_cas_from_env(),
            ttl_seconds=policy_ttl,
        ),
    )


def _fleet_scope() -> FleetScope:
    from rotation.fleet.scope import FleetScope

    return FleetScope.from_environment(os.environ)


def _pacer(ledger: Ledger) -> IssuancePacer | None:
    """The issuance pacer on the ledger's table, at the rates of the environment (None: all 0)."""
    from rotation.issuance.pacer import IssuancePacer, rates_from_environment

    rates = rates_from_environment(os.environ)
    if not any(rates.values()):
        return None
    return IssuancePacer(ledger.client, ledger.table, rates)


def _ledger(table: str) -> Ledger:
    from rotation.fleet.ledger import Ledger
    from rotation.fleet.ledger_protection import principals_from_environment

    return Ledger(make_client("dynamodb"), table, principals_from_environment(os.environ))


def assumed_client(sts: Any, role_arn: str, service: str, region: str | None = None) -> Any:
    """A client for ``service`` with the credentials of ``role_arn`` (AssumeRole).

    Raises:
        AwsCallError: the role cannot be assumed.
    """
    import boto3

    with aws_call("sts", "AssumeRole"):
        credentials = sts.assume_role(RoleArn=role_arn, RoleSessionName="certrotate-revocation")["Credentials"]
    session = boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    return session.client(service, region_name=region, config=client_config())  # type: ignore[call-overload]


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
    if event.step is Step.SET:
        # Issue 18: setSecret has nothing to do here (hosts pull after finishSecret) and reads or
        # writes nothing, so the guard's DescribeSecret would buy nothing: createSecret before it
        # and testSecret/finishSecret after it check the token, and only they act. 10 → 9 calls.
        logger.info("setSecret: no service to update; hosts pull the certificate after finishSecret")
        return Verdict.PROCEED
    metadata = services.store.describe(event.secret_id)
    verdict = check_step(metadata, event.token)
    if verdict is Verdict.ALREADY_CURRENT:
        logger.info("version is already AWSCURRENT; nothing to do")
        return verdict
    STEPS[event.step](StepContext(event, metadata, services, clock, budget, observe))
    return verdict
